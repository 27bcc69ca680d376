"""The current sample: production rows from a window of the request log (inputs,
the served answers, the newest labelled feedback of each row), with the dataset's types."""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches import timestamps

if TYPE_CHECKING:
    import pandas as pd

    from trenches.models.registry import ModelVersion
    from trenches.patterns.datasets import Dataset

#: Dataset column types and the drift kind they are compared as (None: from values).
KIND_OF_TYPE = {
    "number": None,
    "integer": None,
    "boolean": "categorical",
    "string": "categorical",
    "text": "text",
}


@dataclass
class Current:
    frame: pd.DataFrame
    description: str
    since: int | None
    until: int | None
    predictions: np.ndarray | None
    request_ids: np.ndarray | None  # one per row, for outliers
    rows: np.ndarray | None
    received_at: np.ndarray | None
    labels: np.ndarray | None  # feedback labels, None where there is none


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def kinds_of(dataset: Dataset, columns: list[str]) -> dict[str, str]:
    if dataset.schema is None:
        return {}
    out = {}
    for c in dataset.schema.columns:
        kind = KIND_OF_TYPE.get(c.type)
        if kind is not None and c.name in columns:
            out[c.name] = kind
    return out


def typed(dataset: Dataset, frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Production values with the types of the dataset's columns; a value that is not
    of its column's type counts as missing (and shows in the missing rate)."""
    import pandas as pd

    if dataset.schema is None:
        return frame
    for c in dataset.schema.columns:
        if c.name not in frame.columns:
            continue
        if c.type in ("number", "integer"):
            frame[c.name] = pd.to_numeric(frame[c.name], errors="coerce").astype(np.float64)
        elif c.type in ("string", "text"):
            frame[c.name] = frame[c.name].astype(object)
    return frame


def from_requests(
    dataset: Dataset,
    version: ModelVersion,
    requests: pd.DataFrame,
    start: int | None,
    end: int | None,
) -> Current:
    """The rows of a window of logged requests: inputs, the answers of ``version``, the
    newest labelled feedback of each row."""
    import pandas as pd

    if start is None and end is None:
        span = "all logged"
    elif end is None:
        span = f"since {timestamps.iso(start)}"
    elif start is None:
        span = f"before {timestamps.iso(end)}"
    else:
        span = f"{timestamps.iso(start)} to {timestamps.iso(end)}"
    parts: builtins.list[pd.DataFrame] = []
    request_ids: builtins.list[str] = []
    rows: builtins.list[int] = []
    received: builtins.list[Any] = []
    predictions: builtins.list[Any] = []
    labels: builtins.list[Any] = []
    served_here = 0
    # Requests with the same columns are one block: the frame is built per block, not
    # per row.
    blocks: dict[tuple[str, ...], builtins.list[builtins.list[Any]]] = {}
    order: builtins.list[tuple[tuple[str, ...], int]] = []
    for rid, served_by, inputs, outputs, at, feedback in zip(
        requests["request_id"],
        requests["version"],
        requests["inputs"],
        requests["outputs"],
        requests["received_at"],
        requests["feedback"],
        strict=True,
    ):
        columns = tuple(inputs.get("columns") or ())
        data = inputs.get("data") or []
        if not columns or not data:
            continue
        block = blocks.setdefault(columns, [])
        order.append((columns, len(data)))
        block.extend(data)
        n = len(data)
        request_ids.extend([rid] * n)
        rows.extend(range(n))
        received.extend([at] * n)
        mine = served_by == version.ref
        served_here += n if mine else 0
        answer = outputs.get("labels") or outputs.get("values") or []
        predictions.extend(answer if mine and len(answer) == n else [None] * n)
        given: dict[int, Any] = {}
        for fb in feedback or ():
            if fb.get("label") is not None:
                given[int(fb["row"])] = fb["label"]
        labels.extend(given.get(k) for k in range(n))
    if blocks:
        built = {cols: pd.DataFrame(data, columns=list(cols)) for cols, data in blocks.items()}
        offsets = dict.fromkeys(built, 0)
        for cols, n in order:
            parts.append(built[cols].iloc[offsets[cols] : offsets[cols] + n])
            offsets[cols] += n
        frame = (
            pd.concat(parts, ignore_index=True) if len(built) > 1 else next(iter(built.values()))
        )
    else:
        frame = pd.DataFrame(columns=list(version.signature.columns))
    frame = typed(dataset, frame.reset_index(drop=True), "the request log")
    preds = np.asarray(predictions, dtype=object)
    keep = np.array([p is not None for p in predictions], dtype=bool)
    description = f"{len(requests):,} requests ({len(frame):,} rows) to {version.model}, {span}"
    if served_here != len(frame):
        description += f"; {served_here:,} rows answered by {version.ref}"
    return Current(
        frame,
        description,
        start,
        end,
        preds[keep] if keep.any() else None,
        np.asarray(request_ids, dtype=object),
        np.asarray(rows, dtype=np.int64),
        np.asarray(received, dtype=object),
        np.asarray(labels, dtype=object)[keep] if keep.any() else None,
    )
