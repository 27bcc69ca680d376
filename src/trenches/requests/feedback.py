"""Feedback on served requests, as ``store.requests`` adds it by hand and reads it
back: a true label or a rating for one row of a request, checked as the server's
``POST /feedback`` checks it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import insert, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read, write
from trenches.errors import InvalidInput, NotFound
from trenches.json_form import from_json
from trenches.requests.records import FEEDBACK, LoggedFeedback, json_column

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from trenches.patterns.datasets import Datasets

#: The columns a stored feedback is read with: its record's, then the store's own.
COLUMNS = ("id", *FEEDBACK.columns, "pattern_id")


@dataclass(frozen=True)
class Feedback:
    """A true label or a rating for one row of a served request."""

    id: int
    request_id: str
    row: int
    label: Any
    rating: float | None
    comment: str | None
    created_at: datetime
    #: Whether the label is the class the request was answered with; None without a
    #: label, or for a regressor.
    correct: bool | None
    #: The pattern this feedback became (``to_patterns``), once it has.
    pattern_id: int | None


def from_rows(rows: Sequence[Sequence[Any]]) -> list[Feedback]:
    """Stored feedback rows (in :data:`COLUMNS` order), their labels decoded at once."""
    if not rows:
        return []
    ids, rids, numbers, labels, ratings, comments, created, right, patterns = zip(
        *rows, strict=True
    )
    return [
        Feedback(
            int(i),
            rid,
            int(number),
            label,
            rating,
            comment,
            timestamps.from_us(at),
            None if correct is None else bool(correct),
            pattern,
        )
        for i, rid, number, label, rating, comment, at, correct, pattern in zip(
            ids,
            rids,
            numbers,
            json_column(labels),
            ratings,
            comments,
            created,
            right,
            patterns,
            strict=True,
        )
    ]


def of_request(engine: Engine, request_id: str) -> list[Feedback]:
    """The feedback on a request, oldest first."""
    f = t.feedback.c
    with read(engine) as conn:
        rows = conn.execute(
            select(*(f[c] for c in COLUMNS))
            .where(f.request_id == request_id)
            .order_by(f.created_at, f.id)
        ).all()
    return from_rows(rows)


def answer_given(conn: Connection, request_id: str, row: int) -> Any:
    """The class a logged request answered its row ``row`` with; None when it gave no
    class (a regressor) or is not in the log."""
    from trenches.requests import stored

    r = t.served_requests.c
    found = conn.execute(select(r.id, r.outputs).where(r.request_id == request_id)).first()
    if found is None:
        return None
    (found,) = stored.with_bodies(conn, [found])
    labels = (orjson.loads(found.outputs) or {}).get("labels") if found.outputs else None
    return labels[row] if isinstance(labels, list) and 0 <= row < len(labels) else None


def correct(label: Any, given: Any) -> int | None:
    """1 if a feedback's label is the class given, 0 if not; None without either."""
    if label is None or given is None:
        return None
    return int(_plain(label) == given)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _checked_rating(rating: Any) -> float | None:
    if rating is None:
        return None
    try:
        rating = float(rating)
    except (TypeError, ValueError):
        raise InvalidInput(f"rating {rating!r} is not a number") from None
    if not math.isfinite(rating):
        raise InvalidInput(f"rating {rating!r} is not a finite number")
    return float(rating)


def _served(engine: Engine, request_id: str, row: int) -> Any:
    """The logged request ``request_id`` (its rows, the dataset and signature of the
    version that answered it), if it has a row ``row``."""
    r, v = t.served_requests.c, t.model_versions.c
    with read(engine) as conn:
        found = conn.execute(
            select(r.n, v.dataset_id, v.signature)
            .join(t.model_versions, r.version_id == v.id)
            .where(r.request_id == request_id)
        ).first()
    if found is None:
        raise NotFound(
            f"no request {request_id!r} in the log (a request answered a moment ago may "
            "still be on its way to the store)"
        )
    if row >= found.n:
        raise InvalidInput(
            f"request {request_id} has {found.n} row{'s' if found.n != 1 else ''}; "
            f"there is no row {row}"
        )
    return found


def _label_as_stored(datasets: Datasets, request_id: str, served: Any, label: Any) -> Any:
    """``label`` as the dataset of the version that answered stores it, if it is one
    of that version's answers (a class; a finite number for a regressor)."""
    from trenches.models import formats
    from trenches.requests.labels import Labels

    label_type = None
    if served.dataset_id is not None:
        ds = datasets.by_id(served.dataset_id)
        label_type = ds.label_type
        if ds.label_type is not None:
            try:
                label = _plain(ds.coerce_label(label))
            except InvalidInput as e:
                raise InvalidInput(
                    f"the label {label!r} does not fit dataset {ds.name!r} "
                    f"({ds.label_type} labels): {e.reason}"
                ) from None
    classes = from_json(formats.Signature, orjson.loads(served.signature)).classes
    try:
        return Labels(classes, label_type).check(label)
    except InvalidInput as e:
        raise InvalidInput(f"request {request_id}: {e.reason}") from None


def add(
    engine: Engine,
    datasets: Datasets,
    request_id: str,
    *,
    row: int,
    label: Any,
    rating: float | None,
    comment: str | None,
) -> Feedback:
    """Store a feedback on row ``row`` of a logged request, checked first (see
    :meth:`trenches.requests.log.Requests.feedback`)."""
    if isinstance(row, bool) or not isinstance(row, int | np.integer) or row < 0:
        raise InvalidInput(f"row {row!r} must be a row number of the request (0, 1, ...)")
    if label is None and rating is None:
        raise InvalidInput("give a label (the true answer) or a rating")
    rating = _checked_rating(rating)
    served = _served(engine, request_id, int(row))
    if label is not None:
        label = _label_as_stored(datasets, request_id, served, label)
    with read(engine) as conn:
        right = correct(label, answer_given(conn, request_id, int(row)))
    record = LoggedFeedback(
        request_id, int(row), label, rating, comment, timestamps.now_us(), right
    )
    values = dict(zip(FEEDBACK.columns, record.to_row(), strict=True))
    with write(engine) as conn:
        fid = conn.execute(insert(t.feedback).values(values)).inserted_primary_key[0]  # type: ignore[index]
    return Feedback(
        int(fid),
        request_id,
        record.row,
        label,
        rating,
        record.comment,
        timestamps.from_us(record.created_at),
        None if right is None else bool(right),
        None,
    )
