"""Feedback on served requests, checked when it arrives: ``POST /feedback`` answers 202
only for feedback that ``trenches requests to-patterns`` and production accuracy can use.

The body's types come first (a row is a whole number, a label a single value, a rating
finite), then the request it is about: its number of rows bounds ``row``, and the
version that answered it says what a label may be (one of its classes; for a regressor
a finite number, whole when the dataset's labels are integers).

Where the request is looked up: the worker remembers the requests it answered lately
(:class:`Recent`), which covers feedback sent before the request log has written its
request; an older request, or one another worker answered, is read from the store
(:func:`lookup`). Feedback for a request found in neither is refused (404), never
stored on trust.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from trenches.errors import InvalidInput
from trenches.requests.feedback import correct
from trenches.requests.labels import Labels
from trenches.serving.payloads import MAX_SIZE, PayloadError, is_int, is_number, shown

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


#: Requests a worker remembers (about 250 bytes each): more than the request log holds
#: in memory before it spools, so a request not yet written is always remembered.
RECENT = 60_000
#: The longest request id (the column's size).
MAX_ID = 64


@dataclass(frozen=True)
class Answered:
    """What feedback on one served request is checked against."""

    n: int  # its rows
    labels: Labels
    #: The class each row was answered with (None for a regressor's answer).
    given: Sequence[Any] | None = None

    def correct(self, row: int, label: Any) -> int | None:
        """1 if ``label`` is the class row ``row`` was answered with, 0 if not, None
        when there is no label or no class to compare."""
        if self.given is None or not 0 <= row < len(self.given):
            return None
        return correct(label, self.given[row])


class Recent:
    """The requests this worker answered lately, the oldest forgotten past ``size``."""

    def __init__(self, size: int = RECENT) -> None:
        self._size = size
        self._answered: OrderedDict[str, Answered] = OrderedDict()

    def add(self, request_id: str, answered: Answered) -> None:
        self._answered[request_id] = answered
        if len(self._answered) > self._size:
            self._answered.popitem(last=False)

    def get(self, request_id: str) -> Answered | None:
        return self._answered.get(request_id)


def lookup(engine: Engine, request_id: str) -> Answered | None:
    """A logged request, from the store: its rows and its version's labels."""
    from sqlalchemy import select

    from trenches.db import schema as t
    from trenches.db.engine import read
    from trenches.json_form import from_json
    from trenches.models.formats import Signature
    from trenches.requests import stored

    r, v, d = t.served_requests.c, t.model_versions.c, t.datasets.c
    with read(engine) as conn:
        row = conn.execute(
            select(r.id, r.n, r.outputs, v.signature, d.label_type)
            .select_from(
                t.served_requests.join(t.model_versions, r.version_id == v.id).outerjoin(
                    t.datasets, v.dataset_id == d.id
                )
            )
            .where(r.request_id == request_id)
        ).first()
        if row is None:
            return None
        (row,) = stored.with_bodies(conn, [row])
    classes = from_json(Signature, orjson.loads(row.signature)).classes
    given = (orjson.loads(row.outputs) or {}).get("labels") if row.outputs else None
    return Answered(
        int(row.n), Labels(classes, row.label_type), given if isinstance(given, list) else None
    )


@dataclass(frozen=True)
class Feedback:
    """A feedback body whose types are right; not yet checked against its request."""

    request_id: str
    row: int
    label: Any
    rating: float | None
    comment: str | None

    @classmethod
    def parse(cls, body: Any) -> Feedback:
        """The fields of a ``POST /feedback`` body, each of its type, or a 4xx."""
        if not isinstance(body, dict):
            raise PayloadError(400, "expected an object with request_id and a label or a rating")
        rid = body.get("request_id")
        if not isinstance(rid, str) or not 0 < len(rid) <= MAX_ID:
            raise PayloadError(
                422, "request_id must be the id a prediction answered with", "request_id"
            )
        unknown = sorted(set(body) - {"request_id", "row", "label", "rating", "comment"})
        if unknown:
            raise PayloadError(422, f"unknown field {shown(unknown[0])}", unknown[0])
        row = body.get("row", 0)
        if not is_int(row, 0, MAX_SIZE):
            raise PayloadError(
                422, f"row {shown(row)} is not a row number of the request (0, 1, ...)", "row"
            )
        rating = body.get("rating")
        if rating is not None and not is_number(rating):
            raise PayloadError(422, f"rating {shown(rating)} is not a finite number", "rating")
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise PayloadError(422, f"comment {shown(comment)} is not a string", "comment")
        label = body.get("label")
        if isinstance(label, list | dict):
            raise PayloadError(422, f"label is {shown(label)}, not a single value", "label")
        if label is None and rating is None:
            raise PayloadError(422, "give a label (the true answer) or a rating", "label")
        return cls(rid, row, label, None if rating is None else float(rating), comment)

    def checked(self, answered: Answered) -> Feedback:
        """This feedback, if it fits the request it is about (its label as stored)."""
        if self.row >= answered.n:
            raise PayloadError(
                422,
                f"row {self.row}: request {self.request_id} had {answered.n} "
                f"row{'s' if answered.n != 1 else ''} (0 to {answered.n - 1})",
                "row",
            )
        label = self.label
        if label is not None:
            try:
                label = answered.labels.check(label)
            except InvalidInput as e:
                raise PayloadError(422, e.reason, "label") from None
        return Feedback(self.request_id, self.row, label, self.rating, self.comment)
