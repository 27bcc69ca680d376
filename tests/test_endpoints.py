"""Versions that predict by calling a service: each protocol against a real
``trenches serve`` on loopback, and services that time out or answer nonsense."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import trenches
from test_serving import LiveServer
from trenches.db.engine import read
from trenches.errors import InvalidInput
from trenches.models.endpoints import Endpoint, EndpointFailed
from trenches.serving.settings import Settings

from conftest import run_cli

FEATURES = ["mean radius", "mean texture", "mean smoothness", "worst area"]
SALT = "656e64706f696e74732d746573742d31"


def cancer_frame() -> Any:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame[FEATURES].copy()
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store whose clf@1 a real trenches server answers with, on loopback."""
    folder = tmp_path_factory.mktemp("endpoint-service")
    with trenches.open(folder / "store") as store:
        ds = store.datasets.create("cancer", task="classification", label="diagnosis", salt=SALT)
        ds.add(cancer_frame(), source="expert", created_at="2026-01-01")
        X, y, _, _ = ds.snapshot().training_data("train")
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        store.models.register(model, "clf", X=X, dataset="cancer")
    settings = Settings(
        ref="clf@1",
        store=str(folder / "store"),
        spool_dir=str(folder / "spool"),
        log_requests=False,
    )
    with LiveServer(settings) as live:
        yield {"url": live.url, "model": model}


@pytest.fixture
def cancer(store: trenches.Store) -> trenches.Dataset:
    ds = store.datasets.create("cancer", task="classification", label="diagnosis", salt=SALT)
    ds.add(cancer_frame(), source="expert", created_at="2026-01-01")
    return ds


def stored(store: trenches.Store, ref: str) -> Any:
    from trenches import predictions

    with read(store.engine) as conn:
        return predictions.read(conn, store.predictors.resolve(ref).id)


@pytest.mark.parametrize(
    ("protocol", "path", "has_scores"),
    [
        ("v2", "/v2/models/clf/infer", True),
        ("mlflow", "/invocations", False),
        ("json", "/predict", True),
    ],
)
def test_each_protocol_stores_what_the_service_answers(
    store: trenches.Store,
    cancer: trenches.Dataset,
    served: dict[str, Any],
    protocol: str,
    path: str,
    has_scores: bool,
) -> None:
    endpoint = Endpoint(url=served["url"] + path, protocol=protocol, batch_rows=64)
    version = store.models.add_endpoint("remote", endpoint, dataset="cancer")
    assert version.flavor == "endpoint" and version.formats == ("endpoint",)
    assert version.signature.columns == FEATURES
    assert version.signature.classes == ("benign", "malignant")
    assert version.needs_trust == ()

    result = store.evaluate(version.ref, "all")
    found = stored(store, version.ref)
    frame = cancer_frame().loc[:, FEATURES]
    rows = frame.iloc[found.pattern_ids - found.pattern_ids.min()]  # ids in file order
    model = served["model"]
    assert list(found.labels) == list(model.predict(rows))
    if has_scores:
        assert np.abs(found.scores - model.predict_proba(rows)).max() < 1e-9
    else:
        assert found.scores is None or np.isnan(found.scores).all()
    assert result.evaluation.metrics["accuracy"] == pytest.approx(
        float(np.mean(model.predict(rows) == cancer_frame()["diagnosis"].iloc[rows.index]))
    )


def test_a_second_evaluation_asks_the_service_nothing(
    store: trenches.Store, cancer: trenches.Dataset
) -> None:
    with Service(lambda rows: [[0.9, 0.1]] * len(rows)) as service:
        version = store.models.add_endpoint(
            "remote", Endpoint(url=service.url, protocol="json"), dataset="cancer"
        )
        store.evaluate(version.ref, "validation")
        calls = service.calls
        store.evaluate(version.ref, "validation")
        assert service.calls == calls


# --- services that misbehave ------------------------------------------------------------


