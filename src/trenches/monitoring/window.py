"""The current sample: production rows from a window of the request log (inputs,
the served answers, the newest labelled feedback of each row), with the dataset's types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from trenches import timestamps

if TYPE_CHECKING:
    import pandas as pd

    from trenches.models.versions import ModelVersion
    from trenches.patterns.datasets import Dataset
    from trenches.requests.window import NumberColumns, RequestWindow

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
    received_at: np.ndarray | None  # µs since the epoch (int64), for outliers
    #: Feedback labels, None where there is none (None: no row has one).
    labels: np.ndarray | None
    #: A window's floating-point inputs kept out of ``frame``, read a column at a time.
    numbers: NumberColumns | None = None


def kinds_of(dataset: Dataset, columns: list[str]) -> dict[str, str]:
    if dataset.schema is None:
        return {}
    out = {}
    for c in dataset.schema.columns:
        kind = KIND_OF_TYPE.get(c.type)
        if kind is not None and c.name in columns:
            out[c.name] = kind
    return out


def types_of(dataset: Dataset) -> dict[str, str] | None:
    """The dataset's column types by name (None: it declares none)."""
    if dataset.schema is None:
        return None
    return {c.name: c.type for c in dataset.schema.columns}


def typed(dataset: Dataset, frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Production values with the types of the dataset's columns; a value that is not
    of its column's type counts as missing (and shows in the missing rate)."""
    return typed_as(types_of(dataset), frame)


def typed_as(types: dict[str, str] | None, frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`typed` with the dataset's column types given (:func:`types_of`)."""
    import pandas as pd

    if types is None:
        return frame
    for name, kind in types.items():
        if name not in frame.columns:
            continue
        if kind in ("number", "integer"):
            if frame[name].dtype == np.float64:
                continue  # as the request log's tables hold it already
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
        elif kind in ("string", "text"):
            frame[name] = frame[name].astype(object)
    return frame


def describe(
    version: ModelVersion, requests: int, rows: int, served: int, start: int | None, end: int | None
) -> str:
    """What a window of logged requests is, in words."""
    if start is None and end is None:
        span = "all logged"
    elif end is None:
        span = f"since {timestamps.iso(start)}"
    elif start is None:
        span = f"before {timestamps.iso(end)}"
    else:
        span = f"{timestamps.iso(start)} to {timestamps.iso(end)}"
    description = f"{requests:,} requests ({rows:,} rows) to {version.model}, {span}"
    if served != rows:
        description += f"; {served:,} rows answered by {version.ref}"
    return description


def from_window(
    dataset: Dataset,
    version: ModelVersion,
    window: RequestWindow,
    start: int | None,
    end: int | None,
) -> Current:
    """The rows of a window of logged requests (read as columns): inputs, the answers
    of ``version``, the newest labelled feedback of each row."""
    import pandas as pd

    frame = window.inputs
    if not len(frame):
        frame = pd.DataFrame(columns=list(version.signature.columns))
    frame = typed(dataset, frame.reset_index(drop=True), "the request log")
    mine = window.version_id == version.id
    served_here = int(mine.sum())
    # Answers of other versions are not this version's predictions. (JSON has no NaN:
    # an answer not logged is None, the window's only mark of one missing.)
    keep = mine & (window.answer != None)  # noqa: E711 (elementwise)
    description = describe(version, window.requests, len(frame), served_here, start, end)
    return Current(
        frame,
        description,
        start,
        end,
        window.answer[keep] if keep.any() else None,
        window.request_id,
        window.row,
        window.received_at,
        window.label[keep] if keep.any() and window.labelled else None,
        window.numbers,
    )
