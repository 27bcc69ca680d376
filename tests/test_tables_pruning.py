"""Reads that skip row groups by their statistics give exactly the rows a plain
filter gives (trenches.tables.pruning)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trenches.tables import pruning
from trenches.tables.catalog import Tables
from trenches.tables.io import PREFIX
from trenches.tables.pruning import Bound


def _file(folder: Path, n: int, seed: int) -> Path:
    """``n`` rows by split then id, as the patterns tables hold them, in row groups of
    seven rows, so that a group may hold two splits."""
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(np.arange(1, 4 * n + 1), size=n, replace=False))
    split = rng.integers(0, 3, size=n)
    order = np.lexsort((ids, split))
    table = pa.table(
        {
            "pattern_id": ids[order],
            "split": split[order].astype(np.int32),
            "created_at": rng.integers(0, 50, size=n),
            "x": rng.normal(size=n),
        }
    )
    path = folder / f"rows-{seed}-{n}.parquet"
    pq.write_table(table, path, row_group_size=7)
    return path


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 90),
    seed=st.integers(0, 5),
    split=st.one_of(st.none(), st.integers(0, 3)),
    wanted=st.one_of(st.none(), st.lists(st.integers(0, 400), max_size=40)),
    max_id=st.one_of(st.none(), st.integers(0, 400)),
    as_of=st.one_of(st.none(), st.integers(0, 60)),
)
def test_pruned_reads_equal_a_filter_of_every_row(
    tmp_path: Path,
    n: int,
    seed: int,
    split: int | None,
    wanted: list[int] | None,
    max_id: int | None,
    as_of: int | None,
) -> None:
    path = _file(tmp_path, n, seed)
    among = None if wanted is None else np.unique(np.asarray(wanted, dtype=np.int64))
    bounds = []
    if split is not None:
        bounds.append(Bound("split", split, split))
    if among is not None or max_id is not None:
        bounds.append(Bound("pattern_id", None, max_id, among).narrowed())
    if as_of is not None:
        bounds.append(Bound("created_at", None, as_of))
    opened = pq.ParquetFile(path)
    groups, whole = pruning.row_groups(opened.metadata, bounds)
    got = opened.read_row_groups(groups) if groups else opened.read_row_groups([])
    if not all(whole):
        got = pruning.filtered(got, bounds)

    every = pq.read_table(path).to_pandas()
    keep = np.ones(len(every), dtype=bool)
    if split is not None:
        keep &= every["split"].to_numpy() == split
    if among is not None:
        keep &= np.isin(every["pattern_id"].to_numpy(), among)
    if max_id is not None:
        keep &= every["pattern_id"].to_numpy() <= max_id
    if as_of is not None:
        keep &= every["created_at"].to_numpy() <= as_of
    assert got.to_pandas().equals(every[keep].reset_index(drop=True))
    # A group read unfiltered holds only rows the read wants.
    for group, inside in zip(groups, whole, strict=True):
        if inside:
            rows = opened.read_row_group(group)
            assert len(pruning.filtered(rows, bounds)) == rows.num_rows


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 90),
    seed=st.integers(0, 5),
    split=st.one_of(st.none(), st.integers(0, 3)),
    wanted=st.lists(st.integers(0, 400), max_size=40),
    columns=st.sampled_from([["x"], ["split", "x"], ["pattern_id"], ["x", "created_at"]]),
    rows=st.one_of(st.none(), st.integers(1, 30)),
)
def test_batches_read_by_ids_are_the_rows_a_filter_gives(
    tmp_path: Path,
    n: int,
    seed: int,
    split: int | None,
    wanted: list[int],
    columns: list[str],
    rows: int | None,
) -> None:
    """A read of some ids reads each row group's ids first and its other columns only
    when some are wanted: what it gives is still each wanted row once, in the file's
    order, with the columns asked for and the bounds' own."""
    path = _file(tmp_path, n, seed)
    among = np.unique(np.asarray(wanted, dtype=np.int64))
    bounds = [Bound("pattern_id", None, None, among).narrowed()]
    if split is not None:
        bounds.append(Bound("split", split, split))
    parts = list(
        Tables(str(tmp_path)).batches(
            [PREFIX + path.name], columns=columns, bounds=bounds, rows=rows
        )
    )
    assert parts  # an empty read still gives its schema
    got = pa.concat_tables(parts)

    every = pq.read_table(path)
    keep = np.isin(every.column("pattern_id").to_numpy(), among)
    if split is not None:
        keep &= every.column("split").to_numpy() == split
    names = list(dict.fromkeys([*columns, "pattern_id", *(["split"] if split is not None else [])]))
    assert got.column_names == names
    assert got.equals(every.filter(pa.array(keep)).select(names))


@given(
    values=st.lists(st.integers(-50, 5_000), max_size=60),
    wanted=st.lists(st.integers(-50, 5_000), max_size=60),
)
def test_among_is_membership(values: list[int], wanted: list[int]) -> None:
    """The bitmap (dense ids) and the binary search (sparse ones) both say exactly
    which values are wanted."""
    v = np.asarray(values, dtype=np.int64)
    w = np.unique(np.asarray(wanted, dtype=np.int64))
    assert (pruning.among(v, w) == np.isin(v, w)).all()
