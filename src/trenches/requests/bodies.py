"""The inputs and outputs of logged requests, as the log wrote them (JSON decoded), made
rows: each request's columns and data rows, the input rows of many requests as one
DataFrame, and the answer to each row. What a move into the request log's tables and a
window of staged requests both read."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Block = tuple[tuple[str, ...], list[list[Any]]]


def blocks(inputs: list[Any]) -> tuple[list[Block], np.ndarray]:
    """Each request's columns and data rows, and its number of rows (0 for a request
    whose inputs hold no columns)."""
    blocks: list[Block] = []
    for d in inputs:
        columns = tuple(d.get("columns") or ())
        data = (d.get("data") or []) if columns else []
        blocks.append((columns, data))
    counts = np.fromiter((len(data) for _, data in blocks), dtype=np.int64, count=len(blocks))
    return blocks, counts


def frame(blocks: list[Block], counts: np.ndarray) -> pd.DataFrame:
    """The input rows of all requests as one frame: one construction per set of
    columns (one in all, usually), put back in the order of the requests."""
    import pandas as pd

    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    for columns, data in blocks:
        if data:
            groups.setdefault(columns, []).append(data)
    frames = [
        pd.DataFrame(list(itertools.chain.from_iterable(parts)), columns=list(columns))
        for columns, parts in groups.items()
    ]
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0]
    # Requests with other columns: the frames are stacked group after group, then the
    # rows are put back in the order they were received.
    group = {columns: k for k, columns in enumerate(groups)}
    of_row = np.repeat(np.array([group.get(c, -1) for c, _ in blocks]), counts)
    stacked = pd.concat(frames, ignore_index=True)
    order = np.argsort(np.argsort(of_row, kind="stable"), kind="stable")
    return stacked.iloc[order].reset_index(drop=True)


def answers(outputs: list[Any], counts: np.ndarray) -> np.ndarray:
    """The answer to each row: the labels (or values) each request answered, None for
    the rows of a request whose answers were not logged whole."""
    per_request = []
    for d, n in zip(outputs, counts.tolist(), strict=True):
        answer = d.get("labels") or d.get("values") or []
        per_request.append(answer if len(answer) == n else itertools.repeat(None, n))
    total = int(counts.sum())
    flat = itertools.chain.from_iterable(per_request)
    return np.fromiter(flat, dtype=object, count=total)
