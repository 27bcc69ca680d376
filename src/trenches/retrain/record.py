"""What a retraining pass records: the figures, the problems, the decision; read back
from the ``retrains`` table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from trenches import timestamps
from trenches.errors import TrenchesError
from trenches.json_form import from_json, json_shape
from trenches.settings.retrain import RetrainSettings

if TYPE_CHECKING:
    from trenches.gates.check import GateResult

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