class Service:
    """A small JSON service on loopback answering ``reply(rows)`` (or sleeping)."""

    def __init__(self, reply: Callable[[list[dict[str, Any]]], Any], *, sleep: float = 0) -> None:
        self.reply, self.sleep, self.calls = reply, sleep, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.calls += 1
                rows = json.loads(self.rfile.read(int(self.headers["content-length"])))
                time.sleep(outer.sleep)
                answer = outer.reply(rows)
                body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                """Quiet: http.server writes every request it serves to stderr."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/predict"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Service:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


GARBAGE: list[tuple[str, Callable[[list[Any]], Any], str]] = [
    ("not json", lambda rows: b"<html>oops</html>", "the answer is not JSON"),
    ("too few", lambda rows: ["benign"] * (len(rows) - 1), r"predictions for \d+ rows"),
    ("unknown class", lambda rows: ["maybe"] * len(rows), "'maybe' is not one of the classes"),
    ("not probabilities", lambda rows: [[2.0, -1.0]] * len(rows), "are not probabilities"),
    ("too many scores", lambda rows: [[0.2, 0.3, 0.5]] * len(rows), "must be 2 probabilities"),
    ("an object", lambda rows: {"result": "ok"}, "must be a list of predictions"),
]


@pytest.mark.parametrize(("case", "reply", "message"), GARBAGE, ids=[g[0] for g in GARBAGE])
def test_a_service_answering_nonsense_is_not_registered(
    store: trenches.Store, cancer: trenches.Dataset, case: str, reply: Any, message: str
) -> None:
    with Service(reply) as service, pytest.raises(EndpointFailed, match=message) as e:
        store.models.add_endpoint(
            "remote", Endpoint(url=service.url, protocol="json"), dataset="cancer"
        )
    assert f"{service.url} (patterns 1 to 20)" in str(e.value)
    assert "remote" not in store.models.names()


def test_a_service_that_times_out_is_tried_again_then_named(
    store: trenches.Store, cancer: trenches.Dataset
) -> None:
    with Service(lambda rows: ["benign"] * len(rows), sleep=1.0) as service:
        endpoint = Endpoint(url=service.url, protocol="json", timeout=0.2, retries=1)
        with pytest.raises(EndpointFailed, match=r"no answer within 0\.2 s \(2 tries\)"):
            store.models.add_endpoint("remote", endpoint, dataset="cancer")
        assert service.calls == 2
    assert "remote" not in store.models.names()


def test_a_service_that_turns_bad_stores_nothing_wrong(
    store: trenches.Store, cancer: trenches.Dataset
) -> None:
    """Good at registration, nonsense from the second call of an evaluation on: the
    evaluation fails naming the rows, and only the batch answered well is stored."""
    state = {"calls": 0}

    def reply(rows: list[Any]) -> Any:
        state["calls"] += 1
        return [[0.7, 0.3]] * len(rows) if state["calls"] <= 2 else ["benign"] * 3

    with Service(reply) as service:
        endpoint = Endpoint(url=service.url, protocol="json", batch_rows=50)
        version = store.models.add_endpoint("remote", endpoint, dataset="cancer")
        with pytest.raises(EndpointFailed, match=r"\(patterns \d+ to \d+\): 3 predictions"):
            store.evaluate(version.ref, "all", batch_size=50)
    found = stored(store, version.ref)
    assert len(found.pattern_ids) == 50
    assert np.allclose(found.scores, [[0.7, 0.3]])


def test_an_unreachable_service_is_named(store: trenches.Store, cancer: trenches.Dataset) -> None:
    endpoint = Endpoint(url="http://127.0.0.1:9/predict", protocol="json", retries=0)
    with pytest.raises(EndpointFailed, match="cannot reach it"):
        store.models.add_endpoint("remote", endpoint, dataset="cancer")


def test_endpoint_settings_out_of_range_are_refused() -> None:
    with pytest.raises(InvalidInput, match="protocol 'grpc' must be one of v2, mlflow, json"):
        Endpoint(url="http://x/predict", protocol="grpc")
    with pytest.raises(InvalidInput, match="must start with http"):
        Endpoint(url="ftp://x", protocol="json")
    with pytest.raises(InvalidInput, match="timeout"):
        Endpoint(url="http://x", protocol="json", timeout=0)


def test_the_cli_registers_an_endpoint_with_its_sources(
    store: trenches.Store, cancer: trenches.Dataset, store_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "api.py"
    source.write_text("# the service\n")
    with Service(lambda rows: ["benign"] * len(rows)) as service:
        code, out, err = run_cli(
            "--store",
            store_url,
            "models",
            "add-endpoint",
            "remote",
            "--url",
            service.url,
            "--protocol",
            "json",
            "--dataset",
            "cancer",
            "--classes",
            "malignant,benign",
            "--language",
            "python",
            "--source",
            str(source),
        )
    assert code == 0, err
    assert "registered remote@1" in out, out
    version = store.models.get("remote@1")
    assert version.signature.classes == ("malignant", "benign")
    assert version.sources == ("api.py",)
    assert store.models.file_bytes(version, "source/api.py") == b"# the service\n"
    code, out, _ = run_cli("--store", store_url, "models", "show", "remote")
    assert code == 0
    assert f"remote@1 predicts by calling {service.url} (json); kept with it: api.py" in out


def test_an_endpoint_version_is_monitored_on_what_it_answers(
    store: trenches.Store, cancer: trenches.Dataset, served: dict[str, Any]
) -> None:
    """Drift of a current frame against a snapshot, and accuracy on its labels from
    the service's answers (the version has no run, so the reference is named)."""
    snapshot = cancer.snapshot()
    endpoint = Endpoint(url=served["url"] + "/invocations", protocol="mlflow")
    version = store.models.add_endpoint("remote", endpoint, dataset="cancer")
    current = cancer_frame().iloc[::3]
    found = store.monitoring.run(
        version.ref, current=current, reference=f"{snapshot.id}:train", keep=False
    )
    right = served["model"].predict(current[FEATURES]) == current["diagnosis"].to_numpy()
    assert found.metrics is not None
    assert found.metrics is not None
    assert found.metrics["window"]["accuracy"] == pytest.approx(float(np.mean(right)))
    assert found.metrics["reference"]["patterns"] > 0


def test_a_served_endpoint_version_answers_502_when_its_service_is_down(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    ds = sqlite_store.datasets.create("cancer", task="classification", label="diagnosis")
    ds.add(cancer_frame(), source="expert", created_at="2026-01-01")
    with Service(lambda rows: [[0.6, 0.4]] * len(rows)) as service:
        endpoint = Endpoint(url=service.url, protocol="json", retries=0)
        sqlite_store.models.add_endpoint("remote", endpoint, dataset="cancer")
        settings = Settings(
            ref="remote@1",
            store=str(tmp_path / "store"),
            spool_dir=str(tmp_path / "spool"),
            log_requests=False,
        )
        rows = cancer_frame()[FEATURES].iloc[:5].to_dict(orient="records")
        with LiveServer(settings) as live, httpx.Client(base_url=live.url) as c:
            r = c.post("/predict", json=rows)
            assert r.status_code == 200, r.text
            assert [a["label"] for a in r.json()["predictions"]] == ["benign"] * 5
            service.__exit__()  # the service goes away
            r = c.post("/predict", json=rows)
    assert r.status_code == 502
    assert r.json()["error"].startswith(f"remote@1: {service.url} (rows 0 to 4): cannot reach")
