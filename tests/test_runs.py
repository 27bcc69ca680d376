"""Runs: params, tags, metric series, status, git capture, environment, search."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import trenches
from trenches.errors import Conflict, InvalidInput


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree with one commit, as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.name", "Test")
    _git(root, "config", "user.email", "test@example.com")
    (root / "train.py").write_text("print('train')\n")
    _git(root, "add", "train.py")
    _git(root, "commit", "-q", "-m", "first")
    monkeypatch.chdir(root)
    return root


def test_a_run_records_params_metrics_times_and_status(store: trenches.Store) -> None:
    with store.run("lr", params={"model": "lr", "C": 0.5}, tags={"team": "a"}) as run:
        for i in range(5):
            run.log_metric("loss", 1 / (i + 1))
        run.log_metrics({"acc": 0.91, "f1": 0.88}, step=7)
    info = store.runs.get(run.id)
    assert info.status == "finished" and info.ended_at is not None
    assert info.params == {"model": "lr", "C": "0.5"}
    assert info.tags == {"team": "a"}
    assert info.metrics == {"loss": 0.2, "acc": 0.91, "f1": 0.88}
    history = store.runs.metric_history(run.id, "loss")
    assert list(history["step"]) == [0, 1, 2, 3, 4]
    assert list(history["value"]) == [1, 0.5, 1 / 3, 0.25, 0.2]


def test_a_failing_block_marks_the_run_failed_and_keeps_its_points(
    store: trenches.Store,
) -> None:
    with pytest.raises(ZeroDivisionError), store.run("crash") as run:
        for i in range(1000):
            run.log_metric("loss", float(i))
        1 / 0  # noqa: B018
    info = store.runs.get(run.id)
    assert info.status == "failed"
    assert "ZeroDivisionError" in (info.error or "")
    assert len(store.runs.metric_history(run.id, "loss")) == 1000


def test_nan_and_infinite_metric_values_round_trip(store: trenches.Store) -> None:
    with store.run("odd") as run:
        run.log_metrics({"a": math.nan, "b": math.inf, "c": -math.inf})
    values = {k: store.runs.metric_history(run.id, k)["value"].iloc[0] for k in "abc"}
    assert math.isnan(values["a"]) and values["b"] == math.inf and values["c"] == -math.inf


def test_params_are_facts_and_tags_can_change(store: trenches.Store) -> None:
    with store.run("p", params={"lr": 0.1}) as run:
        run.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(Conflict, match="do not change"):
            run.log_param("lr", 0.2)
        run.set_tag("stage", "draft")
        run.set_tag("stage", "final")
    info = store.runs.get(run.id)
    assert info.params == {"lr": "0.1"} and info.tags == {"stage": "final"}


def test_bad_keys_are_refused(store: trenches.Store) -> None:
    with store.run("k") as run, pytest.raises(InvalidInput, match="metric"):
        run.log_metric("bad\nkey", 1.0)


def test_outside_git_the_run_says_so(
    store: trenches.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with store.run("nogit") as run:
        pass
    info = store.runs.get(run.id)
    assert info.git_state == "none" and info.git_commit is None and info.git_tag is None


def test_a_run_in_git_gets_its_commit_and_an_annotated_tag(
    store: trenches.Store, repo: Path
) -> None:
    ds = store.datasets.create("d", task="regression", label="y")
    import pandas as pd

    ds.add(pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}), source="expert")
    snap = ds.snapshot()
    with store.run("tagged", snapshot=snap) as run:
        run.log_metric("loss", 0.1)
    info = store.runs.get(run.id)
    head = _git(repo, "rev-parse", "HEAD")
    assert info.git_state == "clean"
    assert info.git_commit == head and info.git_branch == "main"
    assert info.git_tag == f"trenches/run-{run.id}"
    assert _git(repo, "rev-list", "-n", "1", info.git_tag) == head
    message = _git(repo, "tag", "-l", "--format=%(contents)", info.git_tag)
    assert f"run {run.id}" in message and snap.digest in message


def test_a_dirty_tree_stores_its_diff(store: trenches.Store, repo: Path) -> None:
    (repo / "train.py").write_text("print('train harder')\n")
    (repo / "notes.txt").write_text("untracked idea\n")
    with store.run("dirty") as run:
        pass
    info = store.runs.get(run.id)
    assert info.git_state == "dirty" and info.git_diff_sha256
    diff = store.artifacts.get_bytes(info.git_diff_sha256).decode()
    assert "+print('train harder')" in diff
    assert "untracked idea" in diff


def test_tags_can_be_switched_off_in_trenches_toml(repo: Path, store: trenches.Store) -> None:
    # The store is opened in the project (repo comes first), and so reads its trenches.toml.
    (repo / "trenches.toml").write_text("[runs]\ngit_tag = false\n")
    with store.run("untagged") as run:
        pass
    info = store.runs.get(run.id)
    assert info.git_tag is None
    assert _git(repo, "tag", "-l") == ""


def test_the_environment_is_recorded_once(store: trenches.Store) -> None:
    with store.run("a") as a:
        pass
    with store.run("b") as b:
        pass
    ia, ib = store.runs.get(a.id), store.runs.get(b.id)
    assert ia.environment_id == ib.environment_id is not None
    from sqlalchemy import select

    from trenches.db import schema as t

    with store.engine.connect() as conn:
        env = conn.execute(select(t.environments)).one()
    assert sys.version.split()[0] in env.python
    assert '"numpy"' in env.packages


def test_artifacts_are_kept_by_content_and_names_stay_inside(
    store: trenches.Store, tmp_path: Path
) -> None:
    f = tmp_path / "plot.png"
    f.write_bytes(b"\x89PNG fake")
    with store.run("files") as run:
        sha = run.log_artifact(f)
        assert run.log_artifact(f, name="copy/plot.png") == sha
        with pytest.raises(InvalidInput):
            run.log_artifact(f, name="../escape.png")
        with pytest.raises(Conflict):
            run.log_artifact(f)
    assert store.artifacts.get_bytes(sha) == b"\x89PNG fake"


def test_search_filters_and_orders(store: trenches.Store) -> None:
    for model, acc in [("lr", 0.95), ("lr", 0.85), ("rf", 0.99), ("lr", 0.97)]:
        with store.run(model, params={"model": model}) as run:
            run.log_metric("acc", 0.1)
            run.log_metric("acc", acc)  # the last value counts
    hits = store.runs.list("params.model = 'lr' and metrics.acc > 0.9", order_by="metrics.acc DESC")
    assert [r.metrics["acc"] for r in hits] == [0.97, 0.95]
    assert len(store.runs.list("attributes.status = 'finished'")) == 4
    assert len(store.runs.list("params.model != 'lr'")) == 1
    with pytest.raises(InvalidInput, match="cannot read"):
        store.runs.list("accuracy is high")


@pytest.mark.parametrize(
    "clause",
    [
        "metrics.acc > 1.2.3",
        "metrics.acc > .",
        "params.lr < 1..5",
        "attributes.id = 1e400",
        "metrics.acc > -1e999",
    ],
)
def test_a_filter_with_a_malformed_number_is_invalid_input_naming_it(
    sqlite_store: trenches.Store, clause: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(repr(clause))):
        sqlite_store.runs.list(clause)


def test_a_negative_limit_is_invalid_input(sqlite_store: trenches.Store) -> None:
    with pytest.raises(InvalidInput, match="limit -1"):
        sqlite_store.runs.list(limit=-1)


_KILLED = textwrap.dedent(
    """
    import sys, time
    import trenches
    store = trenches.open(sys.argv[1])
    run = store.run("doomed")
    for i in range(100):
        run.log_metric("loss", float(i))
    run.flush()
    print(run.id, flush=True)
    time.sleep(60)
    """
)


def test_a_run_whose_process_died_is_found_killed(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    trenches.open(url).close()
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = int(proc.stdout.readline())
    with trenches.open(url) as store:
        assert store.runs.get(run_id).status == "running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with trenches.open(url) as store:
        info = store.runs.get(run_id)
        assert info.status == "killed" and info.ended_at is not None
        assert len(store.runs.metric_history(run_id, "loss")) == 100


_LOGGER = textwrap.dedent(
    """
    import sys
    import trenches
    store = trenches.open(sys.argv[1])
    with store.run("worker-" + sys.argv[2], capture_code=False) as run:
        for i in range(5000):
            run.log_metric("loss", float(i))
            if i % 500 == 0:
                run.flush()  # many small transactions, to make the writers meet
    """
)


@pytest.mark.slow
def test_four_processes_logging_at_once_lose_no_point(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    trenches.open(url).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LOGGER, url, str(i)], stderr=subprocess.PIPE, text=True
        )
        for i in range(4)
    ]
    deadline = time.monotonic() + 300
    for p in procs:
        _, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
        assert p.returncode == 0, err
        assert "locked" not in err
    with trenches.open(url) as store:
        runs = store.runs.list()
        assert len(runs) == 4 and all(r.status == "finished" for r in runs)
        total = sum(len(store.runs.metric_history(r.id, "loss")) for r in runs)
    assert total == 20_000


def test_lineage_walks_version_run_code_data_and_environment(
    store: trenches.Store, repo: Path
) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    ds = store.datasets.create("d", task="classification", label="y")
    frame = pd.DataFrame({"x": [float(i) for i in range(40)], "y": [i % 2 for i in range(40)]})
    ds.add(frame.iloc[:30], source="expert", created_at="2026-01-01")
    ds.add(frame.iloc[30:], source="crowd", created_at="2026-02-01")
    snap = ds.snapshot(sources=["expert", "crowd"])
    (repo / "train.py").write_text("print('changed')\n")  # a dirty tree
    X, y, _, _ = snap.training_data(None)
    with store.run("fit", snapshot=snap, params={"C": 1}) as run:
        version = run.log_model(LogisticRegression().fit(X, y), "clf")
    found = store.lineage(version.ref)
    assert found.run is not None and found.run["id"] == run.id
    assert found.code is not None
    assert found.code["commit"] == _git(repo, "rev-parse", "HEAD")
    assert found.code["state"] == "dirty" and found.code["dirty_diff_sha256"]
    assert found.code["tag"] == f"trenches/run-{run.id}"
    assert found.snapshot is not None and found.snapshot["digest"] == snap.digest
    assert found.data is not None
    assert found.data["by_source"] == {"expert": 30, "crowd": 10}
    assert sum(found.data["by_split"].values()) == 40
    assert found.environment is not None
    assert found.environment["key_packages"]["scikit-learn"]
    # Without the counts, the rest is the same.
    quick = store.lineage(version.ref, data=False)
    assert quick.data is None and quick.snapshot == found.snapshot and quick.run == found.run


def test_lineage_of_a_version_registered_outside_a_run(store: trenches.Store) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    store.models.register(LogisticRegression().fit(X, [0, 0, 1, 1]), "bare", X=X)
    found = store.lineage("bare@1")
    assert found.run is None and found.snapshot is None
