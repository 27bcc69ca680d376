"""The production rows least like the reference: an isolation forest fitted on the
reference's inputs (plus, for numbers, how far beyond the reference's range they lie,
which a forest cannot see), so that someone can look at them, label them, and make
them patterns of a problem."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

_IQR_TO_SD = 1.349  # the interquartile range of a normal distribution, in standard deviations


def _encode(
    ref: pd.DataFrame, cur: pd.DataFrame, kinds: Mapping[str, str]
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Both samples as float matrices: numbers as they are (missing: the reference's
    median), categories by their share in the reference (unseen: 0), text by its number
    of words. Also, per column, what "usual" is, to say why a row stands out."""
    import pandas as pd

    ref_cols, cur_cols, usual = [], [], []
    for name in ref.columns:
        kind = kinds.get(name)
        a, b = ref[name], cur[name]
        if kind == "text":
            a = a.astype("string").str.count(r"\w+").astype("float64")
            b = b.astype("string").str.count(r"\w+").astype("float64")
            kind = "numeric"
        if (
            kind != "categorical"
            and pd.api.types.is_numeric_dtype(a.dtype)
            and not pd.api.types.is_bool_dtype(a.dtype)
        ):
            x = pd.to_numeric(a, errors="coerce").to_numpy(dtype=np.float64)
            y = pd.to_numeric(b, errors="coerce").to_numpy(dtype=np.float64)
            median = float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0
            q1, q3 = np.nanpercentile(x, [25, 75]) if np.isfinite(x).any() else (0.0, 0.0)
            spread = float(q3 - q1) / _IQR_TO_SD or float(np.nanstd(x)) or 1.0
            ref_cols.append(np.where(np.isnan(x), median, x))
            cur_cols.append(np.where(np.isnan(y), median, y))
            low = float(np.nanmin(x)) if np.isfinite(x).any() else 0.0
            high = float(np.nanmax(x)) if np.isfinite(x).any() else 0.0
            usual.append(
                {
                    "name": name,
                    "kind": "numeric",
                    "median": median,
                    "spread": spread,
                    "low": low,
                    "high": high,
                }
            )
        else:
            shares = a.astype(object).value_counts(normalize=True, dropna=False)
            ref_cols.append(a.astype(object).map(shares).to_numpy(dtype=np.float64))
            cur_cols.append(b.astype(object).map(shares).fillna(0.0).to_numpy(dtype=np.float64))
            usual.append({"name": name, "kind": "categorical", "shares": shares})
    return np.column_stack(ref_cols), np.column_stack(cur_cols), usual


def _why(row: np.ndarray, raw: pd.Series, usual: list[dict[str, Any]], most: int = 3) -> str:
    """The inputs of one row that stand out most: numbers by how many (robust) standard
    deviations from the reference's median, categories by how rare they were."""
    found: list[tuple[float, str]] = []
    for k, u in enumerate(usual):
        value = raw.iloc[k]
        if isinstance(value, float):
            value = f"{value:.4g}"
        if u["kind"] == "numeric":
            z = (row[k] - u["median"]) / u["spread"]
            if abs(z) >= 2:
                found.append((abs(z), f"{u['name']}={value} ({z:+.1f} sd)"))
        else:
            share = row[k]
            if share == 0:
                found.append((100.0, f"{u['name']}={value} (never seen)"))
            elif share < 0.01:
                found.append((10.0 - share, f"{u['name']}={value} ({share:.1%} of the reference)"))
    found.sort(key=lambda x: -x[0])
    return "; ".join(text for _, text in found[:most]) or "an unusual combination of values"


def rank(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    kinds: Mapping[str, str],
    *,
    top: int = 20,
    seed: int = 0,
    request_ids: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    received_at: np.ndarray | None = None,
) -> pd.DataFrame:
    """The ``top`` rows of ``cur`` least like ``ref``, most unusual first.
    ``received_at``: when each row was received, µs since the epoch."""
    import pandas as pd
    from sklearn.ensemble import IsolationForest

    columns = ["request_id", "row", "score", "received_at", "unusual", "inputs"]
    if not len(cur) or not len(ref):
        return pd.DataFrame(columns=columns)
    x_ref, x_cur, usual = _encode(ref, cur, kinds)
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(x_ref)
    # score_samples: the lower, the more abnormal; shown so that higher is stranger.
    score = -forest.score_samples(x_cur)
    # A tree cannot split beyond the values it was fitted on, so 45 scores like the
    # reference's largest value: add how far each number lies outside the reference's
    # range, in robust standard deviations.
    for k, u in enumerate(usual):
        if u["kind"] == "numeric":
            beyond = np.maximum(x_cur[:, k] - u["high"], 0) + np.maximum(u["low"] - x_cur[:, k], 0)
            score = score + beyond / u["spread"]
    order = np.argsort(-score, kind="stable")[:top]
    return pd.DataFrame(
        {
            "request_id": request_ids[order] if request_ids is not None else [None] * len(order),
            "row": rows[order] if rows is not None else order,
            "score": score[order],
            "received_at": (
                np.asarray(pd.to_datetime(received_at[order], unit="us", utc=True), dtype=object)
                if received_at is not None
                else [None] * len(order)
            ),
            "unusual": [_why(x_cur[i], cur.iloc[i], usual) for i in order],
            "inputs": [cur.iloc[i].to_dict() for i in order],
        },
        columns=columns,
    )
