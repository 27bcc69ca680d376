"""What changed between two snapshots: ``store.snapshots.diff`` and ``trenches data diff``."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trenches
from trenches.patterns.diff import DataChange, SnapshotDiff

from conftest import make_frame, run_cli


def other(label: str) -> str:
    return "benign" if label == "malignant" else "malignant"


def relabel(
    store: trenches.Store, pid: int, *, reason: str = "second opinion", by: str = "dr.house"
) -> trenches.Pattern:
    """Give ``pid`` the other label."""
    label = store.patterns.get(pid).label
    return store.patterns.relabel(pid, other(label), source="expert", reason=reason, labelled_by=by)


def members(snapshot: trenches.Snapshot) -> set[int]:
    return set(snapshot.pattern_ids().tolist())


# --- added, removed, relabelled --------------------------------------------------------


def test_patterns_imported_between_the_snapshots_are_added(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    result = dataset.add(make_frame(5, seed=1), source="crowd", labelled_by="crowd-vendor")
    b = dataset.snapshot()
    diff = store.snapshots.diff(a.id, b.id)
    assert diff.a.id == a.id and diff.b.id == b.id
    assert diff.added.index.name == "pattern_id"
    assert list(diff.added.index) == list(range(result.first_id, result.last_id + 1))
    assert list(diff.added.columns) == [
        "split",
        "source",
        "labelled_by",
        "batch_id",
        "label",
        "created_at",
    ]
    assert set(diff.added["source"]) == {"crowd"}
    assert set(diff.added["labelled_by"]) == {"crowd-vendor"}
    assert set(diff.added["batch_id"]) == {result.batch_id}
    assert list(diff.added["label"]) == list(make_frame(5, seed=1)["label"])
    assert len(diff.removed) == len(diff.relabelled) == 0


def test_a_deactivated_pattern_is_removed_with_its_reason(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    store.patterns.deactivate([17, 18], reason="duplicate of 16")
    diff = store.snapshots.diff(a, dataset.snapshot())
    assert list(diff.removed.index) == [17, 18]
    assert list(diff.removed["why"]) == ["deactivated", "deactivated"]
    assert list(diff.removed["reason"]) == ["duplicate of 16", "duplicate of 16"]
    assert set(diff.removed["labelled_by"]) == {"dr.a"}
    assert len(diff.added) == len(diff.relabelled) == 0


def test_a_relabel_pairs_the_version_in_a_with_the_one_in_b(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    old = store.patterns.get(42)
    new = relabel(store, 42)
    diff = store.snapshots.diff(a, dataset.snapshot())
    assert len(diff.added) == len(diff.removed) == 0
    [row] = diff.relabelled.to_dict("records")
    assert row["old_id"] == 42 and row["new_id"] == new.id
    assert (row["old_label"], row["new_label"]) == (old.label, new.label)
    assert (row["source"], row["labelled_by"]) == ("expert", "dr.house")
    assert row["batch_id"] == new.batch_id != old.batch_id
    assert row["reason"] == "second opinion"
    assert row["changed_at"] == store.patterns.get(42).deactivated_at


def test_a_relabel_of_a_relabel_between_the_snapshots_is_one_row(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    middle = relabel(store, 7, reason="first look")
    last = relabel(store, middle.id, reason="biopsy", by="dr.who")
    diff = store.snapshots.diff(a, dataset.snapshot())
    assert len(diff.relabelled) == 1 and len(diff.added) == len(diff.removed) == 0
    row = diff.relabelled.iloc[0]
    assert (row["old_id"], row["new_id"]) == (7, last.id)
    # The row tells the relabel that made B's version: the latest one.
    assert (row["labelled_by"], row["reason"], row["batch_id"]) == (
        "dr.who",
        "biopsy",
        last.batch_id,
    )
    # Back to the first label: still one relabelled example, not a removal and an addition.
    assert row["old_label"] == row["new_label"] == store.patterns.get(7).label


def test_a_relabel_made_before_a_is_not_in_the_diff(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    relabel(store, 3)
    a = dataset.snapshot()
    relabel(store, 4)
    diff = store.snapshots.diff(a, dataset.snapshot())
    assert list(diff.relabelled["old_id"]) == [4]


def test_summary_counts_by_change_source_labeller_and_import(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    crowd = dataset.add(make_frame(6, seed=2), source="crowd", labelled_by="crowd-vendor")
    synthetic = dataset.add(make_frame(2, seed=3), source="synthetic")
    store.patterns.deactivate([1, 2, 3], reason="bad scans")
    first = relabel(store, 10)
    second = relabel(store, 11, by="dr.who")
    summary = store.snapshots.diff(a, dataset.snapshot()).summary()
    assert list(summary.columns) == ["change", "source", "labelled_by", "batch_id", "patterns"]
    assert summary.to_dict("records") == [
        {
            "change": "added",
            "source": "crowd",
            "labelled_by": "crowd-vendor",
            "batch_id": crowd.batch_id,
            "patterns": 6,
        },
        {
            "change": "added",
            "source": "synthetic",
            "labelled_by": None,
            "batch_id": synthetic.batch_id,
            "patterns": 2,
        },
        {
            "change": "relabelled",
            "source": "expert",
            "labelled_by": "dr.house",
            "batch_id": first.batch_id,
            "patterns": 1,
        },
        {
            "change": "relabelled",
            "source": "expert",
            "labelled_by": "dr.who",
            "batch_id": second.batch_id,
            "patterns": 1,
        },
        {
            "change": "removed",
            "source": "expert",
            "labelled_by": "dr.a",
            "batch_id": 1,
            "patterns": 3,
        },
    ]


# --- sources, order, datasets ----------------------------------------------------------


def test_a_source_filtered_snapshot_names_what_its_sources_leave_out(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    crowd = dataset.add(make_frame(4, seed=4), source="crowd", labelled_by="crowd-vendor")
    a = dataset.snapshot()
    moved = store.patterns.relabel(
        5, other(store.patterns.get(5).label), source="crowd", reason="vendor says"
    )
    b = dataset.snapshot(sources=["expert"])
    diff = store.snapshots.diff(a, b)
    crowd_ids = list(range(crowd.first_id, crowd.last_id + 1))
    assert list(diff.removed.index) == [5, *crowd_ids]
    assert list(diff.removed["why"]) == ["not in B's sources"] * 5
    assert (
        diff.removed.loc[5, "reason"]
        == f"relabelled as pattern {moved.id}, source crowd: vendor says"
    )
    assert diff.removed.loc[crowd_ids, "reason"].isna().all()
    assert len(diff.added) == len(diff.relabelled) == 0
    # From the expert-only snapshot back to every source, the crowd's patterns are added.
    back = store.snapshots.diff(b, dataset.snapshot())
    assert set(back.added.index) == {*crowd_ids, moved.id}


def test_snapshots_given_newest_first_say_what_came_after_b(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    added = dataset.add(make_frame(3, seed=5), source="crowd")
    store.patterns.deactivate([9], reason="blurred")
    new = relabel(store, 8)
    diff = store.snapshots.diff(dataset.snapshot(), a)
    assert list(diff.removed.index) == list(range(added.first_id, added.last_id + 1))
    assert set(diff.removed["why"]) == {"after B"}
    assert list(diff.added.index) == [9]
    row = diff.relabelled.iloc[0]
    assert (row["old_id"], row["new_id"]) == (new.id, 8)
    assert (row["old_label"], row["new_label"]) == (new.label, other(new.label))
    assert (row["batch_id"], row["reason"]) == (new.batch_id, "second opinion")


def test_snapshots_of_different_datasets_are_refused(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    prices = store.datasets.create("prices", task="classification", label="label")
    prices.add(make_frame(10, seed=6), source="expert")
    with pytest.raises(trenches.InvalidInput, match=r"'tumours'.*'prices'"):
        store.snapshots.diff(dataset.snapshot(), prices.snapshot())


def test_the_same_snapshot_twice_gives_an_empty_diff(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    diff = store.snapshots.diff(a, a.id)
    assert diff.empty
    assert len(diff.added) == len(diff.removed) == len(diff.relabelled) == len(diff.summary()) == 0
    assert list(diff.summary().columns) == [
        "change",
        "source",
        "labelled_by",
        "batch_id",
        "patterns",
    ]
    assert diff.held_out_added == diff.held_out_removed == ()
    assert diff.change(1) is None


def test_an_unknown_snapshot_is_not_found(store: trenches.Store, dataset: trenches.Dataset) -> None:
    with pytest.raises(trenches.NotFound, match="no snapshot with id 99"):
        store.snapshots.diff(dataset.snapshot(), 99)


def test_patterns_held_out_for_a_problem_opened_between_the_snapshots(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    store.problems.create("small", dataset="tumours", title="small tumours")
    store.problems.add("small", positive=[12, 13], backfill=False)
    b = dataset.snapshot()
    diff = store.snapshots.diff(a, b)
    assert diff.held_out_added == (12, 13) and diff.held_out_removed == ()
    assert store.snapshots.diff(b, a).held_out_removed == (12, 13)
    assert not diff.empty and len(diff.summary()) == 0


# --- one pattern's change ----------------------------------------------------------------


def test_change_finds_a_relabel_by_its_old_new_or_middle_id(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    middle = relabel(store, 7, reason="first look")
    last = relabel(store, middle.id, reason="biopsy")
    diff = store.snapshots.diff(a, dataset.snapshot())
    changes = [diff.change(i) for i in (7, middle.id, last.id)]
    assert [c.pattern_id for c in changes if c] == [7, middle.id, last.id]
    for c in changes:
        assert isinstance(c, DataChange)
        assert (c.kind, c.old_id, c.new_id, c.reason) == ("relabelled", 7, last.id, "biopsy")
    assert diff.change(8) is None


def test_change_of_an_added_and_a_removed_pattern(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    added = dataset.add(make_frame(1, seed=7), source="crowd", labelled_by="crowd-vendor")
    store.patterns.deactivate([3], reason="duplicate of 2")
    diff = store.snapshots.diff(a, dataset.snapshot())
    new = diff.change(added.first_id)
    assert new == DataChange(
        pattern_id=added.first_id,
        kind="added",
        source="crowd",
        labelled_by="crowd-vendor",
        batch_id=added.batch_id,
        old_id=None,
        new_id=added.first_id,
        old_label=None,
        new_label=make_frame(1, seed=7)["label"][0],
        reason=None,
    )
    gone = diff.change(3)
    assert gone is not None
    assert (gone.kind, gone.old_id, gone.new_id) == ("removed", 3, None)
    assert gone.reason == "deactivated: duplicate of 2"


def test_describe_says_what_happened_in_one_line(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    label = store.patterns.get(5).label
    new = relabel(store, 5)
    added = dataset.add(make_frame(1, seed=8), source="crowd", labelled_by="crowd-vendor")
    store.patterns.deactivate([6], reason="duplicate of 4")
    b = dataset.snapshot()
    diff = store.snapshots.diff(a, b)

    def line(pid: int, d: SnapshotDiff = diff) -> str:
        change = d.change(pid)
        assert change is not None
        return change.describe()

    assert line(5) == (
        f"relabelled {label} -> {other(label)} by dr.house (expert) in import "
        f"{new.batch_id}: second opinion"
    )
    assert line(added.first_id) == f"added by crowd-vendor (crowd) in import {added.batch_id}"
    six = store.patterns.get(6).label
    assert (
        line(6)
        == f"removed (deactivated: duplicate of 4); labelled {six} by dr.a (expert) in import 1"
    )
    assert line(5, store.snapshots.diff(b, a)) == (
        f"relabelled {other(label)} -> {label} (B is older: relabelled {label} -> {other(label)} "
        f"by dr.house (expert) in import {new.batch_id}: second opinion)"
    )


# --- the command line ---------------------------------------------------------------------


def test_cli_prints_the_counts_and_the_changes(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    dataset.add(make_frame(3, seed=9), source="crowd", labelled_by="crowd-vendor")
    store.patterns.deactivate([1], reason="duplicate of 2")
    label = store.patterns.get(4).label
    new = relabel(store, 4)
    b = dataset.snapshot()
    code, out, err = run_cli("--store", store.location.db_url, "data", "diff", a.id, b.id)
    assert code == 0, err
    assert "change" in out and "labelled by" in out and "import" in out
    assert "crowd-vendor" in out and "dr.house" in out
    assert "201: " in out and "202: " in out
    assert "1: deactivated (duplicate of 2)" in out
    assert f"4 -> {new.id}: {label} -> {other(label)} (dr.house, second opinion)" in out
    code, out, _ = run_cli(
        "--store", store.location.db_url, "data", "diff", a.id, b.id, "--limit", "1"
    )
    assert code == 0 and "added (3, the first 1 shown)" in out
    assert "201: " in out and "202: " not in out


def test_cli_json_holds_every_id_and_count(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    a = dataset.snapshot()
    dataset.add(make_frame(30, seed=10), source="crowd")
    store.patterns.deactivate([2], reason="blurred")
    new = relabel(store, 4)
    b = dataset.snapshot()
    code, out, err = run_cli(
        "--store", store.location.db_url, "data", "diff", a.id, b.id, "--json", "--limit", "2"
    )
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    assert (data["a"]["id"], data["b"]["id"]) == (a.id, b.id)
    assert [r["pattern_id"] for r in data["added"]] == list(range(201, 231))
    assert data["removed"][0]["pattern_id"] == 2 and data["removed"][0]["reason"] == "blurred"
    assert [(r["old_id"], r["new_id"]) for r in data["relabelled"]] == [(4, new.id)]
    assert {(c["change"], c["patterns"]) for c in data["counts"]} == {
        ("added", 30),
        ("removed", 1),
        ("relabelled", 1),
    }
    assert data["added"][0]["created_at"].endswith("Z")


def test_cli_unknown_snapshot_exits_2(store: trenches.Store, dataset: trenches.Dataset) -> None:
    a = dataset.snapshot()
    code, _, err = run_cli("--store", store.location.db_url, "data", "diff", a.id, 99)
    assert code == 2
    assert "no snapshot with id 99" in err and "Traceback" not in err


# --- the property: the diff rebuilds B from A ---------------------------------------------

_names = itertools.count()

step = st.one_of(
    st.tuples(st.just("import"), st.integers(1, 4), st.sampled_from(["expert", "crowd"])),
    st.tuples(st.just("relabel"), st.integers(0, 10_000), st.sampled_from(["expert", "crowd"])),
    st.tuples(st.just("deactivate"), st.integers(0, 10_000), st.integers(1, 3)),
)


def apply(store: trenches.Store, ds: trenches.Dataset, active: dict[int, str], op: tuple) -> None:
    """One import, relabel or deactivation; ``active`` follows the active patterns."""
    kind, n, arg = op
    ids = sorted(active)
    if kind == "import":
        result = ds.add(make_frame(n, seed=len(active)), source=arg, labelled_by=f"{arg}-1")
        active.update(dict.fromkeys(range(result.first_id, result.last_id + 1), arg))
    elif kind == "relabel" and ids:
        pid = ids[n % len(ids)]
        new = store.patterns.relabel(
            pid, other(store.patterns.get(pid).label), source=arg, reason="why not"
        )
        del active[pid]
        active[new.id] = arg
    elif kind == "deactivate" and len(ids) > arg:
        gone = [ids[(n + k) % len(ids)] for k in range(arg)]
        store.patterns.deactivate(gone, reason="gone")
        for pid in gone:
            del active[pid]


def test_the_diff_takes_a_to_b(store: trenches.Store) -> None:
    # 12 examples on SQLite; 6 on PostgreSQL with S3, where each of up to 13 imports,
    # relabels and deactivations commits through moto's server.
    on_postgresql = store.location.db_url.startswith("postgresql")

    @settings(max_examples=6 if on_postgresql else 12, deadline=None)
    @given(
        before=st.lists(step, max_size=4),
        between=st.lists(step, max_size=8),
        sources=st.tuples(
            st.sampled_from([None, ("expert",)]), st.sampled_from([None, ("expert",)])
        ),
        newest_first=st.booleans(),
    )
    def check(
        before: list[tuple],
        between: list[tuple],
        sources: tuple[tuple[str, ...] | None, tuple[str, ...] | None],
        newest_first: bool,
    ) -> None:
        ds = store.datasets.create(f"d{next(_names)}", task="classification", label="label")
        active: dict[int, str] = {}
        apply(store, ds, active, ("import", 5, "expert"))
        for op in before:
            apply(store, ds, active, op)
        first = ds.snapshot(sources=_some(active, sources[0]))
        for op in between:
            apply(store, ds, active, op)
        second = ds.snapshot(sources=_some(active, sources[1]))
        a, b = (second, first) if newest_first else (first, second)
        diff = store.snapshots.diff(a, b)
        old_ids = set(diff.relabelled["old_id"].tolist())
        new_ids = set(diff.relabelled["new_id"].tolist())
        removed, added = set(diff.removed.index.tolist()), set(diff.added.index.tolist())
        in_a, in_b = members(a), members(b)
        assert in_b == (in_a - removed - old_ids) | added | new_ids
        assert removed | old_ids <= in_a and not (removed & old_ids)
        assert added | new_ids <= in_b and not (added & new_ids)
        assert not (in_a & in_b & (removed | old_ids | added | new_ids))
        assert np.isin(diff.removed["why"], ["deactivated", "not in B's sources", "after B"]).all()
        for old, new in zip(diff.relabelled["old_id"], diff.relabelled["new_id"], strict=True):
            assert old in [p.id for p in store.patterns.history(int(new)).patterns]
        assert diff.summary()["patterns"].sum() == len(removed) + len(added) + len(old_ids)

    check()


def _some(active: dict[int, str], sources: tuple[str, ...] | None) -> list[str] | None:
    """``sources``, unless no active pattern is from them (a snapshot needs one)."""
    if sources is None or not set(sources) & set(active.values()):
        return None
    return list(sources)
