"""Replay: a candidate answers the requests callers sent in a window of the request
log, and is compared with what they were answered, before it takes any traffic.

``store.replays.run("churn@5", window="7d")`` reads the window's input rows (callers'
requests; rows the candidate itself answered are left out), predicts those the
candidate has not answered before, in batches like a backfill (each batch stored in
its own transaction in the Iceberg table ``replay_rows_<version id>``, one answer per
request row, so a killed replay resumes and a later one over an overlapping window
predicts only what is new), and compares: how many rows agree, which flipped, and on
rows with a feedback label, how often each was right, overall and per problem that
the rows became patterns of. Each replay is stored (``replays``), shown by the report
next to gate checks, and read by a gate (``metric = "replay-agreement"``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import insert, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import acting_name
from trenches.db.engine import read, write
from trenches.errors import InvalidInput, NotFound
from trenches.json_form import json_shape

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from sqlalchemy.engine import Engine

    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.requests.log import Requests
    from trenches.requests.window import RequestWindow

_PREFIX = "replay_rows_"
#: Rows predicted, and stored, in one transaction.
BATCH = 50_000
#: Flipped rows a replay keeps by name, of each kind.
EXAMPLES = 50


def rows_name(version_id: int) -> str:
    return f"{_PREFIX}{version_id}"


@json_shape()
@dataclass(frozen=True)
class ProblemReplay:
    """A replay's figures on the rows that became patterns of one problem."""

    problem: str
    rows: int
    agreed: int
    candidate_right: int
    production_right: int


@json_shape(computed=("agreement", "candidate_accuracy", "production_accuracy"))
@dataclass(frozen=True)
class Replay:
    """A candidate's answers to a window of callers' requests, against theirs."""

    id: int
    candidate: str  # name@V
    since: datetime | None
    until: datetime
    requests: int
    rows: int  # input rows compared
    predicted: int  # of them, predicted by this replay (the rest were stored before)
    agreed: int
    labelled: int  # rows with a feedback label
    candidate_right: int
    production_right: int
    #: Rows the candidate answers right where callers were answered wrong, and the
    #: reverse, as (request id, row), the first :data:`EXAMPLES` of each.
    fixed: list[tuple[str, int]] = field(default_factory=list)
    broken: list[tuple[str, int]] = field(default_factory=list)
    fixed_count: int = 0
    broken_count: int = 0
    problems: list[ProblemReplay] = field(default_factory=list)
    created_by: str = ""
    created_at: datetime | None = None
    seconds: float = 0.0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.rows if self.rows else None

    @property
    def candidate_accuracy(self) -> float | None:
        return self.candidate_right / self.labelled if self.labelled else None

    @property
    def production_accuracy(self) -> float | None:
        return self.production_right / self.labelled if self.labelled else None


