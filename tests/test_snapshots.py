"""Snapshots: rebuilt from timestamps alone, with a content digest; training data."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import trenches
from trenches.db import schema as t

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


# --- verify() recomputes what the digest stands for from the stored rows ---------------


def _edit_behind_trenches_back(store: trenches.Store, sql: str, **params: object) -> None:
    """Change a stored row with plain SQL, as a careless script or a bad migration might."""
    from sqlalchemy import text

    with store.engine.begin() as conn:
        assert conn.execute(text(sql), params).rowcount == 1


def _edit_table_behind_trenches_back(
    store: trenches.Store,
    dataset: trenches.Dataset,
    pid: int,
    what: str,
    value: bytes | None = None,
) -> None:
    """Rewrite the Parquet file of the dataset's table that holds pattern ``pid`` with
    one of its values changed (its ``input_key`` to ``value``), as a careless script
    might."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trenches import tables
    from trenches.db.engine import read
    from trenches.tables.io import relative

    with read(store.engine) as conn:
        store_tables = tables.of(conn)
        files = store_tables.files(conn, f"patterns_{dataset.id}")
    fs = store_tables.fs
    for location in files:
        with fs.open(relative(location), "rb") as f:
            data = pq.read_table(f)
        at = np.flatnonzero(data.column("pattern_id").to_numpy() == pid)
        if not len(at):
            continue
        i = int(at[0])
        if what == "label":
            labels = data.column("label").to_pylist()
            labels[i] = "benign" if labels[i] == "malignant" else "malignant"
            data = data.set_column(
                data.schema.get_field_index("label"),
                data.schema.field("label"),
                pa.array(labels, data.schema.field("label").type),
            )
        elif what == "input_key":
            keys = data.column("input_key").to_pylist()
            keys[i] = value
            data = data.set_column(
                data.schema.get_field_index("input_key"),
                data.schema.field("input_key"),
                pa.array(keys, data.schema.field("input_key").type),
            )
        elif what == "split":
            split = data.column("split").to_numpy().copy()
            split[i] = 2
            data = data.set_column(
                data.schema.get_field_index("split"),
                data.schema.field("split"),
                pa.array(split, data.schema.field("split").type),
            )
        else:
            struct = data.column("inputs").combine_chunks()
            name = "radius" if what == "number input" else "site"
            children = [struct.field(j) for j in range(struct.type.num_fields)]
            j = struct.type.get_field_index(name)
            values = children[j].to_pylist()
            if name == "radius":
                values[i] += 1.0
            else:
                values[i] = "left" if values[i] != "left" else "right"
            children[j] = pa.array(values, children[j].type)
            inputs = pa.StructArray.from_arrays(children, fields=list(struct.type))
            data = data.set_column(
                data.schema.get_field_index("inputs"), data.schema.field("inputs"), inputs
            )
        with fs.open(relative(location), "wb") as f:
            pq.write_table(data, f)
        return
    raise AssertionError(f"pattern {pid} is in no file of the table")


@pytest.mark.parametrize("what", ["label", "number input", "string input", "split"])
def test_verify_catches_a_row_edited_behind_the_store(
    store: trenches.Store, dataset: trenches.Dataset, what: str
) -> None:
    snap = dataset.snapshot()
    X, y, _, ids = snap.training_data("train")
    pid = int(ids[0])
    assert snap.verify()
    _edit_table_behind_trenches_back(store, dataset, pid, what)
    # The training data did change under the snapshot ...
    X2, y2, _, ids2 = snap.training_data("train")
    assert not (X2.equals(X) and np.array_equal(y2, y) and np.array_equal(ids2, ids)), (
        "the edit changed nothing a model would see"
    )
    # ... and verify says so.
    assert not snap.verify()


