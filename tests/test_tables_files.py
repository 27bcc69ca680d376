"""The Parquet files the tables are written in: numbers that hardly repeat are written
plainly, without a dictionary tried on them first; the columns that do repeat keep
theirs; and a table made with an earlier release's settings takes today's with its next
write, in the same commit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trenches
from trenches import tables
from trenches.db.engine import read
from trenches.patterns import columnar
from trenches.tables import catalog

#: Rows enough that a column of distinct numbers outgrows a 64 KB dictionary many
#: times over (a 2 MB one would take them all).
ROWS = 40_000


def _frame(rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {"x": rng.normal(size=ROWS), "y": rng.choice(["cat", "dog", "eel"], size=ROWS)}
    )


def _table(store: trenches.Store, name: str) -> tuple[dict[str, str], list[str]]:
    """The table's properties, and its data files."""
    with read(store.engine) as conn:
        store_tables = tables.of(conn)
        table = store_tables.load(conn, name)
        assert table is not None
        files = store_tables.files(conn, name)
        return dict(table.properties), files


def _dictionaries(path: str, store_tables: catalog.Tables) -> dict[str, int]:
    """The bytes of each column's dictionary page in the file's first row group (0:
    none)."""
    group = store_tables.footer(path).row_group(0)
    out = {}
    for i in range(group.num_columns):
        c = group.column(i)
        has = c.has_dictionary_page and c.dictionary_page_offset is not None
        out[c.path_in_schema] = c.data_page_offset - c.dictionary_page_offset if has else 0
    return out


#: A dictionary given up early: at 64 KB, checked every 20,000 values (pyiceberg's
#: rows a page), so at most 160 KB and its page header, against 320 KB of all 40,000
#: numbers (a codec may not shrink numbers like these at all).
_GIVEN_UP = ROWS * 8 // 2 + 1_024


def test_numbers_are_written_plainly_and_labels_keep_their_dictionary(
    store: trenches.Store,
) -> None:
    ds = store.datasets.create("d", task="classification", label="y")
    ds.add(_frame(np.random.default_rng(0)), source="s")
    properties, files = _table(store, columnar.table_name(ds.id))
    assert properties["write.parquet.dict-size-bytes"] == "65536"
    with read(store.engine) as conn:
        pages = _dictionaries(files[0], tables.of(conn))
    assert pages["inputs.x"] <= _GIVEN_UP, "a column of distinct numbers is written plainly"
    assert 0 < pages["label"] < 1_000 and 0 < pages["source"] < 1_000
    X, y, _, _ = ds.snapshot().training_data(None)
    assert len(X) == ROWS and set(y) == {"cat", "dog", "eel"}


def test_a_table_made_with_earlier_settings_takes_todays_with_its_next_write(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    earlier = {k: v for k, v in catalog.PROPERTIES.items() if k != "write.parquet.dict-size-bytes"}
    ds = store.datasets.create("d", task="classification", label="y")
    with monkeypatch.context() as m:
        m.setattr(catalog, "PROPERTIES", earlier)
        ds.add(_frame(rng), source="first")
    name = columnar.table_name(ds.id)
    properties, files = _table(store, name)
    assert "write.parquet.dict-size-bytes" not in properties
    with read(store.engine) as conn:
        assert _dictionaries(files[0], tables.of(conn))["inputs.x"] >= ROWS * 8 * 3 // 4
    with read(store.engine) as conn:
        snapshots = len(tables.of(conn).load(conn, name).snapshots())  # type: ignore[union-attr]
    ds.add(_frame(rng), source="second")
    properties, after = _table(store, name)
    assert properties["write.parquet.dict-size-bytes"] == "65536"
    with read(store.engine) as conn:
        store_tables = tables.of(conn)
        table = store_tables.load(conn, name)
        assert table is not None
        assert len(table.snapshots()) == snapshots + 1, "the settings came with the rows"
        new = [f for f in after if f not in files]
        assert new and _dictionaries(new[0], store_tables)["inputs.x"] <= _GIVEN_UP
    assert len(ds.snapshot().training_data(None)[0]) == 2 * ROWS
