"""A model trained and served in R (a ``glm`` behind plumber, Debian's r-base-core and
r-cran-plumber), registered as an endpoint version and used end to end: evaluated,
backfilled onto a problem, gated, compared with a Python version, and served."""

from __future__ import annotations

import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import trenches
from test_serving import LiveServer, _free_port
from trenches.db.engine import read
from trenches.serving.settings import Settings

pytestmark = pytest.mark.skipif(
    shutil.which("Rscript") is None, reason="R is not installed (.ci/run installs r-base-core)"
)

FEATURES = ["mean_radius", "mean_texture", "mean_smoothness", "worst_area"]

TRAIN_R = """
train <- read.csv("train.csv")
train$diagnosis <- factor(train$diagnosis)
fit <- glm(diagnosis ~ ., family = binomial, data = train)
saveRDS(fit, "model.rds")
every <- read.csv("all.csv")
p <- predict(fit, newdata = every, type = "response")
out <- data.frame(pattern_id = every$pattern_id, p = sprintf("%.17g", p))
write.csv(out, "r_predictions.csv", row.names = FALSE)
"""

API_R = """
fit <- readRDS("model.rds")

#* Class probabilities (benign, malignant) of each row
#* @post /predict
#* @serializer json list(digits = NA)
function(req) {
  rows <- jsonlite::fromJSON(req$postBody)
  p <- as.numeric(predict(fit, newdata = rows, type = "response"))
  lapply(p, function(x) c(1 - x, x))
}
"""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("plumber did not start")


@pytest.fixture
def r_service(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A store with the dataset and a Python version; the glm trained in R on the
    store's training split, its own predictions of every pattern, and plumber serving
    it on loopback."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame[[f.replace("_", " ") for f in FEATURES]].copy()
    frame.columns = FEATURES
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    folder = tmp_path / "r"
    folder.mkdir()
    store = trenches.open(tmp_path / "store")
    ds = store.datasets.create("cancer", task="classification", label="diagnosis")
    ds.add(frame, source="expert", created_at="2026-01-01")
    X, y, _, _ = ds.snapshot().training_data("train")
    python = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    store.models.register(python, "cancer-py", X=X, dataset="cancer")
    X.assign(diagnosis=y).to_csv(folder / "train.csv", index=False)
    every = ds.patterns()
    every[FEATURES].assign(pattern_id=every.index).to_csv(folder / "all.csv", index=False)
    (folder / "train.R").write_text(textwrap.dedent(TRAIN_R))
    (folder / "api.R").write_text(textwrap.dedent(API_R))
    subprocess.run(["Rscript", "train.R"], cwd=folder, check=True, capture_output=True)
    own = pd.read_csv(folder / "r_predictions.csv").set_index("pattern_id")["p"]
    port = _free_port()
    run = f"plumber::plumb('api.R')$run(host = '127.0.0.1', port = {port}, docs = FALSE)"
    process = subprocess.Popen(
        ["Rscript", "-e", run], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for_port(port, process)
        yield {
            "store": store,
            "url": f"http://127.0.0.1:{port}/predict",
            "own": own,
            "folder": folder,
            "path": tmp_path / "store",
        }
    finally:
        process.terminate()
        process.wait(timeout=10)
        store.close()


def test_a_glm_served_from_r_is_a_version_like_any_other(
    r_service: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: trenches.Store = r_service["store"]
    folder: Path = r_service["folder"]
    endpoint = trenches.Endpoint(
        url=r_service["url"], protocol="json", language="r", batch_rows=200
    )
    sources = {n: (folder / n).read_bytes() for n in ("api.R", "model.rds")}
    version = store.models.add_endpoint("cancer-r", endpoint, dataset="cancer", sources=sources)
    assert version.signature.classes == ("benign", "malignant")
    assert version.sources == ("api.R", "model.rds")

    # Evaluated: every stored probability is R's own, to the last digits JSON carries.
    store.evaluate(version.ref, "all")
    from trenches import predictions

    with read(store.engine) as conn:
        found = predictions.read(conn, store.predictors.resolve(version.ref).id)
    own = r_service["own"].loc[found.pattern_ids].to_numpy()
    assert len(found.pattern_ids) == len(r_service["own"])
    assert np.abs(found.scores[:, 1] - own).max() < 1e-12
    assert list(found.labels) == list(np.where(own > 0.5, "malignant", "benign"))

    # A problem added later is backfilled onto both versions, the R one by asking R.
    ids = store.datasets.get("cancer").pattern_ids("test")
    store.problems.create("small-tumours", dataset="cancer", title="Small malignant tumours")
    added = store.problems.add("small-tumours", positive=ids[:8], negative=ids[8:14])
    assert added.versions == 2 and not added.skipped
    scores = {s.predictor: s for s in store.problems.scores("small-tumours")}
    assert set(scores) == {"cancer-py@1", "cancer-r@1"}
    assert scores["cancer-r@1"].positive_total == 8 and scores["cancer-r@1"].negative_total == 6

    # Gated, and compared with the Python version on the patterns both predicted.
    monkeypatch.chdir(tmp_path)
    Path("trenches.toml").write_text('[[gates.cancer-r]]\nmetric = "accuracy"\nmin = 0.8\n')
    check = store.gates.check(version.ref)
    assert check.passed, [(r.metric, r.figure) for r in check.results]
    store.evaluate("cancer-py@1", "all")
    comparison = store.compare("cancer-py@1", version.ref)
    assert comparison.overall.size == len(r_service["own"])

    # Served: a trenches server answers with R's predictions, proxied.
    settings = Settings(
        ref=version.ref,
        store=str(r_service["path"]),
        spool_dir=str(tmp_path / "spool"),
        log_requests=False,
    )
    rows = store.datasets.get("cancer").patterns().iloc[:30]
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        r = c.post("/predict", json=rows[FEATURES].to_dict(orient="records"))
        assert r.status_code == 200, r.text
        got = [a["scores"]["malignant"] for a in r.json()["predictions"]]
    assert np.abs(np.array(got) - r_service["own"].loc[rows.index].to_numpy()).max() < 1e-12
