"""Replay: a candidate answers the demo's logged requests, compared with what callers
were answered; the same figures as predicting the logged rows directly; stored once
per request row; and gated."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trenches
from trenches.errors import InvalidInput, NotFound
from webui import DemoRun

from conftest import run_cli


@pytest.fixture
def demo_store(demo_run: DemoRun, tmp_path: Path) -> trenches.Store:
    """A copy of the demo's store (the demo's own is shared by the session's tests)."""
    shutil.copytree(demo_run.folder / ".trenches", tmp_path / ".trenches")
    return trenches.open(tmp_path / ".trenches", create=False)


def _direct(store: trenches.Store, candidate: str) -> tuple[int, int, int, int]:
    """Rows, rows agreed, labelled rows and rows the candidate gets right, from the
    people's listing of the log and the candidate's native model in process."""
    version = store.models.get(candidate)
    logged = store.requests.list(version="cancer-clf")
    logged = logged[logged["shadow_of"].isna() & (logged["version"] != candidate)]
    frames, given, labels = [], [], []
    for r in logged.itertuples():
        frame = pd.DataFrame(r.inputs["data"], columns=r.inputs["columns"])
        frames.append(frame)
        given.extend(str(x) for x in r.outputs["labels"])
        newest: dict[int, object] = {}
        for fb in r.feedback or []:
            if fb["label"] is not None:
                newest[fb["row"]] = fb["label"]
        labels.extend(newest.get(k) for k in range(len(frame)))
    X = pd.concat(frames, ignore_index=True)[list(version.signature.columns)]
    model = store.models.load(candidate, format="native")
    said = np.array([str(x) for x in model.predict(X)], dtype=object)
    agreed = int((said == np.array(given, dtype=object)).sum())
    labelled = [k for k, label in enumerate(labels) if label is not None]
    right = sum(said[k] == str(labels[k]) for k in labelled)
    return len(X), agreed, len(labelled), int(right)


def test_a_replay_on_the_demos_log_agrees_as_predicting_the_logged_rows_does(
    demo_store: trenches.Store,
) -> None:
    store = demo_store
    production = store.models.get("cancer-clf@production")
    candidate = next(v.ref for v in store.models.versions("cancer-clf") if v.id != production.id)
    replay = store.replays.run(candidate, window=None)
    rows, agreed, labelled, right = _direct(store, candidate)
    assert rows > 100 and labelled > 50
    assert (replay.rows, replay.agreed) == (rows, agreed)
    assert (replay.labelled, replay.candidate_right) == (labelled, right)
    assert replay.predicted == rows and 0 < replay.agreement <= 1
    assert (
        replay.fixed_count - replay.broken_count == replay.candidate_right - replay.production_right
    )
    # Rows that became patterns of a problem are counted for it.
    for p in replay.problems:
        assert 0 < p.rows <= replay.labelled and p.agreed <= p.rows

    # Stored once per request row: a second replay predicts nothing and says the same.
    again = store.replays.run(candidate, window=None)
    assert again.predicted == 0 and again.id != replay.id
    assert (again.rows, again.agreed, again.candidate_right) == (
        replay.rows,
        replay.agreed,
        replay.candidate_right,
    )
    assert [r.id for r in store.replays.of(candidate)] == [again.id, replay.id]

    code, out, err = run_cli("--store", store.url, "replay", candidate, "--window", "3650d")
    assert code == 0, err
    assert f"agrees with what callers were answered on {agreed} rows" in out


def test_a_replay_gate_passes_and_fails(demo_store: trenches.Store, tmp_path: Path) -> None:
    store = demo_store
    production = store.models.get("cancer-clf@production")
    versions = [v for v in store.models.versions("cancer-clf") if v.id != production.id]
    replayed, never = versions[0].ref, versions[1].ref
    agreement = store.replays.run(replayed, window=None).agreement
    assert agreement is not None and agreement < 1

    def check(ref: str, bound: float) -> trenches.Check:
        toml = tmp_path / "trenches.toml"
        toml.write_text(
            f'[[gates.cancer-clf]]\nmetric = "replay-agreement"\nmin = {bound}\n', encoding="utf-8"
        )
        return store.gates.check(ref, path=toml)

    held = check(replayed, round(agreement - 0.01, 4))
    assert held.passed and held.results[0].figure == pytest.approx(agreement)
    assert "rows answered as callers were" in held.results[0].detail
    missed = check(replayed, round(agreement + 0.001, 4))
    assert not missed.passed
    unreplayed = check(never, 0.5)
    assert not unreplayed.passed and "no replay" in unreplayed.results[0].detail

    toml = tmp_path / "wrong.toml"
    toml.write_text(
        '[[gates.cancer-clf]]\nmetric = "replay-agreement"\non = "test"\nmin = 0.9\n',
        encoding="utf-8",
    )
    with pytest.raises(trenches.InvalidConfig, match="request log"):
        store.gates.check(replayed, path=toml)


def test_a_replay_without_requests_to_replay_says_so(demo_store: trenches.Store) -> None:
    store = demo_store
    candidate = store.models.versions("cancer-clf")[0].ref
    with pytest.raises(NotFound, match="nothing to replay"):
        store.replays.run(candidate, window=None, since="2000-01-01", until="2000-01-02")
    with pytest.raises(InvalidInput, match="either"):
        store.replays.run(candidate, window="7d", since="2000-01-01")
    assert store.replays.of(candidate) == []
