"""The example of docs/tables.md runs as written: pandas and DuckDB read a store's
Iceberg table through a plain pyiceberg catalog, without the store's API."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trenches
from trenches import predictions
from trenches.db.engine import write

from conftest import baseline_predictor

DOC = Path(__file__).resolve().parents[1] / "docs" / "tables.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    [block] = [b for b in blocks if "duckdb" in b]
    return block


def test_the_duckdb_example_reads_what_the_store_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRENCHES_DB_URL", raising=False)
    monkeypatch.delenv("TRENCHES_ARTIFACTS", raising=False)
    monkeypatch.setattr(predictions, "INLINE_ROWS", 10)
    with trenches.open(tmp_path / ".trenches") as store:
        ds = store.datasets.create("d", task="classification", label="y")
        ds.add(pd.DataFrame({"x": np.arange(40.0), "y": ["a", "b"] * 20}), source="s")
        for name, right in (("half", np.arange(40) % 2 == 0), ("all", np.ones(40, bool))):
            with write(store.engine) as conn:
                p = baseline_predictor(conn, name, ds.id)
                predictions.write_block(
                    conn,
                    p,
                    predictions.Block(
                        np.arange(1, 41), label_index=np.zeros(40, np.int32), correct=right
                    ),
                )
    scope: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_example(), str(DOC), "exec"), scope)
    accuracy = scope["accuracy"]
    assert isinstance(accuracy, pd.DataFrame)
    assert accuracy["predictor_id"].tolist() == [1, 2]
    assert accuracy["accuracy"].tolist() == [0.5, 1.0]
    assert accuracy["n"].tolist() == [40, 40]
    frame = scope["frame"]
    assert isinstance(frame, pd.DataFrame) and len(frame) == 40
    assert list(frame.columns) == ["pattern_id", "correct"]
    assert "accuracy" in out.getvalue()
    scope["store"].close()  # type: ignore[attr-defined]