@pytest.fixture
def legacy_dataset(store: trenches.Store, frame: pd.DataFrame) -> trenches.Dataset:
    """The ``dataset`` fixture as an earlier release kept it: its patterns' inputs
    packed in their database rows, and no table."""
    from trenches.db import schema as t

    store.datasets.create("tumours", task="classification", label="label")
    with store.engine.begin() as conn:
        conn.execute(t.datasets.update().values(columnar=False))
    ds = store.datasets.get("tumours")
    assert not ds.columnar
    ds.add(frame, source="expert", labelled_by="dr.a", created_at="2026-01-01")
    return ds


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE patterns SET label = 'other' WHERE id = :i",
        "UPDATE patterns SET split = 2 WHERE id = :i",
        "UPDATE patterns SET created_at = created_at - 1 WHERE id = :i",
        "UPDATE patterns SET obj = '[\"left\"]' WHERE id = :i AND obj != '[\"left\"]'",
    ],
)
def test_verify_catches_a_row_of_an_earlier_releases_dataset_edited_behind_the_store(
    store: trenches.Store, legacy_dataset: trenches.Dataset, sql: str
) -> None:
    """A dataset of an earlier release keeps its patterns in database rows: verify
    rechecks those."""
    snap = legacy_dataset.snapshot()
    _, _, _, ids = snap.training_data("train")
    assert snap.verify()
    pid = next(
        int(i) for i in ids if legacy_dataset.patterns(ids=[int(i)])["site"].iat[0] != "left"
    )
    _edit_behind_trenches_back(store, sql, i=pid)
    assert not snap.verify()


def test_verify_holds_for_an_untouched_snapshot_with_every_column_type(
    store: trenches.Store,
) -> None:
    ds = store.datasets.create("types", task="classification", label="label", text="note")
    frame = pd.DataFrame(
        {
            "x": [1.5, np.nan, -0.0, 1e300],
            "n": pd.array([1, None, -(2**62), 7], dtype="Int64"),
            "flag": pd.array([True, None, False, True], dtype="boolean"),
            "site": ["a", None, "Ünïcode ", "b"],
            "note": ["Some  TEXT", "x", None, "ok"],
            "label": ["p", "q", "p", "q"],
        }
    )
    ds.add(frame, source="expert", created_at="2026-01-01")
    store.patterns.relabel(2, "p", source="crowd", reason="second look")
    assert ds.snapshot().verify()


def test_verify_catches_an_edited_input_key_of_a_held_out_pattern(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    store.problems.create("odd", dataset="tumours", title="odd ones")
    store.problems.add("odd", positive=[5])
    snap = dataset.snapshot()
    assert snap.held_out == (5,) and snap.verify()
    excluded = snap.excluded_ids()
    # Point the held-out pattern's key at another pattern's inputs: a different set of
    # patterns would be left out of training.
    other = _input_key_of(store, dataset, 6)
    _edit_table_behind_trenches_back(store, dataset, 5, "input_key", other)
    assert not np.array_equal(snap.excluded_ids(), excluded)
    assert not snap.verify()


def test_verify_catches_an_edited_input_key_of_a_held_out_pattern_of_an_earlier_release(
    store: trenches.Store, legacy_dataset: trenches.Dataset
) -> None:
    store.problems.create("odd", dataset="tumours", title="odd ones")
    store.problems.add("odd", positive=[5])
    snap = legacy_dataset.snapshot()
    assert snap.held_out == (5,) and snap.verify()
    excluded = snap.excluded_ids()
    _edit_behind_trenches_back(
        store,
        "UPDATE patterns SET input_key = (SELECT input_key FROM patterns WHERE id = 6) "
        "WHERE id = 5",
    )
    assert not np.array_equal(snap.excluded_ids(), excluded)
    assert not snap.verify()


def _input_key_of(store: trenches.Store, dataset: trenches.Dataset, pid: int) -> bytes:
    """The input key of pattern ``pid`` in the dataset's table."""
    from trenches.db.engine import read
    from trenches.patterns import columnar

    with read(store.engine) as conn:
        data = columnar.read(conn, dataset.id, columns=["input_key"], ids=np.array([pid]))
    assert data is not None and data.num_rows == 1
    key = data.column("input_key")[0].as_py()
    assert isinstance(key, bytes)
    return key


_NAMES = itertools.count()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(1, 300), min_size=1, max_size=4),
    seed=st.integers(0, 1000),
    deactivate=st.integers(0, 5),
)
def test_training_data_is_every_number_added_in_id_order(
    sqlite_store: trenches.Store, sizes: list[int], seed: int, deactivate: int
) -> None:
    """Numbers streamed from several imports (their splits interleaved in each file)
    into one array come back each in its pattern's row, missing ones NaN, the
    deactivated left out: for every split and for all of them."""
    store = sqlite_store
    rng = np.random.default_rng(seed)
    ds = store.datasets.create(f"nums-{next(_NAMES)}", task="classification", label="y")
    added = []
    for i, n in enumerate(sizes):
        x = rng.normal(size=(n, 3))
        x[rng.random((n, 3)) < 0.1] = np.nan
        added.append(x)
        frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
        frame["y"] = rng.choice(["p", "q"], n)
        ds.add(frame, source=f"import-{i}")
    every = np.vstack(added)
    info = ds.pattern_info()
    first = int(info.index.min())
    off = info.index.to_numpy()[: min(deactivate, len(info) - 1)]
    if len(off):
        store.patterns.deactivate(off.tolist(), reason="test")
    snap = ds.snapshot()
    for split in (None, "train", "validation", "test"):
        X, _, _, ids = snap.training_data(split)
        assert not np.isin(ids, off).any()
        assert (np.diff(ids) > 0).all()
        assert np.array_equal(X.to_numpy(), every[ids - first], equal_nan=True)
        if split is None:
            assert len(ids) == len(every) - len(off)
    # A snapshot of one import's patterns reads that import's rows alone.
    of_first = ds.snapshot(sources=["import-0"]) if len(off) < sizes[0] else None
    if of_first is not None:
        X, _, _, ids = of_first.training_data(None)
        assert set(ids.tolist()) == set(range(first, first + sizes[0])) - set(off.tolist())
        assert np.array_equal(X.to_numpy(), every[ids - first], equal_nan=True)


