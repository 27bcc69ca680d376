"""What a retraining pass records: the figures, the problems, the decision; read back
from the ``retrains`` table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select, update

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import acting_name
from trenches.db.engine import insert_returning_id, read, write
from trenches.errors import Conflict, TrenchesError
from trenches.json_form import from_json, json_shape
from trenches.settings.retrain import RetrainSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.gates.check import GateResult
    from trenches.models.versions import ModelVersion

STATUSES = ("running", "promoted", "candidate", "failed")


class RetrainFailed(TrenchesError):
    """A retraining pass started and could not finish (the training function raised,
    returned no model, or a later step failed); its record is ``failed`` with the
    error, and nothing was promoted."""

    exit_code = 1

    def __init__(self, message: str, retrain: Retrain | None = None) -> None:
        super().__init__(message)
        self.retrain = retrain


@json_shape(
    computed=("delta",),
    order=("metric", "pattern_set", "size", "candidate", "production", "production_ref", "delta"),
)
@dataclass(frozen=True)
class Figures:
    """The candidate against production on the validation patterns both predicted."""

    metric: str
    pattern_set: str
    size: int
    candidate: float | None
    production: float | None  # None: no production version, or undefined
    production_ref: str | None
    lower_is_better: bool
    min_improvement: float
    better: bool
    why: str  # the comparison in words

    @property
    def delta(self) -> float | None:
        """Candidate minus production."""
        if self.candidate is None or self.production is None:
            return None
        return self.candidate - self.production


@dataclass(frozen=True)
class ProblemTally:
    """How many of one problem's patterns the candidate and production get right."""

    problem: str
    status: str
    patterns: int
    candidate_right: int
    production_right: int | None  # None: no production version to compare with


@json_shape(
    computed=("trigger",),
    encode={"started_at": datetime.isoformat, "ended_at": datetime.isoformat},
    order=("id", "model", "status", "reason", "trigger"),
)
@dataclass(frozen=True)
class Retrain:
    """One pass of the continuous-training loop, as recorded."""

    id: int
    model: str
    status: str  # running | promoted | candidate | failed
    reason: str | None
    report_id: int | None  # the drift report that set it off; None: started by hand
    snapshot_id: int | None
    run_id: int | None
    candidate: str | None  # name@V
    production: str | None  # the production version it was compared with
    check_id: int | None
    started_by: str | None
    started_at: datetime
    ended_at: datetime | None
    #: The settings it ran with (None while it runs).
    settings: RetrainSettings | None = None
    figures: Figures | None = None
    problems: tuple[ProblemTally, ...] = ()
    #: The gate check's results; empty without gates.
    gates: tuple[GateResult, ...] = ()
    #: What else was recorded: the snapshot digest, training size, predictions made.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.status == "promoted"

    @property
    def trigger(self) -> str:
        """``drift report #7``, or ``by hand``."""
        return f"drift report #{self.report_id}" if self.report_id is not None else "by hand"


@dataclass(frozen=True)
class RetrainStep:
    """One step of a pass as it happens, for a progress display.

    ``name`` is one of start, snapshot, train, candidate, predict (with ``done`` and
    ``total`` patterns, repeated as they are predicted), predicted, backfill, check,
    compare, decision.
    """

    name: str
    message: str
    done: int | None = None
    total: int | None = None


Progress = Callable[[RetrainStep], None]


def retrain_from_row(row: Any, refs: dict[int, str]) -> Retrain:
    """A row of ``retrains`` (``refs``: name@V by model version id)."""
    from trenches.gates.check import GateResult

    body = orjson.loads(row.body) if row.body else {}
    figures = body.get("figures")
    settings = body.get("settings")
    details = {
        k: v for k, v in body.items() if k not in ("settings", "figures", "problems", "gates")
    }
    gates = body.get("gates") or {}
    return Retrain(
        id=int(row.id),
        model=row.model,
        status=row.status,
        reason=row.reason,
        report_id=row.report_id,
        snapshot_id=row.snapshot_id,
        run_id=row.run_id,
        candidate=refs.get(row.version_id),
        production=refs.get(row.production_id),
        check_id=row.check_id,
        started_by=row.started_by,
        started_at=timestamps.from_us(row.started_at),
        ended_at=timestamps.from_us(row.ended_at) if row.ended_at else None,
        settings=from_json(RetrainSettings, {**settings, "model": row.model}) if settings else None,
        figures=from_json(Figures, figures) if figures else None,
        problems=tuple(from_json(ProblemTally, p) for p in body.get("problems", [])),
        gates=tuple(from_json(GateResult, g) for g in gates.get("results", [])),
        details=details,
    )


# --- the passes as rows: started, reaped when their process died, read back ------


def insert_pass(
    engine: Engine, model: str, report_id: int | None, production: ModelVersion | None
) -> int:
    reap_killed(engine)
    with write(engine) as conn:
        busy = conn.execute(
            select(t.retrains.c.id).where(
                t.retrains.c.model == model, t.retrains.c.status == "running"
            )
        ).first()
        if busy is not None:
            raise Conflict(
                f"retrain #{busy.id} of {model} is running; one pass at a time (a pass whose "
                "process died is marked failed when the passes are next read)"
            )
        return insert_returning_id(
            conn,
            t.retrains,
            {
                "model": model,
                "report_id": report_id,
                "production_id": production.id if production is not None else None,
                "status": "running",
                # Who is running it: a pass whose process is gone is reaped as failed.
                "body": orjson.dumps({"process": this_process()}).decode(),
                "started_by": acting_name(),
                "started_at": timestamps.now_us(),
            },
        )


def this_process() -> dict[str, Any]:
    import os
    import socket

    from trenches.runs.code import process_started

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": process_started(os.getpid()),
    }


def reap_killed(engine: Engine) -> int:
    """Mark passes of this host whose process is gone as failed. Returns how many."""
    import socket

    from trenches.runs.code import process_alive

    r = t.retrains.c
    with read(engine) as conn:
        running = conn.execute(select(r.id, r.body).where(r.status == "running")).all()
    host = socket.gethostname()
    gone = []
    for row in running:
        process = (orjson.loads(row.body) if row.body else {}).get("process") or {}
        pid = process.get("pid")
        if (
            process.get("host") == host
            and isinstance(pid, int)
            and not process_alive(pid, process.get("started"))
        ):
            gone.append(row.id)
    if gone:
        with write(engine) as conn:
            conn.execute(
                update(t.retrains)
                .where(r.id.in_(gone), r.status == "running")
                .values(
                    status="failed",
                    reason="the process running the pass ended before the pass did (killed?)",
                    ended_at=timestamps.now_us(),
                )
            )
    return len(gone)


def read_passes(engine: Engine, where: Any) -> list[Retrain]:
    """The passes ``where`` picks (every pass when None), newest first; passes of this
    host whose process died are marked failed first."""
    reap_killed(engine)
    r, v, m = t.retrains.c, t.model_versions.c, t.models.c
    query = select(t.retrains).order_by(r.id.desc())
    if where is not None:
        query = query.where(where)
    with read(engine) as conn:
        rows = conn.execute(query).all()
        ids = {i for row in rows for i in (row.version_id, row.production_id) if i}
        refs = {}
        if ids:
            refs = {
                vid: f"{name}@{number}"
                for vid, name, number in conn.execute(
                    select(v.id, m.name, v.version)
                    .join(t.models, m.id == v.model_id)
                    .where(v.id.in_(sorted(ids)))
                )
            }
    return [retrain_from_row(row, refs) for row in rows]
