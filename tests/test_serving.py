"""The model server, run for real on loopback: protocols, auth, bad payloads, the alias
switching under load, the request log through a graceful stop and a locked database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import uvicorn
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import trenches
from trenches.errors import InvalidInput
from trenches.serving.app import Settings, create_app

from conftest import run_cli, wait_until_answering

pytestmark = pytest.mark.sqlite_only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``create_app`` served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "the server died on start"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """A graceful stop: the lifespan's shutdown flushes the request log."""
        self.server.should_exit = True
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store with clf@1 (logistic, production) and clf@2 (forest), reg@1 (a linear
    regression of the worst area, on dataset "area"), and the data."""
    folder = tmp_path_factory.mktemp("serving")
    path = folder / "store"
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"])
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    with trenches.open(path) as store:
        ds = store.datasets.create("cancer", task="classification", label="diagnosis")
        ds.add(frame, source="expert", created_at="2026-01-01")
        snap = ds.snapshot()
        X, y, _, _ = snap.training_data("train")
        with store.run("fit", snapshot=snap, capture_code=False) as run:
            run.log_model(
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y), "clf"
            )
            run.log_model(RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y), "clf")
        store.models.promote("clf@1", "production", reason="first")
        area = store.datasets.create("area", task="regression", label="worst_area")
        area.add(frame.drop(columns="diagnosis"), source="expert", created_at="2026-01-01")
        snap = area.snapshot()
        X, y, _, _ = snap.training_data("train")
        with store.run("fit-area", snapshot=snap, capture_code=False) as run:
            run.log_model(LinearRegression().fit(X, y), "reg")
        native = {ref: store.models.load(ref) for ref in ("clf@1", "clf@2")}
    yield {"path": str(path), "X": frame.drop(columns="diagnosis"), "native": native}


def settings(project: dict[str, Any], tmp_path: Path, **kw: Any) -> Settings:
    """Server settings; the request log is off unless a test is about it."""
    return Settings(
        ref=kw.pop("ref", "clf@production"),
        store=project["path"],
        spool_dir=str(tmp_path / "spool"),
        log_requests=kw.pop("log_requests", False),
        **kw,
    )


JSON = {"content-type": "application/json"}


def _split(X: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(X.columns), "data": X.to_numpy().tolist()}}


# --- the protocols answer as the model does in process ---------------------------------


def test_every_protocol_answers_as_the_model_in_process(
    project: dict[str, Any], tmp_path: Path
) -> None:
    X = project["X"].iloc[:40]
    model = project["native"]["clf@1"]
    want = list(model.predict(X))
    proba = model.predict_proba(X)
    records = X.to_dict(orient="records")
    with LiveServer(settings(project, tmp_path)) as live, httpx.Client(base_url=live.url) as c:
        bodies = {
            "dataframe_split": _split(X),
            "dataframe_records": {"dataframe_records": records},
            "instances (records)": {"instances": records},
            "instances (rows)": {"instances": X.to_numpy().tolist()},
            "inputs (columns)": {"inputs": {k: X[k].tolist() for k in X.columns}},
        }
        for name, body in bodies.items():
            r = c.post("/invocations", json=body)
            assert r.status_code == 200, (name, r.text)
            assert r.json()["predictions"] == want, name
            assert r.json()["model_version"] == "clf@1"
            assert r.headers["x-model-version"] == "clf@1"
            assert r.headers["x-request-id"] == r.json()["request_id"]

        r = c.post("/predict", json=records)
        assert r.status_code == 200, r.text
        answers = r.json()["predictions"]
        assert [a["label"] for a in answers] == want
        got = np.array([[a["scores"][c] for c in model.classes_] for a in answers])
        assert np.abs(got - proba).max() < 1e-6

        tensors = [
            {"name": k, "shape": [len(X)], "datatype": "FP64", "data": X[k].tolist()}
            for k in X.columns
        ]
        r = c.post("/v2/models/clf/infer", json={"id": "mine-1", "inputs": tensors})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_name"] == "clf" and body["model_version"] == "1"
        assert body["id"] == "mine-1" and body["parameters"]["request_id"]
        out = {o["name"]: o for o in body["outputs"]}
        assert out["label"]["data"] == want and out["label"]["datatype"] == "BYTES"
        assert out["probabilities"]["shape"] == [len(X), 2]
        got = np.array(out["probabilities"]["data"]).reshape(len(X), 2)
        assert np.abs(got - proba).max() < 1e-6

        matrix = {
            "name": "input-0",
            "shape": [len(X), X.shape[1]],
            "datatype": "FP32",
            "data": X.to_numpy().ravel().tolist(),
        }
        r = c.post("/v2/models/clf/infer", json={"inputs": [matrix]})
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == want


def test_v2_health_and_metadata(project: dict[str, Any], tmp_path: Path) -> None:
    with LiveServer(settings(project, tmp_path)) as live, httpx.Client(base_url=live.url) as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").json() == {"ready": True}
        assert c.get("/v2/models/clf/ready").json() == {"name": "clf", "ready": True}
        meta = c.get("/v2/models/clf").json()
        assert meta["name"] == "clf" and meta["versions"] == ["1"]
        assert [i["name"] for i in meta["inputs"]] == list(project["X"].columns)
        assert c.get("/v2/models/other").status_code == 404
        assert c.get("/ping").status_code == 200


# --- auth and bad payloads ------------------------------------------------------------


def test_a_token_is_needed_when_one_is_set(project: dict[str, Any], tmp_path: Path) -> None:
    body = _split(project["X"].iloc[:2])
    with (
        LiveServer(settings(project, tmp_path, token="s3cret")) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        assert c.post("/invocations", json=body).status_code == 401
        bad = c.post("/invocations", json=body, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and "bearer token" in bad.json()["error"]
        assert c.get("/metrics").status_code == 401
        # Without the token a V2 client learns nothing, not even which models exist.
        assert c.post("/v2/models/other/infer", json={"inputs": []}).status_code == 401
        good = c.post("/invocations", json=body, headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200
        assert c.get("/v2/health/ready").status_code == 200  # probes need no token
        assert c.get("/ping").status_code == 200


#: What answers without the token: liveness and readiness probes, nothing else.
OPEN = ("/ping", "/health", "/v2/health/live", "/v2/health/ready")


def test_with_a_token_only_the_probes_answer_without_it(
    project: dict[str, Any], tmp_path: Path
) -> None:
    closed_get = [
        "/version",
        "/v2",
        "/v2/models/clf",
        "/v2/models/clf/ready",
        "/v2/models/other/ready",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/metrics",
        "/no-such-page",
    ]
    closed_post = [
        "/predict",
        "/invocations",
        "/feedback",
        "/v2/models/clf/infer",
        "/v2/models/clf/versions/1/infer",
    ]
    token = {"Authorization": "Bearer s3cret"}
    with (
        LiveServer(settings(project, tmp_path, token="s3cret")) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        for path in OPEN:
            assert c.get(path).status_code == 200, path
        told = []
        for method, path in [("GET", p) for p in closed_get] + [("POST", p) for p in closed_post]:
            r = c.request(method, path, content=b"{}", headers=JSON)
            if r.status_code != 401 or "clf" in r.text or r.json().get("error") is None:
                told.append((method, path, r.status_code, r.text[:80]))
        assert not told, told
        for path in closed_get[:-4]:
            assert c.get(path, headers=token).status_code in (200, 404), path
        assert c.get("/openapi.json", headers=token).json()["paths"]
        assert c.get("/version", headers=token).json() == "clf@1"
        # With it, the router's own errors are JSON like every other.
        r = c.get("/no-such-page", headers=token)
        assert r.status_code == 404 and "/no-such-page" in r.json()["error"]
        assert c.delete("/predict", headers=token).json()["error"]


def test_bad_payloads_get_a_4xx_that_names_the_field_and_the_server_goes_on(
    project: dict[str, Any], tmp_path: Path
) -> None:
    X = project["X"].iloc[:3]
    columns = list(X.columns)
    rows = X.to_numpy().tolist()
    wrong_type = [r[:] for r in rows]
    wrong_type[1][2] = "large"
    cases: list[tuple[str, Any, int, str | None]] = [
        ("/invocations", b"{not json", 400, None),
        (
            "/invocations",
            {"dataframe_split": {"columns": columns[1:], "data": [r[1:] for r in rows]}},
            422,
            columns[0],
        ),
        (
            "/invocations",
            {"dataframe_split": {"columns": [*columns, "age"], "data": [[*r, 1] for r in rows]}},
            422,
            "age",
        ),
        (
            "/invocations",
            {"dataframe_split": {"columns": columns, "data": wrong_type}},
            422,
            columns[2],
        ),
        ("/invocations", {"nothing": []}, 400, None),
        ("/predict", [{"mean_radius": 1.0}], 422, columns[1]),
        (
            "/v2/models/clf/infer",
            {
                "inputs": [
                    {
                        "name": c,
                        "shape": [3],
                        "datatype": "BYTES" if c == columns[4] else "FP64",
                        "data": ["a"] * 3 if c == columns[4] else X[c].tolist(),
                    }
                    for c in columns
                ]
            },
            422,
            columns[4],
        ),
    ]
    with (
        LiveServer(settings(project, tmp_path, max_body=20_000)) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        for path, body, status, field in cases:
            content = body if isinstance(body, bytes) else None
            r = c.post(path, content=content, json=None if content else body)
            assert r.status_code == status, (path, body, r.text)
            assert "error" in r.json()
            assert r.json().get("field") == field, r.json()
        big = _split(project["X"].iloc[:200])
        assert c.post("/invocations", json=big).status_code == 413
        assert c.post("/invocations", json=_split(X)).status_code == 200


#: Stands for a value nested 1,000 deep, which no JSON encoder of ours would write.
DEEP = "<deep>"


def _content(body: Any) -> bytes:
    """``body`` as JSON, with each ``DEEP`` written out as ``[[[...1.0...]]]``."""
    deep = b"[" * 1000 + b"1.0" + b"]" * 1000
    return orjson.dumps(body).replace(orjson.dumps(DEEP), deep)


def _tensors(X: pd.DataFrame, **change: Any) -> list[dict[str, Any]]:
    """One V2 tensor per column; ``change`` replaces keys of the first tensor."""
    tensors = [
        {"name": k, "shape": [len(X)], "datatype": "FP64", "data": X[k].tolist()} for k in X.columns
    ]
    tensors[0] = {**tensors[0], **change}
    return tensors


def test_values_of_the_wrong_shape_get_a_4xx_naming_the_field_on_the_same_connection(
    project: dict[str, Any], tmp_path: Path
) -> None:
    X = project["X"].iloc[:2]
    columns = list(X.columns)
    first = columns[0]
    record = X.iloc[0].to_dict()
    rows = X.to_numpy().tolist()
    deep = DEEP
    ragged = [*rows[0][:3], [1, 2], *rows[0][4:]]
    v2 = "/v2/models/clf/infer"
    matrix = {
        "name": "input-0",
        "shape": [2, len(columns)],
        "datatype": "FP64",
        "data": X.to_numpy().ravel().tolist(),
    }
    cases: list[tuple[str, Any, str]] = [
        ("/predict", [{**record, first: [1.0, 2.0]}], first),
        ("/predict", [{**record, first: deep}], first),
        ("/predict", [{**record, first: {"a": 1}}], first),
        ("/predict", [{**record, first: True}], first),
        ("/predict", {**record, columns[3]: False}, columns[3]),
        ("/invocations", {"dataframe_split": {"columns": columns, "data": [[[1.0]] * 30]}}, first),
        (
            "/invocations",
            {"dataframe_split": {"columns": columns, "data": [ragged]}},
            columns[3],
        ),
        ("/invocations", {"instances": [[True, *rows[0][1:]]]}, first),
        ("/invocations", {"dataframe_records": [{**record, first: deep}]}, first),
        ("/invocations", {"inputs": {c: [deep] if c == first else [1.0] for c in columns}}, first),
        (v2, {"inputs": _tensors(X, name=["mean_radius"])}, "inputs[0].name"),
        (v2, {"inputs": _tensors(X, name={"a": 1})}, "inputs[0].name"),
        (v2, {"inputs": _tensors(X, datatype=["FP64"])}, "inputs[0].datatype"),
        (v2, {"inputs": _tensors(X, datatype={"a": 1})}, "inputs[0].datatype"),
        (v2, {"inputs": _tensors(X, shape=[True])}, "inputs[0].shape"),
        (v2, {"inputs": _tensors(X, data=deep)}, first),
        (v2, {"inputs": _tensors(X, data=[deep, 1.0])}, first),
        (v2, {"inputs": [{**matrix, "shape": [True, 30]}]}, "inputs[0].shape"),
        (v2, {"inputs": [{**matrix, "shape": [2**64 - 1, 30]}]}, "inputs[0].shape"),
        (v2, {"inputs": [{**matrix, "data": [True] * 60}]}, first),
        (v2, {"id": deep, "inputs": [matrix]}, "id"),
    ]
    with (
        LiveServer(settings(project, tmp_path)) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        wrong = []
        for path, body, field in cases:
            try:
                r = c.post(path, content=_content(body), headers=JSON)
            except httpx.TransportError as e:  # the connection was dropped
                wrong.append((path, field, 0, repr(e)))
                continue
            if not (
                400 <= r.status_code < 500
                and r.headers["content-type"] == "application/json"
                and r.json().get("field") == field
                and r.headers.get("connection") != "close"
            ):
                wrong.append((path, field, r.status_code, r.text[:200]))
        assert not wrong, wrong
        assert c.post("/predict", json=[record]).status_code == 200


def test_a_fault_of_the_server_is_a_json_500_that_keeps_the_connection(tmp_path: Path) -> None:
    from trenches.serving.middleware import JsonErrors

    async def faulty(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/fault":
            raise RuntimeError("a bug")
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    port = _free_port()
    config = uvicorn.Config(JsonErrors(faulty), port=port, log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = c.get("/fault")
            assert r.status_code == 500 and r.json()["error"]
            assert r.headers.get("connection") != "close"
            assert c.get("/").text == "ok"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- the alias moves under load ---------------------------------------------------------


def test_the_server_follows_the_alias_under_load_without_a_failed_request(
    project: dict[str, Any], tmp_path: Path
) -> None:
    body = _split(project["X"].iloc[:5])
    seen: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load(url: str) -> None:
        with httpx.Client(base_url=url) as c:
            while not stop.is_set():
                try:
                    r = c.post("/invocations", json=body)
                    seen.append((time.monotonic(), r.status_code, r.json()["model_version"]))
                except Exception as e:  # a failed request is a finding
                    seen.append((time.monotonic(), 0, repr(e)))

    with LiveServer(settings(project, tmp_path, poll=0.2)) as live:
        threads = [threading.Thread(target=load, args=(live.url,)) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            with trenches.open(project["path"], create=False) as store:
                store.models.promote("clf@2", "production", reason="the forest")
            moved = time.monotonic()
            deadline = moved + 15
            while time.monotonic() < deadline and not any(v == "clf@2" for _, _, v in seen[-20:]):
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
            with trenches.open(project["path"], create=False) as store:
                store.models.promote("clf@1", "production", reason="back")
    assert seen and all(status == 200 for _, status, _ in seen), [s for s in seen if s[1] != 200][
        :3
    ]
    first_new = min(t for t, _, v in seen if v == "clf@2")
    assert first_new - moved < 5.0
    assert all(v == "clf@2" for t, _, v in seen if t > first_new + 0.5)
    assert {v for _, _, v in seen} == {"clf@1", "clf@2"}


# --- the request log ---------------------------------------------------------------------


def _logged(project: dict[str, Any]) -> pd.DataFrame:
    with trenches.open(project["path"], create=False) as store:
        return store.requests.list()


def test_every_request_of_a_burst_is_in_the_log_after_a_graceful_stop(
    project: dict[str, Any], tmp_path: Path
) -> None:
    before = set(_logged(project)["request_id"])
    X = project["X"]
    ids = []
    live = LiveServer(settings(project, tmp_path, log_requests=True))
    with live, httpx.Client(base_url=live.url) as c:
        for i in range(300):
            r = c.post("/predict", json=X.iloc[[i % len(X)]].to_dict(orient="records"))
            assert r.status_code == 200
            ids.append(r.json()["request_id"])
        r = c.post("/feedback", json={"request_id": ids[0], "label": "malignant"})
        assert r.status_code == 202
        live.stop()
    logged = _logged(project)
    new = logged[~logged["request_id"].isin(before)]
    assert sorted(new["request_id"]) == sorted(ids)
    assert (new["endpoint"] == "predict").all() and (new["n"] == 1).all()


def _feedback_cases(rid: str) -> list[tuple[dict[str, Any], int, str]]:
    """Feedback on ``rid`` (a request of two rows, answered by clf) that is refused."""
    return [
        ({"request_id": rid, "row": 2**63, "label": "benign"}, 422, "row"),
        ({"request_id": rid, "row": 2**64 - 1, "label": "benign"}, 422, "row"),
        ({"request_id": rid, "row": True, "label": "benign"}, 422, "row"),
        ({"request_id": rid, "row": 1.0, "label": "benign"}, 422, "row"),
        ({"request_id": rid, "row": 2, "label": "benign"}, 422, "row"),
        ({"request_id": rid, "label": "maybe"}, 422, "label"),
        ({"request_id": rid, "label": ["benign"]}, 422, "label"),
        ({"request_id": rid, "label": DEEP}, 422, "label"),
        ({"request_id": rid, "label": 1}, 422, "label"),
        ({"request_id": rid, "rating": True}, 422, "rating"),
        ({"request_id": rid, "rating": DEEP}, 422, "rating"),
        ({"request_id": rid, "label": "benign", "comment": DEEP}, 422, "comment"),
        ({"request_id": DEEP, "label": "benign"}, 422, "request_id"),
        ({"request_id": "f" * 32, "label": "benign"}, 404, "request_id"),
    ]


def _refused(c: httpx.Client, cases: list[tuple[dict[str, Any], int, str]]) -> list[Any]:
    wrong = []
    for body, status, field in cases:
        r = c.post("/feedback", content=_content(body), headers=JSON)
        if r.status_code != status or r.json().get("field") != field:
            wrong.append((body, r.status_code, r.text[:200]))
    return wrong


def _feedback_on(project: dict[str, Any], rid: str) -> list[tuple[int, Any, Any]]:
    with trenches.open(project["path"], create=False) as store:
        return [(f.row, f.label, f.rating) for f in store.requests.get_feedback(rid)]


def test_feedback_is_checked_against_the_request_at_once(
    project: dict[str, Any], tmp_path: Path
) -> None:
    records = project["X"].iloc[:2].to_dict(orient="records")
    live = LiveServer(settings(project, tmp_path, log_requests=True))
    with live, httpx.Client(base_url=live.url) as c:
        rid = c.post("/predict", json=records).json()["request_id"]
        assert not (wrong := _refused(c, _feedback_cases(rid))), wrong
        ok = c.post("/feedback", json={"request_id": rid, "row": 1, "label": "malignant"})
        assert ok.status_code == 202, ok.text
        live.stop()
    assert _feedback_on(project, rid) == [(1, "malignant", None)]


def test_feedback_on_a_request_of_an_earlier_server_is_checked_against_the_store(
    project: dict[str, Any], tmp_path: Path
) -> None:
    records = project["X"].iloc[:2].to_dict(orient="records")
    first = LiveServer(settings(project, tmp_path, log_requests=True))
    with first, httpx.Client(base_url=first.url) as c:
        rid = c.post("/predict", json=records).json()["request_id"]
        first.stop()
    second = LiveServer(settings(project, tmp_path, ref="clf@2", log_requests=True))
    with second, httpx.Client(base_url=second.url) as c:
        assert not (wrong := _refused(c, _feedback_cases(rid))), wrong
        ok = c.post("/feedback", json={"request_id": rid, "label": "benign", "rating": 3})
        assert ok.status_code == 202, ok.text
        second.stop()
    assert _feedback_on(project, rid) == [(0, "benign", 3.0)]


def test_feedback_from_python_is_held_to_the_same_labels(
    project: dict[str, Any], tmp_path: Path
) -> None:
    live = LiveServer(settings(project, tmp_path, log_requests=True))
    with live, httpx.Client(base_url=live.url) as c:
        rid = c.post("/predict", json=project["X"].iloc[:1].to_dict(orient="records")).json()
        live.stop()
    with trenches.open(project["path"], create=False) as store:
        with pytest.raises(InvalidInput, match="not one of the model's labels"):
            store.requests.feedback(rid["request_id"], label="maybe")
        done = store.requests.feedback(rid["request_id"], label="benign")
    assert done.label == "benign"


def test_feedback_on_a_regressor_is_a_finite_number(
    project: dict[str, Any], tmp_path: Path
) -> None:
    records = project["X"].drop(columns="worst_area").iloc[:1].to_dict(orient="records")
    live = LiveServer(settings(project, tmp_path, ref="reg@1", log_requests=True))
    with live, httpx.Client(base_url=live.url) as c:
        rid = c.post("/predict", json=records).json()["request_id"]
        cases = [
            ({"request_id": rid, "label": "big"}, 422, "label"),
            ({"request_id": rid, "label": True}, 422, "label"),
            ({"request_id": rid, "label": [711.2]}, 422, "label"),
            ({"request_id": rid, "row": 1, "label": 711.2}, 422, "row"),
        ]
        assert not (wrong := _refused(c, cases)), wrong
        assert c.post("/feedback", json={"request_id": rid, "label": 711.2}).status_code == 202
        live.stop()
    assert _feedback_on(project, rid) == [(0, 711.2, None)]


def test_a_server_without_a_request_log_refuses_feedback(
    project: dict[str, Any], tmp_path: Path
) -> None:
    records = project["X"].iloc[:1].to_dict(orient="records")
    with LiveServer(settings(project, tmp_path)) as live, httpx.Client(base_url=live.url) as c:
        rid = c.post("/predict", json=records).json()["request_id"]
        r = c.post("/feedback", json={"request_id": rid, "label": "benign"})
        assert r.status_code == 409 and "--no-log" in r.json()["error"], r.text


def test_a_locked_database_delays_the_log_not_the_answers(
    project: dict[str, Any], tmp_path: Path
) -> None:
    before = set(_logged(project)["request_id"])
    body = _split(project["X"].iloc[:1])
    ids = []
    live = LiveServer(settings(project, tmp_path, log_requests=True))
    with live, httpx.Client(base_url=live.url, timeout=5) as c:
        db = sqlite3.connect(Path(project["path"]) / "trenches.db", timeout=30)
        db.execute("BEGIN EXCLUSIVE")
        try:
            locked_until = time.monotonic() + 3.0
            while time.monotonic() < locked_until:
                r = c.post("/invocations", json=body)
                assert r.status_code == 200
                ids.append(r.json()["request_id"])
        finally:
            db.rollback()
            db.close()
        assert len(ids) > 50, "the server answered while the database was locked"
        live.stop()
    logged = _logged(project)
    assert set(ids) <= set(logged["request_id"]) - before


def test_request_ids_are_unique_and_ordered_by_time() -> None:
    """Ids in the order of time keep the log's unique index growing at its end."""
    from trenches.serving.routes.prediction import request_id

    ids = []
    for _ in range(5):
        ids.extend(request_id() for _ in range(1000))
        time.sleep(0.002)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    stamps = [int(i[:12], 16) for i in ids]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    assert abs(stamps[-1] - time.time() * 1000) < 5_000


