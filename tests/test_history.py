"""Patterns are immutable: relabel and deactivate keep history (invariant 1)."""

from __future__ import annotations

import pandas as pd
import pytest

import trenches

from conftest import assert_id_ranges_hold, make_frame


def test_relabel_keeps_the_old_pattern_and_links_the_new_one(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    old = store.patterns.get(1)
    new_label = "benign" if old.label == "malignant" else "malignant"
    new = store.patterns.relabel(1, new_label, source="expert", reason="biopsy", labelled_by="dr.b")
    assert new.id != old.id
    assert new.replaces_id == old.id
    assert new.label == new_label
    assert new.inputs == old.inputs
    assert new.split == old.split
    assert new.source == "expert" and new.labelled_by == "dr.b"
    kept = store.patterns.get(1)
    assert kept.label == old.label
    assert kept.deactivated_at is not None
    active = dataset.patterns()
    assert 1 not in active.index and new.id in active.index
    assert len(active) == 200


def test_history_shows_the_chain_from_any_version(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    first = store.patterns.get(5)
    flip = {"benign": "malignant", "malignant": "benign"}
    second = store.patterns.relabel(5, flip[first.label], source="crowd", reason="vote")
    third = store.patterns.relabel(second.id, first.label, source="expert", reason="review")
    for pid in (5, second.id, third.id):
        h = store.patterns.history(pid)
        assert [p.id for p in h.patterns] == [5, second.id, third.id]
        assert [c.reason for c in h.changes] == ["vote", "review"]
        assert h.current.id == third.id and h.current.active


def test_relabel_of_an_inactive_pattern_is_refused(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    store.patterns.deactivate([3], reason="blurry")
    with pytest.raises(trenches.Conflict, match="inactive"):
        store.patterns.relabel(3, "benign", source="expert", reason="x")


def test_relabel_to_a_label_of_the_wrong_type_is_refused(store: trenches.Store) -> None:
    ds = store.datasets.create("r", task="regression", label="y")
    import pandas as pd

    ds.add(pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, 1.5]}), source="expert")
    with pytest.raises(trenches.InvalidInput, match="not a number"):
        store.patterns.relabel(1, "tall", source="expert", reason="x")
    assert len(ds.patterns()) == 2


def test_deactivate_is_all_or_nothing(store: trenches.Store, dataset: trenches.Dataset) -> None:
    with pytest.raises(trenches.NotFound, match="99999"):
        store.patterns.deactivate([2, 99999], reason="cleanup")
    assert store.patterns.get(2).active
    assert store.patterns.deactivate([2, 4], reason="cleanup") == 2
    with pytest.raises(trenches.Conflict, match="inactive already"):
        store.patterns.deactivate([4, 6], reason="again")
    assert store.patterns.get(6).active
    assert len(dataset.patterns()) == 198
    assert len(dataset.patterns(include_inactive=True)) == 200


def test_deactivate_in_a_dataset_finds_only_its_patterns(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    other = store.datasets.create("other", task="classification", label="label")
    with pytest.raises(trenches.NotFound, match="no pattern with id 3 in dataset 'other'"):
        store.patterns.deactivate([3], reason="cleanup", dataset="other")
    assert store.patterns.get(3).active
    with pytest.raises(trenches.NotFound, match="no dataset named 'nope'"):
        store.patterns.deactivate([3], reason="cleanup", dataset="nope")
    assert other.name == "other"
    assert store.patterns.deactivate([3], reason="cleanup", dataset="tumours") == 1
    [change] = store.patterns.history(3).changes
    assert (change.kind, change.reason) == ("deactivate", "cleanup")


def test_a_change_needs_a_reason(store: trenches.Store, dataset: trenches.Dataset) -> None:
    with pytest.raises(trenches.InvalidInput, match="reason"):
        store.patterns.deactivate([1], reason=" ")
    with pytest.raises(trenches.InvalidInput, match="reason"):
        store.patterns.relabel(1, "benign", source="expert", reason="")


def test_unknown_pattern_is_not_found(store: trenches.Store, dataset: trenches.Dataset) -> None:
    with pytest.raises(trenches.NotFound, match="12345"):
        store.patterns.get(12345)


def test_every_batch_keeps_the_ids_it_made_and_every_change_its_dataset(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    store.patterns.relabel(
        1,
        "benign" if store.patterns.get(1).label == "malignant" else "malignant",
        source="expert",
        reason="biopsy",
    )
    store.patterns.deactivate([2, 3], reason="blurred")
    other = store.datasets.create("other", task="classification", label="label")
    other.add(make_frame(30, seed=4), source="expert")
    # Half of these are stored already: the batch keeps only the ids of the new ones.
    again = pd.concat([make_frame(30, seed=4).iloc[:15], make_frame(20, seed=5)])
    done = other.add(again, source="expert", skip_existing=True)
    assert done.rows == 20 and done.last_id - done.first_id + 1 == 20  # type: ignore[operator]
    store.patterns.deactivate([int(other.pattern_ids()[0])], reason="blurred")
    # The next import's ids begin past every id made, the relabel's included.
    later = dataset.add(make_frame(5, seed=6), source="expert")
    assert later.first_id == done.last_id + 1  # type: ignore[operator]
    assert_id_ranges_hold(store)