# --- a columnar dataset needs no database row a pattern ----------------------------------


def test_a_columnar_datasets_snapshots_summary_lineage_and_dedup_read_its_table_alone(
    store: trenches.Store, dataset: trenches.Dataset, frame: pd.DataFrame
) -> None:
    """A columnar dataset's snapshots, summary, lineage counts and import dedup come
    from its table and pattern changes: the database holds no row of its patterns."""
    from sklearn.linear_model import LogisticRegression

    # Every rule of membership at work: patterns deactivated and relabelled, a later
    # import of another source, a held-out problem pattern and a copy of its inputs.
    store.patterns.deactivate([1, 2], reason="bad")
    old = store.patterns.get(3).label
    store.patterns.relabel(
        3, "benign" if old == "malignant" else "malignant", source="expert", reason="fix"
    )
    copy = frame.iloc[[4]].assign(label="benign")  # the inputs of pattern 5
    dataset.add(
        pd.concat([make_frame(20, seed=5), copy], ignore_index=True),
        source="crowd",
        created_at="2026-02-01",
    )
    store.problems.create("odd", dataset="tumours", title="odd ones")
    store.problems.add("odd", positive=[5])
    snaps = [
        dataset.snapshot(),
        dataset.snapshot(as_of="2026-01-15"),
        dataset.snapshot(sources=["crowd"]),
    ]
    assert all(s.verify() for s in snaps)
    X, y, _, _ = snaps[0].training_data()
    with store.run("fit", snapshot=snaps[0], capture_code=False) as run:
        version = run.log_model(LogisticRegression().fit(X[["radius", "texture"]], y), "clf")
    asked = np.array([5, 222, 3, 201, *range(6, 40), 2, 10**9])

    def answers(ds: trenches.Dataset) -> dict[str, object]:
        return {
            # (each call takes snapshots again: their number is left out)
            "summary": dataclasses.replace(ds.summary(), snapshots=0),
            "digests": [ds.snapshot(as_of=s.as_of, sources=s.sources).digest for s in snaps],
            "excluded": [s.excluded_ids().tolist() for s in snaps],
            "trained_on": [s.trained_on(asked).tolist() for s in snaps],
            "lineage": store.lineage(version.ref).data,
        }

    from_table = answers(dataset)
    assert from_table["digests"] == [s.digest for s in snaps]
    assert from_table["excluded"] == [[5, 222], [5], [222]]
    assert any(from_table["trained_on"][0]) and not from_table["trained_on"][0][-1]
    assert all(s.verify() for s in snaps)
    assert answers(dataset) == from_table  # the same answers when asked again
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(func.count()).where(t.patterns.c.dataset_id == dataset.id)
        ).scalar_one()
    assert rows == 0
    # An import finds the rows the dataset holds already in its table.
    added = dataset.add(
        pd.concat([frame.iloc[:30], make_frame(5, seed=77)], ignore_index=True),
        source="expert",
        created_at="2026-03-01",
        skip_existing=True,
    )
    assert (added.skipped, added.rows) == (30, 5)
