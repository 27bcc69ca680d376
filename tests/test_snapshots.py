"""Snapshots: rebuilt from timestamps alone, with a content digest; training data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trenches

from conftest import make_frame


def test_the_same_snapshot_rebuilt_from_timestamps_has_the_same_digest(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    first = dataset.snapshot()
    again = dataset.snapshot(as_of=first.as_of)
    assert again.digest == first.digest and again.patterns == first.patterns == 200
    assert first.verify()


def test_later_changes_leave_an_earlier_snapshot_as_it_was(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    snap = dataset.snapshot()
    before = snap.data()[0]
    store.patterns.deactivate([1, 2], reason="bad")
    p = store.patterns.get(3)
    store.patterns.relabel(
        3, "benign" if p.label == "malignant" else "malignant", source="expert", reason="fix"
    )
    dataset.add(make_frame(10, seed=9), source="crowd", created_at="2025-06-01")  # backdated
    assert snap.verify()
    pd.testing.assert_frame_equal(snap.data()[0], before)
    now = dataset.snapshot()
    assert now.digest != snap.digest
    assert now.patterns == 200 - 2 + 10


def test_as_of_selects_what_was_there_then(store: trenches.Store) -> None:
    ds = store.datasets.create("t", task="classification", label="label")
    ds.add(make_frame(30, seed=1), source="expert", created_at="2026-01-10")
    ds.add(make_frame(20, seed=2), source="crowd", created_at="2026-02-10")
    ds.add(make_frame(10, seed=3), source="expert", created_at="2026-03-10")
    assert ds.snapshot(as_of="2026-01-31").patterns == 30
    assert ds.snapshot(as_of="2026-02-28").patterns == 50
    assert ds.snapshot(as_of="2026-03-31", sources=["expert"]).patterns == 40
    with pytest.raises(trenches.InvalidInput, match="no active patterns"):
        ds.snapshot(as_of="2025-12-31")
    with pytest.raises(trenches.InvalidInput, match="future"):
        ds.snapshot(as_of="2999-01-01")


def test_digest_depends_on_content_not_on_ids(store: trenches.Store) -> None:
    frame = make_frame(50, seed=4)
    a = store.datasets.create("a", task="classification", label="label")
    b = store.datasets.create("b", task="classification", label="label")
    a.add(frame, source="expert", created_at="2026-01-01")
    b.add(frame.iloc[::-1], source="expert", created_at="2026-01-01")
    assert a.snapshot().digest == b.snapshot().digest
    c = store.datasets.create("c", task="classification", label="label")
    changed = frame.copy()
    changed.loc[0, "radius"] = np.nextafter(changed.loc[0, "radius"], np.inf)
    c.add(changed, source="expert", created_at="2026-01-01")
    assert c.snapshot().digest != a.snapshot().digest


def test_training_data_returns_x_y_and_weights_for_a_split(
    store: trenches.Store, dataset: trenches.Dataset, frame: pd.DataFrame
) -> None:
    snap = dataset.snapshot()
    X, y, w, ids = snap.training_data("train")
    info = dataset.pattern_info()
    assert set(ids) == set(info.index[info["split"] == "train"])
    assert list(X.columns) == ["radius", "texture", "grade", "site"]
    assert len(X) == len(y) == len(w) and (w == 1).all()
    expected = frame.loc[ids - 1, "label"].to_numpy()  # ids are 1.. in import order
    assert (y == expected).all()
    all_x, _, _, _ = snap.training_data(None)
    assert len(all_x) == 200


def test_recency_weights(store: trenches.Store) -> None:
    ds = store.datasets.create("w", task="classification", label="label")
    ds.add(make_frame(40, seed=1), source="expert", created_at="2026-01-01")
    ds.add(make_frame(40, seed=2), source="expert", created_at="2026-01-31")
    snap = ds.snapshot(as_of="2026-01-31")
    info = ds.pattern_info()
    old = info.index[info["created_at"] < pd.Timestamp("2026-01-15", tz="UTC")]
    _, _, w, ids = snap.training_data(None, weighting="exponential", half_life_days=30)
    weights = pd.Series(w, index=ids)
    assert weights.mean() == pytest.approx(1.0)
    ratio = weights[~weights.index.isin(old)].iloc[0] / weights[old].iloc[0]
    assert ratio == pytest.approx(2.0)  # 30 days older, half-life 30 days
    _, _, w2, ids2 = snap.training_data(None, weighting="inverse-age", age_offset_days=1)
    weights2 = pd.Series(w2, index=ids2)
    ratio2 = weights2[~weights2.index.isin(old)].iloc[0] / weights2[old].iloc[0]
    assert ratio2 == pytest.approx(31.0)  # 1/(0+1) against 1/(30+1)
    with pytest.raises(trenches.InvalidInput, match="weighting"):
        snap.training_data(weighting="newest")


def test_snapshot_counts(store: trenches.Store, dataset: trenches.Dataset) -> None:
    counts = dataset.snapshot().counts()
    assert counts["patterns"].sum() == 200
    assert set(counts["split"]) <= {"train", "validation", "test"}
    assert set(counts["source"]) == {"expert"}
