"""The labelling queue's bookkeeping: ``store.reviews``.

What waits for a label: production rows whose feedback has a label but has not become
a pattern, and the findings of a data check (likely label errors, conflicting labels).
A labeller decides on each: the label is kept, the item is relabelled, or it is sent
to a problem. Each decision is a review; an item with a review has left the queue,
so a finding kept once is not asked about again by the next snapshot's check.

A subject names what was reviewed: ``pattern:ID`` or ``request:ID:ROW``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import String, cast, exists, func, insert, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import acting_name
from trenches.db.engine import read, write
from trenches.errors import InvalidInput
from trenches.json_form import to_json
from trenches.requests import stored
from trenches.requests.records import json_column

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: What a labeller may decide about an item of the queue.
DECISIONS = ("kept", "relabelled", "sent")
#: Waiting production rows read at most, to put the disagreeing ones first.
MOST_WAITING = 500


def pattern_subject(pattern_id: int) -> str:
    """The subject of a review of a pattern (a data-check finding)."""
    return f"pattern:{int(pattern_id)}"


def row_subject(request_id: str, row: int) -> str:
    """The subject of a review of one row of a served request."""
    return f"request:{request_id}:{int(row)}"


@dataclass(frozen=True)
class Review:
    """A labeller's decision on one item of the labelling queue."""

    id: int
    subject: str
    decision: str
    label: Any
    reason: str | None
    pattern_id: int | None
    problem: str | None
    reviewed_by: str | None
    reviewed_at: datetime


@dataclass(frozen=True)
class WaitingRow:
    """A row of a served request, as the labelling queue shows it: its inputs, the
    answer, and the label of its newest labelled feedback (None without one)."""

    request_id: str
    row: int
    version: str
    inputs: dict[str, Any]
    predicted: Any
    label: Any
    comment: str | None
    feedback_id: int | None
    received_at: datetime

    @property
    def subject(self) -> str:
        return row_subject(self.request_id, self.row)

    @property
    def disagrees(self) -> bool:
        """Whether the feedback's label is not what the model answered."""
        return bool(self.label != self.predicted)


class Reviews:
    """The labelling queue's reviews: ``store.reviews``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self,
        subject: str,
        decision: str,
        *,
        label: Any = None,
        reason: str | None = None,
        pattern_id: int | None = None,
        problem: str | None = None,
    ) -> Review:
        """Record a decision on ``subject``, made by the user acting (the team server's
        caller, else the OS user); the subject leaves the queue."""
        if decision not in DECISIONS:
            raise InvalidInput(f"decision {decision!r} must be one of {', '.join(DECISIONS)}")
        if not subject.startswith(("pattern:", "request:")):
            raise InvalidInput(f"subject {subject!r} must be pattern:ID or request:ID:ROW")
        values = {
            "subject": subject,
            "decision": decision,
            "label": None if label is None else orjson.dumps(to_json(label)).decode(),
            "reason": reason,
            "pattern_id": pattern_id,
            "problem": problem,
            "reviewed_by": acting_name(),
            "reviewed_at": timestamps.now_us(),
        }
        with write(self._engine) as conn:
            rid = conn.execute(insert(t.reviews).values(values)).inserted_primary_key[0]  # type: ignore[index]
        return _review({**values, "id": rid})

    def of(self, subject: str) -> builtins.list[Review]:
        """The reviews of ``subject``, oldest first."""
        r = t.reviews.c
        with read(self._engine) as conn:
            rows = conn.execute(select(t.reviews).where(r.subject == subject).order_by(r.id)).all()
        return [_review(row._mapping) for row in rows]

    def reviewed(self, subjects: Iterable[str]) -> set[str]:
        """Those of ``subjects`` that have a review."""
        asked = builtins.list(dict.fromkeys(subjects))
        found: set[str] = set()
        r = t.reviews.c
        with read(self._engine) as conn:
            for start in range(0, len(asked), 500):
                chunk = asked[start : start + 500]
                found.update(
                    conn.execute(select(r.subject).distinct().where(r.subject.in_(chunk))).scalars()
                )
        return found

    def count_waiting_rows(self) -> int:
        """How many production rows have labelled feedback that is no pattern and has
        no review: one COUNT."""
        f = t.feedback.c
        waiting = (
            select(f.request_id, f.row)
            .where(f.label.is_not(None), f.pattern_id.is_(None), ~_has_review())
            .group_by(f.request_id, f.row)
            .subquery()
        )
        with read(self._engine) as conn:
            return int(conn.execute(select(func.count()).select_from(waiting)).scalar_one())

    def waiting_rows(self, *, limit: int = 50) -> builtins.list[WaitingRow]:
        """Production rows waiting for a review, those whose feedback disagrees with
        the answer first, then newest first: the newest labelled feedback of each row
        that became no pattern, with the row's inputs and the answer."""
        if limit < 1:
            raise InvalidInput(f"limit {limit} must be 1 or more")
        f, r = t.feedback.c, t.served_requests.c
        # First which rows, from the answers alone; then the inputs of those shown.
        query = (
            select(r.id, f.request_id, f.row, f.label, r.outputs)
            .join(t.served_requests, r.request_id == f.request_id)
            .where(f.label.is_not(None), f.pattern_id.is_(None), ~_has_review())
            .order_by(f.id.desc())
            .limit(MOST_WAITING)
        )
        with read(self._engine) as conn:
            found = stored.with_bodies(conn, conn.execute(query).all())
        disagreeing: dict[tuple[str, int], bool] = {}
        labels = json_column(x.label for x in found)
        outputs = json_column(x.outputs for x in found)
        for x, label, answered in zip(found, labels, outputs, strict=True):
            disagreeing.setdefault((x.request_id, int(x.row)), label != _answer(answered, x.row))
        keys = sorted(disagreeing, key=lambda k: not disagreeing[k])  # stable: newest first
        return self.rows(keys[:limit])

    def rows(self, keys: Sequence[tuple[str, int]]) -> builtins.list[WaitingRow]:
        """The rows ``keys`` (request id, row) of the log, in that order, each with the
        label of its newest labelled feedback if it has one (rows the log does not
        hold are left out): what the queue shows of a flagged outlier."""
        ids = builtins.list(dict.fromkeys(rid for rid, _ in keys))
        if not ids:
            return []
        f, r = t.feedback.c, t.served_requests.c
        with read(self._engine) as conn:
            found = conn.execute(_served().where(r.request_id.in_(ids))).all()
            requests = {row.request_id: row for row in stored.with_bodies(conn, found)}
            labelled = conn.execute(
                select(f.id, f.request_id, f.row, f.label, f.comment)
                .where(f.request_id.in_(ids), f.label.is_not(None))
                .order_by(f.id.desc())
            ).all()
        newest: dict[tuple[str, int], Any] = {}
        for fb in labelled:
            newest.setdefault((fb.request_id, int(fb.row)), fb)
        merged = [
            _Merged(requests[rid], rid, int(row), newest.get((rid, int(row))))
            for rid, row in keys
            if rid in requests
        ]
        return _newest_per_row(merged)


