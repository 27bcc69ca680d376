"""Traffic policies on real servers over loopback: shadow, canary, sticky callers, the
bandit on a feedback stream, the guard's rollback with its webhook, and two server
processes following one policy change."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import trenches
from test_monitoring import Hook, webhook  # noqa: F401 (the fixture)
from test_serving import LiveServer, _free_port, project, settings  # noqa: F401

from conftest import run_cli, wait_until_answering

ARM = "x-trenches-arm"


class Flaky:
    """A classifier that fails on rows whose mean radius is beyond any tumour's: a
    candidate that starts failing when such rows arrive."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.classes_ = inner.classes_

    def _check(self, X: pd.DataFrame) -> None:
        if (np.asarray(X["mean_radius"], dtype=float) > 1000).any():
            raise ValueError("mean_radius out of range")

    def predict(self, X: pd.DataFrame) -> Any:
        self._check(X)
        return self.inner.predict(X)

    def predict_proba(self, X: pd.DataFrame) -> Any:
        self._check(X)
        return self.inner.predict_proba(X)


@pytest.fixture(scope="module")
def rollout(project: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    """The serving project with clf@3, a candidate that fails on absurd radii."""
    with trenches.open(project["path"], create=False) as store:
        snap = store.datasets.get("cancer").snapshot()
        X, y, _, _ = snap.training_data("train")
        with store.run("flaky", snapshot=snap, capture_code=False) as run:
            inner = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
            run.log_model(Flaky(inner), "clf")
        ids = {v.ref: v.id for v in store.models.versions("clf")}
    return {**project, "ids": ids}


def _store(served: dict[str, Any]) -> trenches.Store:
    return trenches.open(served["path"], create=False)


def _row(X: pd.DataFrame, k: int) -> list[dict[str, Any]]:
    return X.iloc[[k % len(X)]].to_dict(orient="records")


def _logged(served: dict[str, Any], ids: set[str]) -> pd.DataFrame:
    with _store(served) as store:
        frame = store.requests.list(version="clf")
    return frame[frame["request_id"].isin(ids) | frame["shadow_of"].isin(ids)]


def test_a_shadow_answers_every_request_logged_and_the_caller_gets_productions(
    rollout: dict[str, Any], tmp_path: Path
) -> None:
    X = rollout["X"].iloc[:30]
    with _store(rollout) as store:
        policy = store.traffic.shadow("clf@2", reason="a first look")
    answered: dict[str, Any] = {}
    live = LiveServer(settings(rollout, tmp_path, log_requests=True))
    with live, httpx.Client(base_url=live.url) as c:
        for k in range(len(X)):
            r = c.post("/predict", json=_row(X, k))
            assert r.status_code == 200, r.text
            assert r.headers["x-model-version"] == "clf@1" and r.headers[ARM] == "baseline"
            answered[r.json()["request_id"]] = r.json()["predictions"][0]["label"]
        live.stop()
    logged = _logged(rollout, set(answered))
    callers = logged[logged["shadow_of"].isna()]
    shadows = logged[logged["shadow_of"].notna()].set_index("shadow_of")
    assert set(callers["request_id"]) == set(answered)
    assert set(callers["version"]) == {"clf@1"} and set(callers["arm"]) == {"baseline"}
    assert set(shadows.index) == set(answered), "every request answered in the shadow too"
    assert set(shadows["version"]) == {"clf@2"} and set(shadows["arm"]) == {"v2"}
    # Each logged answer is what that version says in process; the caller got clf@1's.
    want_1 = list(rollout["native"]["clf@1"].predict(X))
    want_2 = list(rollout["native"]["clf@2"].predict(X))
    for k, (rid, label) in enumerate(answered.items()):
        assert label == want_1[k]
        assert shadows.loc[rid, "outputs"]["labels"] == [want_2[k]]
        assert shadows.loc[rid, "request_id"] == f"{rid}.{rollout['ids']['clf@2']}"
    with _store(rollout) as store:
        traffic = store.requests.traffic(version="clf")
        assert store.traffic.policy("clf").id == policy.id
    assert traffic["requests"].sum() >= len(answered)  # callers' requests only
    with _store(rollout) as store:
        store.traffic.off("clf", reason="done")


def test_a_canary_takes_its_share_and_a_caller_key_keeps_its_arm(
    rollout: dict[str, Any], tmp_path: Path
) -> None:
    X = rollout["X"]
    with _store(rollout) as store:
        store.traffic.canary("clf@2", share=0.2, reason="ramp to 20%")
    n = 2000
    with LiveServer(settings(rollout, tmp_path)) as live, httpx.Client(base_url=live.url) as c:
        arms = Counter(c.post("/predict", json=_row(X, k)).headers[ARM] for k in range(n))
        assert set(arms) == {"v2", "baseline"}
        # Binomial(2000, 0.2): mean 400, sd 17.9; four sd either side.
        assert abs(arms["v2"] - n * 0.2) <= 4 * math.sqrt(n * 0.2 * 0.8), arms
        keyed: dict[str, str] = {}
        for k in range(60):
            key = f"caller-{k}"
            got = {
                c.post("/predict", json=_row(X, j), headers={"x-caller-key": key}).headers[ARM]
                for j in range(4)
            }
            assert len(got) == 1, f"{key} got {got}"
            keyed[key] = got.pop()
        r = c.post("/v2/models/clf/versions/1/infer", json=_v2(X.iloc[:2]))
        assert r.status_code == 200 and ARM not in r.headers  # a version by number
    # Another server of the store (a replica) gives each caller the same arm.
    with LiveServer(settings(rollout, tmp_path)) as live, httpx.Client(base_url=live.url) as c:
        for key, arm in list(keyed.items())[:20]:
            r = c.post("/predict", json=_row(X, 0), headers={"x-caller-key": key})
            assert r.headers[ARM] == arm
    with _store(rollout) as store:
        store.traffic.off("clf", reason="done")


def _v2(X: pd.DataFrame) -> dict[str, Any]:
    tensors = [
        {"name": k, "shape": [len(X)], "datatype": "FP64", "data": X[k].tolist()} for k in X.columns
    ]
    return {"inputs": tensors}


def test_the_bandit_moves_traffic_to_the_arm_feedback_favours_and_keeps_the_floor(
    rollout: dict[str, Any], tmp_path: Path
) -> None:
    """Simulated feedback (fixed seed): the label callers send back is the answer given
    with probability 0.9 for clf@2's answers and 0.3 for clf@1's."""
    X = rollout["X"]
    rng = np.random.default_rng(11)
    right = {"v2": 0.9, "baseline": 0.3}
    started = trenches.timestamps.now_us()
    with _store(rollout) as store:
        store.traffic.bandit(["clf@2"], reason="learn on feedback", floor=0.1)
    arms: list[str] = []
    config = settings(rollout, tmp_path, log_requests=True, poll=0.2)
    with LiveServer(config) as live, httpx.Client(base_url=live.url) as c:
        for k in range(900):
            r = c.post("/predict", json=_row(X, k))
            assert r.status_code == 200, r.text
            arm = r.headers[ARM]
            arms.append(arm)
            given = r.json()["predictions"][0]["label"]
            other = "benign" if given == "malignant" else "malignant"
            label = given if rng.random() < right[arm] else other
            fb = c.post("/feedback", json={"request_id": r.json()["request_id"], "label": label})
            assert fb.status_code == 202, fb.text
            if k % 50 == 49:
                time.sleep(0.3)  # the log writes the feedback; the server reads its tallies
        live.stop()
    last = Counter(arms[-300:])
    # Before any feedback is stored (a quarter of a second), both arms are drawn alike.
    assert set(arms[:20]) == {"v2", "baseline"}, arms[:20]
    assert last["v2"] >= 0.75 * 300, last  # the better arm takes most of the traffic
    # ... and the other keeps its floor (0.1 each: at least 5% of requests, with slack).
    assert last["baseline"] >= 10, last
    # The live comparison counts what the callers saw, and the feedback they sent.
    with _store(rollout) as store:
        live = store.traffic.live("clf", window=None, since=started)
    by_arm = {a.arm: a for a in live.arms if not a.shadow}
    assert {a: by_arm[a].requests for a in by_arm} == dict(Counter(arms))
    for arm, p in right.items():
        figures = by_arm[arm]
        assert figures.labelled == figures.requests, "each answer's label counted"
        assert figures.accuracy is not None and figures.accuracy_low is not None
        assert figures.accuracy_low <= figures.accuracy <= (figures.accuracy_high or 0)
        assert abs(figures.accuracy - p) <= 4 * math.sqrt(p * (1 - p) / figures.labelled)
    assert live.policy.kind == "bandit"
    assert (by_arm["v2"].share or 0) > 0.8 and (by_arm["baseline"].share or 0) >= 0.09
    # Shadow answers of the version served (the guard's agreement) are counted apart.
    assert {a.version for a in live.arms if a.shadow} <= {"clf@1"}
    code, out, err = run_cli("--store", rollout["path"], "compare", "--live", "clf")
    assert code == 0 and "feedback accuracy" in out and "bandit over" in out, err
    with _store(rollout) as store:
        store.traffic.off("clf", reason="done")


def test_the_guard_rolls_back_a_canary_that_starts_failing_and_alerts_the_webhook(
    rollout: dict[str, Any],
    tmp_path: Path,
    webhook: str,  # noqa: F811
) -> None:
    toml = tmp_path / "trenches.toml"
    toml.write_text(
        f'[monitor]\nwebhook = "{webhook}"\n\n[guard]\nerror-rate = 0.05\nmin-requests = 20\n',
        encoding="utf-8",
    )
    X = rollout["X"]
    absurd = X.iloc[:5].assign(mean_radius=5000.0)
    with _store(rollout) as store:
        canary = store.traffic.canary("clf@3", share=0.5, reason="try the new one")
    config = settings(rollout, tmp_path, poll=0.2, trusted=True, config=str(toml))
    with LiveServer(config) as live, httpx.Client(base_url=live.url) as c:
        healthy = Counter(c.post("/predict", json=_row(X, k)).headers[ARM] for k in range(200))
        assert healthy["v3"] > 50, healthy
        time.sleep(0.5)
        with _store(rollout) as store:
            assert store.traffic.policy("clf").id == canary.id, "a healthy canary stays"
        # Rows the candidate fails on: the callers still get clf@1's answers.
        for k in range(100):
            r = c.post("/predict", json=_row(absurd, k))
            assert r.status_code == 200 and r.headers["x-model-version"] == "clf@1", r.text
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with _store(rollout) as store:
                now = store.traffic.policy("clf")
            if now.id != canary.id and Hook.received:
                break
            time.sleep(0.1)
        assert now.kind == "off" and now.set_by == "trenches-guard", now
        assert "v3's error-rate" in now.reason
        time.sleep(0.5)  # the server follows the store
        for k in range(20):
            assert ARM not in c.post("/predict", json=_row(X, k)).headers
    (alert,) = Hook.received
    assert alert["kind"] == "traffic.rollback" and alert["version"] == "clf@3"
    assert alert["figure"] == "error-rate" and alert["value"] > 0.05
    assert alert["policy"]["id"] == canary.id and alert["now"]["kind"] == "off"


def _serve(rollout: dict[str, Any], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trenches",
                "--store",
                rollout["path"],
                "serve",
                "clf@production",
                "--port",
                str(port),
                "--no-log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


def test_two_server_processes_follow_a_policy_change_within_five_seconds(
    rollout: dict[str, Any], tmp_path: Path
) -> None:
    X = rollout["X"]
    with _store(rollout) as store:
        store.traffic.off("clf", reason="start from nothing")
    ports = [_free_port(), _free_port()]
    servers = [_serve(rollout, p, tmp_path / f"serve-{p}.txt") for p in ports]
    try:
        for server, port in zip(servers, ports, strict=True):
            wait_until_answering(
                server, f"http://127.0.0.1:{port}/ping", log=tmp_path / f"serve-{port}.txt"
            )
        code, _, err = run_cli(
            "--store",
            rollout["path"],
            "traffic",
            "ab",
            "clf@2",
            "--share",
            "0.5",
            "--reason",
            "experiment 7",
        )
        assert code == 0, err
        changed = time.monotonic()
        followed: dict[int, float] = {}
        with httpx.Client(timeout=5) as c:
            while len(followed) < 2 and time.monotonic() - changed < 10:
                for port in ports:
                    if port in followed:
                        continue
                    r = c.post(f"http://127.0.0.1:{port}/predict", json=_row(X, 0))
                    if r.headers.get(ARM) is not None:
                        followed[port] = time.monotonic() - changed
                time.sleep(0.05)
        assert set(followed) == set(ports), followed
        assert max(followed.values()) < 5, followed
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        with _store(rollout) as store:
            store.traffic.off("clf", reason="done")
