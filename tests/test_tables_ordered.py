"""The least ids a reader keeps, read row group by row group in the order of their
bounds, are the least of a plain filter of every row (trenches.tables.ordered)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trenches.tables import ordered
from trenches.tables.catalog import Tables
from trenches.tables.io import PREFIX
from trenches.tables.pruning import Bound


def _files(root: Path, sizes: list[int], seed: int) -> tuple[list[tuple[str, int, int]], pa.Table]:
    """Files of rows by split then id, in row groups of five rows, their ids drawn
    from overlapping ranges; with their spans (location, least and most id), least
    first, and every row."""
    rng = np.random.default_rng(seed)
    pool = rng.permutation(np.arange(1, 4 * sum(sizes) + 1))
    spans, parts = [], []
    for k, n in enumerate(sizes):
        ids, pool = pool[:n], pool[n:]
        split = rng.integers(0, 3, size=n)
        order = np.lexsort((ids, split))
        table = pa.table(
            {
                "pattern_id": ids[order].astype(np.int64),
                "split": split[order].astype(np.int32),
                "x": rng.integers(0, 10, size=n)[order],
            }
        )
        pq.write_table(table, root / f"part-{k}.parquet", row_group_size=5)
        spans.append((f"{PREFIX}part-{k}.parquet", int(ids.min()), int(ids.max())))
        parts.append(table)
    spans.sort(key=lambda span: span[1])
    return spans, pa.concat_tables(parts)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    seed=st.integers(0, 9),
    split=st.one_of(st.none(), st.integers(0, 2)),
    low=st.one_of(st.none(), st.integers(0, 200)),
    high=st.one_of(st.none(), st.integers(0, 200)),
    below=st.integers(0, 10),
    n=st.integers(1, 30),
    in_order=st.booleans(),
)
def test_the_least_ids_kept_are_those_of_a_filter_of_every_row(  # noqa: PLR0913
    tmp_path: Path,
    sizes: list[int],
    seed: int,
    split: int | None,
    low: int | None,
    high: int | None,
    below: int,
    n: int,
    in_order: bool,
) -> None:
    root = tmp_path / f"t{seed}-{'-'.join(map(str, sizes))}"
    root.mkdir(exist_ok=True)
    spans, every = _files(root, sizes, seed)
    bounds = [Bound("pattern_id", low, high)]
    if split is not None:
        bounds.append(Bound("split", split, split))
    found = ordered.least(
        Tables(str(root)),
        spans,
        column="pattern_id",
        columns=["x"],
        bounds=bounds,
        keep=lambda part: part.column("x").to_numpy() < below,
        n=n,
        ordered=in_order,
    )
    ids, x = every.column("pattern_id").to_numpy(), every.column("x").to_numpy()
    wanted = (x < below) & (ids >= (low or 0)) & (ids <= (10**9 if high is None else high))
    if split is not None:
        wanted &= every.column("split").to_numpy() == split
    matches = np.sort(ids[wanted])
    assert list(found) == sorted(found)
    if in_order:
        assert found.tolist() == matches[:n].tolist()
    else:
        assert len(found) == min(n, len(matches))
        assert set(found.tolist()) <= set(matches.tolist())
