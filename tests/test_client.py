"""The library as a client of the team server: ``trenches.open("http://...")`` gives a
store whose calls answer what a local store's do. The same day of a team member's work
(data, a snapshot's training data, runs and models, evaluation, problems, comparison,
gates, promotion, relabelling, feedback) runs once on a local store and once over a
real server on loopback, on SQLite and on PostgreSQL with its artifacts on moto's S3,
and each call's answer is compared."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import test_api
import trenches
from test_api import Live
from trenches.client.http import ENV_TOKEN, ENV_TOKEN_FILE
from trenches.json_form import to_json

from conftest import log_requests, make_frame, run_cli

store = test_api.store

INPUTS = ["radius", "texture", "grade"]
SALT = b"client-test-salt".hex()
#: Keys whose values differ between two stores made at different times or by
#: different users: when (``..._at``), who (``..._by``), what ran it and where from.
VOLATILE = {"at", "environment", "git", "duration_s"}

DATASET = ("name", "task", "label_column", "label_type", "description")
GATES = """
[[gates.clf]]
metric = "accuracy"
on = "validation"
min = 0.1
"""


def plain(value: Any) -> Any:
    """``value``'s JSON form without what :data:`VOLATILE` names (and when and who),
    floats to 9 digits."""
    if isinstance(value, pd.DataFrame):
        return plain(value.reset_index().to_dict(orient="list"))
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return [plain(v) for v in value]
    value = to_json(value)
    if isinstance(value, dict):
        return {
            k: plain(v)
            for k, v in value.items()
            if k not in VOLATILE and not k.endswith(("_at", "_by"))
        }
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    return value


def day(store: trenches.Store, log: Callable[[trenches.ModelVersion], None]) -> dict[str, Any]:
    """A team member's day, through ``store``: every call's answer, by name."""
    out: dict[str, Any] = {}
    frame = make_frame(300)
    ds = store.datasets.create("tumours", task="classification", label="label", salt=SALT)
    out["datasets.create"] = {k: getattr(ds, k) for k in DATASET}
    out["dataset.add"] = ds.add(frame, source="expert", created_at="2026-01-01")
    out["dataset.summary"] = ds.summary()
    out["datasets.get"] = {k: getattr(store.datasets.get("tumours"), k) for k in DATASET}
    out["dataset.patterns"] = ds.patterns(split="validation")
    snap = ds.snapshot(as_of="2026-02-01", note="for the day")
    out["snapshot"] = {k: getattr(snap, k) for k in ("id", "dataset", "digest", "patterns")}
    out["snapshots.get"] = store.snapshots.get(snap.id).digest
    data = snap.training_data("train")
    out["training_data"] = (data.X, data.y, data.sample_weight, data.pattern_ids)
    X, y = data.X[INPUTS], data.y
    for name, model in (
        ("cautious", LogisticRegression(C=1e-4)),
        ("tree", DecisionTreeClassifier(random_state=0)),
    ):
        with store.run(name, snapshot=snap, params={"kind": name}, capture_code=False) as run:
            run.log_metrics({"loss": 0.5, "acc": 0.7})
            run.log_metric("loss", 0.25)
            run.set_tag("team", "tumours")
            out[f"log_model {name}"] = run.log_model(model.fit(X, y), "clf", X=X)
    out["runs.list"] = store.runs.list(order_by="metrics.loss ASC")
    out["runs.get"] = store.runs.get(1)
    out["models.versions"] = store.models.versions("clf")
    out["models.get"] = store.models.get("clf@2")
    out["lineage"] = store.lineage("clf@2")
    for ref in ("clf@1", "clf@2"):
        out[f"evaluate {ref}"] = store.evaluate(ref)
    ids = ds.pattern_ids("validation")
    out["problems.create"] = store.problems.create(
        "small", dataset="tumours", title="small tumours", severity="high"
    )
    out["problems.add"] = store.problems.add(
        "small", positive=ids[:4].tolist(), negative=ids[4:8].tolist()
    )
    out["problems.scores"] = store.problems.scores("small")
    out["problems.list"] = store.problems.list(dataset="tumours")
    out["compare"] = store.compare("clf@1", "clf@2")
    out["compare on a problem"] = store.compare("clf@1", "clf@2", problem="small")
    out["predictions"] = store.predictions("clf@2", "problem:small")
    out["gates.check"] = store.gates.check("clf@2")
    out["gates.latest"] = store.gates.latest("clf@2")
    out["promote"] = store.models.promote("clf@2", "candidate", reason="passes its gates")
    was = out["patterns.get"] = store.patterns.get(int(ids[0]))
    label = "malignant" if was.label == "benign" else "benign"
    relabelled = store.patterns.relabel(was.id, label, source="expert", reason="seen again")
    out["relabel"] = relabelled
    out["patterns.history"] = store.patterns.history(relabelled.id)
    out["patterns.deactivate"] = store.patterns.deactivate(
        [int(ids[9])], reason="a duplicate", dataset="tumours"
    )
    out["explain"] = store.explanations.explain("clf@1", [int(ids[1])], num_samples=200)
    log(store.models.get("clf@1"))
    out["feedback"] = store.requests.feedback("r-0", row=0, label="benign", comment="checked")
    out["feedback list"] = store.requests.get_feedback("r-0")
    out["problems.close"] = store.problems.close("small", reason="fixed by clf@2")
    out["models.load"] = store.models.load("clf@1").predict(X.head(20))
    return out


@pytest.fixture
def answers(
    store: trenches.Store, store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """The day's answers on a local store, and over a server on another new store of
    the same kind, as a maintainer (with approver's rights for the promotion)."""
    (tmp_path / "trenches.toml").write_text(GATES)
    local = day(store, lambda v: log_requests(store, v, make_frame(5), INPUTS, label="label"))
    if store_url.startswith("postgresql"):
        postgres = request.getfixturevalue("postgres")
        served = trenches.open(postgres.url(postgres.create_database()))
    else:
        served = trenches.open(tmp_path / "served")
    try:
        user = served.accounts.create("ada")
        served.grants.grant(user, "approver", "*")
        token = served.tokens.create(user, "notebook", expires_in=None).secret
        with Live(served) as live, trenches.open(live.url, token=token) as remote:

            def log(version: trenches.ModelVersion) -> None:
                version = served.models.get(version.ref)
                log_requests(served, version, make_frame(5), INPUTS, label="label")

            yield local, day(remote, log)
    finally:
        served.close()


def test_a_day_of_work_answers_the_same_locally_and_over_the_server(
    answers: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    local, remote = answers
    assert list(remote) == list(local)
    for call, expected in local.items():
        assert plain(remote[call]) == plain(expected), call


def test_what_is_not_offered_remotely_says_so(
    sqlite_store: trenches.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = sqlite_store.accounts.create("ada")
    token = sqlite_store.tokens.create(user, "notebook", expires_in=None).secret
    with Live(sqlite_store) as live:
        monkeypatch.setenv(ENV_TOKEN, token)
        with trenches.open(live.url) as remote:
            assert remote.me()["user"]["name"] == "ada"
            with pytest.raises(trenches.NotOfferedRemotely, match=r"store\.backup"):
                remote.backup  # noqa: B018
            with pytest.raises(trenches.NotOfferedRemotely, match=r"store\.problems\.history"):
                remote.problems.history("tumours")
            with pytest.raises(trenches.NotOfferedRemotely, match="trusted=True"):
                remote.gates.check("clf@1", trusted=True)
            # A refusal of the server is the error it was there, with its message.
            with pytest.raises(trenches.Forbidden, match="ada may not"):
                remote.datasets.create("x", task="classification", label="y")
            with pytest.raises(trenches.NotFound, match="no problem"):
                remote.problems.get("nothing")
        with pytest.raises(trenches.InvalidInput, match=r"server's trenches\.toml"):
            trenches.open(live.url, settings=tmp_path / "trenches.toml")
        monkeypatch.setenv(ENV_TOKEN, "trn_not-a-token")
        with pytest.raises(trenches.NotAuthenticated):
            trenches.open(live.url)
        # From the environment, and from a token file that only its owner may read.
        monkeypatch.delenv(ENV_TOKEN)
        file = tmp_path / "token"
        file.write_text(token + "\n")
        os.chmod(file, 0o644)
        monkeypatch.setenv(ENV_TOKEN_FILE, str(file))
        with pytest.raises(trenches.NotAuthenticated, match="chmod 600"):
            trenches.open(live.url)
        os.chmod(file, 0o600)
        monkeypatch.setenv("TRENCHES_DB_URL", live.url)
        with trenches.open() as remote:
            assert remote.me()["user"]["name"] == "ada"


def test_an_unreachable_server_is_named() -> None:
    with pytest.raises(
        trenches.StoreError, match=r"cannot reach the team server at http://127\.0\.0\.1:9"
    ):
        trenches.open("http://127.0.0.1:9", token="trn_x")


def test_trenches_check_in_ci_runs_against_the_shared_store(
    sqlite_store: trenches.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``trenches --store URL check`` with ``$TRENCHES_TOKEN``: the gates of the server's
    trenches.toml, the JUnit file written here, the check stored there as the CI user's."""
    (tmp_path / "trenches.toml").write_text(GATES)
    frame = make_frame(200)
    ds = sqlite_store.datasets.create("tumours", task="classification", label="label", salt=SALT)
    ds.add(frame, source="expert")
    X = frame[INPUTS]
    model = LogisticRegression().fit(X, frame["label"])
    sqlite_store.models.register(model, "clf", X=X, dataset="tumours")
    ci = sqlite_store.accounts.create("ci")
    sqlite_store.grants.grant(ci, "maintainer", "clf")
    sqlite_store.grants.grant(ci, "viewer", "tumours")
    monkeypatch.setenv(ENV_TOKEN, sqlite_store.tokens.create(ci, "ci", expires_in=None).secret)
    with Live(sqlite_store) as live:
        code, out, err = run_cli("--store", live.url, "check", "clf@1", "--junit", "gates.xml")
        assert code == 0, out + err
        assert "clf@1 passes 1 of 1 gates" in out
        assert 'tests="1"' in (tmp_path / "gates.xml").read_text()
        code, out, err = run_cli("--store", live.url, "check", "clf@1", "--trusted")
        assert code == 2 and "not offered over the team server" in out + err
        code, out, err = run_cli("--store", live.url, "data", "check", "tumours")
        assert code == 2 and "not offered over the team server" in out + err
    assert sqlite_store.gates.latest("clf@1").checked_by == "ci"  # type: ignore[union-attr]