class _Merged:
    """A logged request's row with its newest labelled feedback (or none), shaped as
    the rows :func:`_newest_per_row` reads."""

    def __init__(self, request: Any, request_id: str, row: int, feedback: Any) -> None:
        self.request_id, self.row = request_id, row
        self.id = None if feedback is None else feedback.id
        self.label = None if feedback is None else feedback.label
        self.comment = None if feedback is None else feedback.comment
        self.inputs, self.outputs = request.inputs, request.outputs
        self.received_at, self.name, self.version = (
            request.received_at,
            request.name,
            request.version,
        )


def _served() -> Any:
    """The served requests with the columns the queue shows, their versions and models."""
    r, v, m = t.served_requests.c, t.model_versions.c, t.models.c
    joined = t.served_requests.join(t.model_versions, r.version_id == v.id).join(
        t.models, v.model_id == m.id
    )
    return select(
        r.id, r.request_id, r.inputs, r.outputs, r.received_at, m.name, v.version
    ).select_from(joined)


def _has_review() -> Any:
    """Whether a feedback's row has a review (a correlated EXISTS)."""
    f, r = t.feedback.c, t.reviews.c
    subject = "request:" + f.request_id + ":" + cast(f.row, String)
    return exists().where(r.subject == subject)


def _newest_per_row(rows: Sequence[Any]) -> builtins.list[WaitingRow]:
    """The rows as the queue shows them, each (request, row) once."""
    labels = json_column(row.label for row in rows)
    inputs = json_column(row.inputs for row in rows)
    outputs = json_column(row.outputs for row in rows)
    seen: set[tuple[str, int]] = set()
    out = []
    for row, label, given, answered in zip(rows, labels, inputs, outputs, strict=True):
        key = (row.request_id, int(row.row))
        if key in seen:
            continue
        seen.add(key)
        columns = given.get("columns") or []
        data = given.get("data") or []
        values = data[row.row] if row.row < len(data) else []
        predicted = _answer(answered, row.row)
        out.append(
            WaitingRow(
                request_id=row.request_id,
                row=int(row.row),
                version=f"{row.name}@{row.version}",
                inputs=dict(zip(columns, values, strict=False)),
                predicted=predicted,
                label=label,
                comment=row.comment,
                feedback_id=None if row.id is None else int(row.id),
                received_at=timestamps.from_us(row.received_at),
            )
        )
    return out


def _answer(outputs: dict[str, Any], row: int) -> Any:
    """The answer to row ``row`` in a logged request's outputs (a label, or a value)."""
    answers = outputs.get("labels") or outputs.get("values") or []
    return answers[row] if row < len(answers) else None


def _review(row: Any) -> Review:
    return Review(
        id=int(row["id"]),
        subject=row["subject"],
        decision=row["decision"],
        label=None if row["label"] is None else orjson.loads(row["label"]),
        reason=row["reason"],
        pattern_id=row["pattern_id"],
        problem=row["problem"],
        reviewed_by=row["reviewed_by"],
        reviewed_at=timestamps.from_us(row["reviewed_at"]),
    )
