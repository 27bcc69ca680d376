"""The model server fuzzed from its own OpenAPI document (schemathesis): bodies that fit
the document and bodies that do not, on every route, over loopback to a real server
with its request log writing to a real SQLite store. No answer is a 500, every error is
a JSON 4xx, and the request log still works after the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import trenches
from test_serving import LiveServer
from trenches.serving.app import Settings

from conftest import tumours

pytestmark = pytest.mark.sqlite_only

TOKEN = {"Authorization": "Bearer fuzz"}
#: Examples per route and mode: about 800 requests a model, some 15 s.
EXAMPLES = 30


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store with mixed@1 (a number, an integer, a boolean and a string column: the
    server's DataFrame path) and numeric@1 (numbers and an integer: its float-matrix
    path, through ONNX Runtime); both impute missing values, so that bodies with nulls
    reach the model and the request log."""
    path = tmp_path_factory.mktemp("fuzz") / "store"
    frame = tumours(300, seed=3)
    rng = np.random.default_rng(3)
    frame["kind"] = rng.choice(["ductal", "lobular"], len(frame))
    frame["palpable"] = rng.random(len(frame)) > 0.5
    kind = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="?"), OneHotEncoder(handle_unknown="ignore")
    )
    models = {
        "mixed": make_pipeline(
            ColumnTransformer([("kind", kind, ["kind"])], remainder=SimpleImputer()),
            LogisticRegression(max_iter=1000),
        ),
        "numeric": make_pipeline(SimpleImputer(), LogisticRegression(max_iter=1000)),
    }
    with trenches.open(path) as store:
        for name, model in models.items():
            ds = store.datasets.create(name, task="classification", label="label")
            columns = ["radius", "texture", "grade"] + (
                ["kind", "palpable"] if name == "mixed" else []
            )
            ds.add(frame[[*columns, "label"]], source="expert", created_at="2026-01-01")
            snap = ds.snapshot()
            X, y, _, _ = snap.training_data("train")
            with store.run(f"fit-{name}", snapshot=snap, capture_code=False) as run:
                run.log_model(model.fit(X, y), name)
        assert "onnx" in store.models.get("numeric@1").formats
    yield str(path)


def _check(response: Any, method: str, path: str) -> str | None:
    """What is wrong with one answer, or None."""
    status = response.status_code
    if status >= 500:
        return f"{method} {path}: {status} {response.text[:200]}"
    if status >= 400:
        try:
            body = response.json()
        except ValueError:
            return f"{method} {path}: {status} is not JSON: {response.text[:200]}"
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            return f"{method} {path}: {status} without an error message: {response.text[:200]}"
    return None


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # inputs of 1e308
@pytest.mark.parametrize("model", ["mixed", "numeric"])
def test_fuzzing_every_route_finds_no_500_and_the_log_goes_on(
    store_path: str, model: str, tmp_path: Path
) -> None:
    served = Settings(
        ref=f"{model}@1",
        store=store_path,
        token="fuzz",
        spool_dir=str(tmp_path / "spool"),
        log_requests=True,
    )
    live = LiveServer(served)
    wrong: list[str] = []
    answered: list[str] = []
    with live, requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json", headers=TOKEN)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {"/predict", "/invocations", "/feedback", "/v2/models/{name}/infer"} <= {
            op.path for op in operations
        }
        for operation in operations:
            # Something to break: a body or a path parameter (GET /ping has neither).
            breakable = len(operation.body) > 0 or "{" in operation.path
            modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * breakable
            for mode in modes:

                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(mode, headers=TOKEN))
                def fuzz(case: Any) -> None:
                    response = case.call(base_url=live.url, session=session, headers=TOKEN)
                    problem = _check(response, case.method, case.formatted_path)
                    if problem is not None:
                        wrong.append(problem)
                    if response.status_code == 200 and "x-request-id" in response.headers:
                        answered.extend(response.headers["x-request-id"])

                fuzz()
        assert not wrong, wrong[:10]

        # The log goes on: a normal request and its feedback are stored, as is
        # every request the fuzzing had answered.
        record = {"radius": 12.0, "texture": 20.0, "grade": 2, "kind": "ductal", "palpable": True}
        if model == "numeric":
            record = {k: record[k] for k in ("radius", "texture", "grade")}
        r = session.post(f"{live.url}/predict", json=[record], headers=TOKEN)
        assert r.status_code == 200, r.text
        rid = r.json()["request_id"]
        label = r.json()["predictions"][0]["label"]
        feedback = {"request_id": rid, "label": label}
        assert session.post(f"{live.url}/feedback", json=feedback, headers=TOKEN).status_code == 202
        live.stop()
    with trenches.open(store_path, create=False) as store:
        logged = set(store.requests.list()["request_id"])
        assert {rid, *answered} <= logged
        assert [f.label for f in store.requests.get_feedback(rid)] == [label]
    assert not list((tmp_path / "spool").glob("rejected-*"))