class Replays:
    """``store.replays``: replay candidates on the request log, and read replays back."""

    def __init__(
        self,
        engine: Engine,
        models: Models,
        requests: Requests,
        load: Callable[[ModelVersion, bool], Any],
    ) -> None:
        self._engine = engine
        self._models = models
        self._requests = requests
        self._load = load

    def run(
        self,
        ref: str,
        *,
        window: str | None = "7d",
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        trusted: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Replay:
        """Replay the version ``ref`` on the callers' requests to its model received
        in the window (the last 7 days by default; or ``since``/``until``).
        ``progress(n, total)`` hears of each batch: ``n`` more rows predicted, of ``total``."""
        started = time.perf_counter()
        version = self._models.get(ref)
        if window is not None and since is not None:
            raise InvalidInput("give either a window or since, not both")
        start = timestamps.parse(window if since is None else since, what="window")
        end = timestamps.parse(until, what="until") or timestamps.now_us()
        found = self._requests.window(since=start, until=end, version=version.model)
        assert found.request_id is not None and found.row is not None
        keep = found.version_id != version.id  # what the candidate answered is not production's
        if not keep.any():
            raise NotFound(
                f"no request to {version.model} in the window was answered by another "
                f"version than {ref}: nothing to replay"
            )
        missing = [c for c in version.signature.columns if c not in found.inputs.columns]
        if missing:
            raise InvalidInput(f"{ref} takes the input {missing[0]!r}, which the requests lack")
        rows = _Rows.of(found, keep)
        answers, predicted = self._answers(version, found, keep, rows, trusted, progress)
        return self._stored(version, rows, answers, predicted, start, end, started)

    # --- the candidate's answers ----------------------------------------------------------

    def _answers(
        self,
        version: ModelVersion,
        found: RequestWindow,
        keep: np.ndarray,
        rows: _Rows,
        trusted: bool,
        progress: Callable[[int, int], None] | None,
    ) -> tuple[np.ndarray, int]:
        """The candidate's answer to each row (stored ones read, the rest predicted and
        stored a batch at a time), and how many were predicted."""
        answers = self._read(version, rows)
        todo = np.flatnonzero(np.array([a is None for a in answers.tolist()], dtype=bool))
        if len(todo) == 0:
            return answers, 0
        model = self._load(version, trusted)
        inputs = found.inputs.loc[keep, list(version.signature.columns)].reset_index(drop=True)
        classes = version.signature.classes
        for done in range(0, len(todo), BATCH):
            at = todo[done : done + BATCH]
            said = np.asarray(model.predict(inputs.iloc[at]))
            answers[at] = _texts(said) if classes is not None else said.astype(np.float64)
            with write(self._engine, audited=False) as conn:
                from trenches import tables

                tables.of(conn).append(conn, _spec(version), rows.table(at, answers[at], classes))
            if progress is not None:
                progress(len(at), len(todo))
        return answers, len(todo)

    def _read(self, version: ModelVersion, rows: _Rows) -> np.ndarray:
        """The answers the candidate gave these rows before (None where it did not)."""
        import pandas as pd

        from trenches import tables
        from trenches.tables.filters import between

        out = np.full(len(rows.request_id), None, dtype=object)
        if not len(out):
            return out
        low, high = int(rows.received_at.min()), int(rows.received_at.max())
        with read(self._engine) as conn:
            store = tables.of(conn)
            files = store.files(conn, rows_name(version.id), between("received_at", low, high))
            if not files:
                return out
            kept = store.read(files, columns=["request_id", "row", "answer"])
        before = kept.to_pandas().drop_duplicates(["request_id", "row"])
        asked = pd.DataFrame({"request_id": rows.request_id, "row": rows.row})
        joined = asked.merge(before, on=["request_id", "row"], how="left")
        answer = joined["answer"].to_numpy(dtype=object)
        present = joined["answer"].notna().to_numpy()
        out[present] = answer[present]
        return out

    # --- comparing and storing ------------------------------------------------------------

    def _stored(
        self,
        version: ModelVersion,
        rows: _Rows,
        answers: np.ndarray,
        predicted: int,
        start: int | None,
        end: int,
        started: float,
    ) -> Replay:
        given = rows.answer
        classes = version.signature.classes
        if classes is not None:
            production = _texts(given)
            agree = answers == production
            label = _texts(rows.label)
        else:
            production = np.array([np.nan if a is None else float(a) for a in given.tolist()])
            agree = np.isclose(answers.astype(np.float64), production, rtol=1e-6, atol=1e-9)
            label = np.array([np.nan if a is None else float(a) for a in rows.label.tolist()])
        labelled = np.array([v is not None for v in rows.label.tolist()], dtype=bool)
        if classes is None:
            cand_right = labelled & np.isclose(answers.astype(np.float64), label, rtol=1e-6)
            prod_right = labelled & np.isclose(production, label, rtol=1e-6)
        else:
            cand_right = labelled & (answers == label)
            prod_right = labelled & (production == label)
        fixed = np.flatnonzero(cand_right & ~prod_right)
        broken = np.flatnonzero(prod_right & ~cand_right)
        problems = self._problems(rows, agree, cand_right, prod_right)
        detail = {
            "fixed": rows.named(fixed[:EXAMPLES]),
            "broken": rows.named(broken[:EXAMPLES]),
            "fixed_count": len(fixed),
            "broken_count": len(broken),
            "problems": [p.__dict__ for p in problems],
        }
        values = {
            "version_id": version.id,
            "since": start,
            "until": end,
            "requests": len(np.unique(rows.request_id)),
            "rows": len(agree),
            "predicted": predicted,
            "agreed": int(agree.sum()),
            "labelled": int(labelled.sum()),
            "candidate_right": int(cand_right.sum()),
            "production_right": int(prod_right.sum()),
            "detail": orjson.dumps(detail).decode(),
            "created_by": acting_name() or "unknown",
            "created_at": timestamps.now_us(),
            "seconds": time.perf_counter() - started,
        }
        with write(self._engine) as conn:
            made = conn.execute(insert(t.replays).values(values))
            replay_id = int(made.inserted_primary_key[0])  # type: ignore[index]
        return self.get(replay_id)

    def _problems(
        self, rows: _Rows, agree: np.ndarray, cand: np.ndarray, prod: np.ndarray
    ) -> list[ProblemReplay]:
        """The figures on the rows whose feedback became patterns of each problem."""
        f, r, pp, p = t.feedback.c, t.served_requests.c, t.problem_patterns.c, t.problems.c
        low, high = int(rows.received_at.min()), int(rows.received_at.max())
        query = (
            select(f.request_id, f.row, p.slug)
            .select_from(
                t.feedback.join(t.served_requests, r.request_id == f.request_id)
                .join(t.problem_patterns, pp.pattern_id == f.pattern_id)
                .join(t.problems, p.id == pp.problem_id)
            )
            .where(r.received_at >= low, r.received_at <= high, r.shadow_of.is_(None))
            .distinct()
        )
        with read(self._engine) as conn:
            found = conn.execute(query).all()
        if not found:
            return []
        at = {
            (rid, int(row)): k
            for k, (rid, row) in enumerate(
                zip(rows.request_id.tolist(), rows.row.tolist(), strict=True)
            )
        }
        by_problem: dict[str, list[int]] = {}
        for rid, row, slug in found:
            k = at.get((rid, int(row)))
            if k is not None:
                by_problem.setdefault(slug, []).append(k)
        out = []
        for slug, ks in sorted(by_problem.items()):
            index = np.array(sorted(set(ks)), dtype=np.int64)
            out.append(
                ProblemReplay(
                    slug,
                    len(index),
                    int(agree[index].sum()),
                    int(cand[index].sum()),
                    int(prod[index].sum()),
                )
            )
        return out

    # --- reading --------------------------------------------------------------------------

    def get(self, replay_id: int) -> Replay:
        with read(self._engine) as conn:
            row = conn.execute(select(t.replays).where(t.replays.c.id == replay_id)).first()
            if row is None:
                raise NotFound(f"no replay {replay_id}")
            ref = self._ref(conn, row.version_id)
        return _replay(row, ref)

    def of(self, ref: str) -> list[Replay]:
        """The replays of a version, newest first."""
        version = self._models.get(ref)
        with read(self._engine) as conn:
            rows = conn.execute(
                select(t.replays)
                .where(t.replays.c.version_id == version.id)
                .order_by(t.replays.c.id.desc())
            ).all()
        return [_replay(row, version.ref) for row in rows]

    @staticmethod
    def _ref(conn: Any, version_id: int) -> str:
        v, m = t.model_versions.c, t.models.c
        name, number = conn.execute(
            select(m.name, v.version).join(t.models, v.model_id == m.id).where(v.id == version_id)
        ).one()
        return f"{name}@{number}"


def _replay(row: Any, ref: str) -> Replay:
    detail = orjson.loads(row.detail)
    return Replay(
        int(row.id),
        ref,
        None if row.since is None else timestamps.from_us(row.since),
        timestamps.from_us(row.until),
        int(row.requests),
        int(row.rows),
        int(row.predicted),
        int(row.agreed),
        int(row.labelled),
        int(row.candidate_right),
        int(row.production_right),
        [(rid, int(k)) for rid, k in detail["fixed"]],
        [(rid, int(k)) for rid, k in detail["broken"]],
        int(detail["fixed_count"]),
        int(detail["broken_count"]),
        [ProblemReplay(**p) for p in detail["problems"]],
        row.created_by,
        timestamps.from_us(row.created_at),
        float(row.seconds),
    )


@dataclass(frozen=True)
class _Rows:
    """The window's rows a replay compares: which request and row, when, what callers
    were answered, and the newest feedback label."""

    request_id: np.ndarray
    row: np.ndarray
    received_at: np.ndarray
    answer: np.ndarray
    label: np.ndarray

    @classmethod
    def of(cls, found: RequestWindow, keep: np.ndarray) -> _Rows:
        assert found.request_id is not None and found.row is not None
        assert found.received_at is not None
        return cls(
            found.request_id[keep],
            found.row[keep].astype(np.int64),
            found.received_at[keep].astype(np.int64),
            found.answer[keep],
            found.label[keep],
        )

    def named(self, at: np.ndarray) -> list[tuple[str, int]]:
        return [(str(self.request_id[k]), int(self.row[k])) for k in at.tolist()]

    def table(self, at: np.ndarray, answers: np.ndarray, classes: Sequence[Any] | None) -> pa.Table:
        import pyarrow as pa

        kind = pa.string() if classes is not None else pa.float64()
        return pa.table(
            {
                "received_at": pa.array(self.received_at[at], type=pa.int64()),
                "request_id": pa.array(self.request_id[at].tolist(), type=pa.string()),
                "row": pa.array(self.row[at], type=pa.int32()),
                "answer": pa.array(answers.tolist(), type=kind),
            }
        )


def _spec(version: ModelVersion) -> Any:
    from pyiceberg.schema import Schema
    from pyiceberg.types import DoubleType, IntegerType, LongType, NestedField, StringType

    from trenches.tables.catalog import TableSpec

    answer = StringType() if version.signature.classes is not None else DoubleType()
    return TableSpec(
        rows_name(version.id),
        Schema(
            NestedField(1, "received_at", LongType(), required=True),
            NestedField(2, "request_id", StringType(), required=True),
            NestedField(3, "row", IntegerType(), required=True),
            NestedField(4, "answer", answer, required=False),
        ),
    )


def _texts(values: np.ndarray | pd.Series) -> np.ndarray:
    """Labels as text (None stays None): answers and labels of any type compared alike."""
    out = np.empty(len(values), dtype=object)
    out[:] = [
        None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        for v in np.asarray(values).tolist()
    ]
    return out
