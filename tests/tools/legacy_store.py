"""A small store as a release of trenches writes it, kept under ``tests/fixtures/`` so that
later releases prove they open it, upgrade it and lose nothing: every pattern (relabels
and deactivations included), every stored prediction and every logged request row is
written to ``manifest.json`` beside it, as this release reads them back.

Made once by the release whose storage is to be upgraded (issue 17 moves bulk facts out
of SQL tables), and committed; ``tests/test_legacy_store.py`` reads it.

    python tests/tools/legacy_store.py tests/fixtures/store-0013
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trenches

from conftest import log_requests, tumours

#: The model the fixture serves and monitors.
MODEL = "tumour-clf"


def build(folder: Path) -> None:
    """Make the store in ``folder/store`` and its ``manifest.json``."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    store = trenches.open(folder / "store")
    ds = store.datasets.create(
        "tumours", task="classification", label="label", salt="6c65676163792d73746f72652d303133"
    )
    first = tumours(200, seed=1)
    first["site"] = np.where(first["grade"] > 2, "left", "right")
    ds.add(first, source="expert", created_at="2026-01-10")
    later = tumours(100, seed=2, shift=0.5)
    later["site"] = "left"
    ds.add(later, source="crowd", created_at="2026-02-10")
    ids = ds.pattern_ids()
    store.patterns.relabel(
        int(ids[3]),
        "benign" if _label(ds, ids[3]) != "benign" else "malignant",
        source="expert",
        reason="second opinion",
    )
    store.patterns.deactivate([int(ids[5])], reason="a duplicate")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    numeric = list(X.select_dtypes("number").columns)
    for name, model in (
        ("logistic", LogisticRegression(max_iter=500)),
        ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
    ):
        encode = make_column_transformer(
            ("passthrough", numeric), (OneHotEncoder(handle_unknown="ignore"), ["site"])
        )
        with store.run(name, snapshot=snap, capture_code=False) as run:
            run.log_model(make_pipeline(encode, model).fit(X, y), MODEL)
    for version in (1, 2):
        store.evaluate(f"{MODEL}@{version}")
    validation = ds.pattern_ids("validation")
    store.problems.create("large-benign", dataset="tumours", title="Large benign tumours")
    store.problems.add(
        "large-benign", positive=validation[:6].tolist(), negative=validation[6:10].tolist()
    )
    store.models.promote(f"{MODEL}@2", "production", reason="the fixture's release")
    production = store.models.get(f"{MODEL}@production")
    served = tumours(40, seed=3, shift=1.0)
    served["site"] = "right"
    log_requests(store, production, served, [*numeric, "site"], label="label")
    store.monitoring.run(production.ref)
    (folder / "manifest.json").write_bytes(
        orjson.dumps(manifest(store), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    store.close()
    for junk in (folder / "store").glob("trenches.db-*"):
        junk.unlink()


def _label(ds: trenches.Dataset, pid: Any) -> Any:
    return ds.patterns(ids=[int(pid)])["label"].iloc[0]


def manifest(store: trenches.Store) -> dict[str, Any]:
    """Every pattern, stored prediction and logged request row of ``store``, as plain
    JSON values."""
    out: dict[str, Any] = {"patterns": {}, "predictions": {}, "requests": []}
    for ds in sorted(store.datasets.list(), key=lambda d: d.name):
        name = ds.name
        frame = ds.patterns(include_inactive=True)
        info = ds.pattern_info(include_inactive=True)
        for pid, row in frame.iterrows():
            out["patterns"][str(pid)] = {
                "dataset": name,
                "values": {k: _plain(v) for k, v in row.items()},
                **{k: _plain(v) for k, v in info.loc[pid].items()},
            }
    for model in store.models.names():
        for version in store.models.versions(model):
            table = store.predictions(version.ref)
            table = table[table["predicted"]] if "predicted" in table else table
            keep = [c for c in table.columns if c.startswith(("prediction", "p_", "right", "loss"))]
            out["predictions"][version.ref] = {
                str(pid): {k: _plain(v) for k, v in row.items()}
                for pid, row in table[keep].iterrows()
            }
    window = store.requests.window()
    for k in range(len(window)):
        out["requests"].append(
            {
                "request_id": str(window.request_id[k]),
                "row": int(window.row[k]),
                "version_id": int(window.version_id[k]),
                "received_at": int(window.received_at[k]),
                "answer": _plain(window.answer[k]),
                "label": _plain(window.label[k]),
                "inputs": {c: _plain(window.inputs[c].iloc[k]) for c in window.inputs.columns},
            }
        )
    return out


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/store-0013"))