def test_metrics_count_requests_and_predictions(project: dict[str, Any], tmp_path: Path) -> None:
    with LiveServer(settings(project, tmp_path)) as live, httpx.Client(base_url=live.url) as c:
        for _ in range(3):
            assert c.post("/invocations", json=_split(project["X"].iloc[:2])).status_code == 200
        c.post("/invocations", content=b"{")
        text = c.get("/metrics").text
    assert 'trenches_requests_total{endpoint="invocations",status="200"} 3.0' in text
    assert 'trenches_requests_total{endpoint="invocations",status="400"} 1.0' in text
    assert 'trenches_served_version{version="clf@1"} 1.0' in text
    assert "trenches_request_seconds_bucket" in text
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("trenches_predictions_total{")
    )
    assert counted == 6


# --- worker processes die with their parent ------------------------------------------


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux: /proc's children lists)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_workers_stop_when_their_parent_is_killed(project: dict[str, Any], tmp_path: Path) -> None:
    port = _free_port()
    before = set(_logged(project)["request_id"])
    records = project["X"].iloc[:1].to_dict(orient="records")
    command = ["--store", project["path"], "serve", "clf@1", "--port", str(port)]
    errors = (tmp_path / "stderr.txt").open("wb")
    parent = subprocess.Popen(
        [sys.executable, "-m", "trenches", *command, "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=errors,
        start_new_session=True,  # the whole group is cleaned up below, whatever happens
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(parent, f"{url}/ping", log=tmp_path / "stderr.txt")
        workers = _descendants(parent.pid)
        assert len(workers) >= 2
        ids = []
        for _ in range(20):
            ids.append(httpx.post(f"{url}/predict", json=records).json()["request_id"])
            # Feedback at once, on a new connection: often to the worker that did not
            # answer the request, which finds it in the store (after the other's log
            # has written it).
            r = httpx.post(f"{url}/feedback", json={"request_id": ids[-1], "label": "benign"})
            assert r.status_code == 202, r.text

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in workers if _alive(p)], "workers outlived their parent"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/ping", timeout=2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        errors.close()
    # They stopped as on SIGTERM: what they had answered was written to the log first.
    logged = _logged(project)
    assert set(ids) <= set(logged["request_id"]) - before
    feedback = logged.set_index("request_id").loc[ids, "feedback"]
    assert all(f is not None and [x["label"] for x in f] == ["benign"] for f in feedback)


# --- the command's options --------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        ["--port", "70000"],
        ["--port", "99999999999999999999"],
        ["--port", "0"],
        ["--workers", "100000000000000000000"],
        ["--workers", "0"],
        ["--poll", "1e308"],
        ["--max-body", "99999999999999999999999"],
    ],
)
def test_serve_refuses_options_out_of_range_before_serving(
    project: dict[str, Any], option: list[str]
) -> None:
    code, out, err = run_cli("--store", project["path"], "serve", "clf@1", *option)
    assert code == 2, (option, out, err)
    assert "Traceback" not in err and "serving" not in err
