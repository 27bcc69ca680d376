"""The continuous-training loop: one pass takes a fresh snapshot, trains the user's
function on it in a tracked run, registers the candidate, predicts validation and every
problem with it and with production, backfills every version of the dataset (validation,
test and problems), checks its gates, compares it with production, and promotes it when
it passes and is better; otherwise it waits under the alias ``candidate`` with the
reason.

Each pass is a row of ``retrains``: what set it off (a drift report, or a person), the
snapshot, run, candidate, production version and check it made or used, the decision
and why, so the history shows which drift led to which model.

The settings are one table per model in ``trenches.toml``::

    [retrain.cancer-clf]
    train = "training:fit"        # module:function, given the TrainingData
    weighting = "exponential"     # none | exponential | inverse-age
    half-life-days = 60
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import NotFound
from trenches.json_form import to_json
from trenches.retrain.function import load_function
from trenches.retrain.loop import Asked, Parts, Pass, decide, failing
from trenches.retrain.record import (
    Figures,
    ProblemTally,
    Progress,
    Retrain,
    RetrainFailed,
    RetrainStep,
    read_passes,
)
from trenches.settings import given
from trenches.settings.retrain import WEIGHTINGS, RetrainSettings

if TYPE_CHECKING:
    import pandas as pd

    from trenches.models.versions import ModelVersion
    from trenches.monitoring.reports import Monitored
    from trenches.patterns.datasets import Dataset
    from trenches.settings import Settings

__all__ = [
    "WEIGHTINGS",
    "Figures",
    "OnDrift",
    "ProblemTally",
    "Retrain",
    "RetrainFailed",
    "RetrainSettings",
    "RetrainStep",
    "Retrains",
    "load_function",
]


@dataclass(frozen=True)
class OnDrift:
    """What :meth:`Retrains.on_drift` did: the drift report it stored, and the pass it
    set off (None when nothing drifted)."""

    report: Monitored
    retrain: Retrain | None


class Retrains:
    """``store.retrains``: run a retraining pass, and read the passes made."""

    def __init__(self, parts: Parts, settings: Callable[[], Settings]) -> None:
        self._parts = parts
        self._settings = settings

    def settings(
        self,
        model: str,
        path: str | os.PathLike[str] | None = None,
        *,
        settings: Settings | None = None,
    ) -> RetrainSettings:
        """The ``[retrain.MODEL]`` settings of ``settings``, else of the trenches.toml at
        ``path``, else of the store's (``store.settings``), checked."""
        return (given(settings, path) or self._settings()).retraining(model)

    # The keyword options of a public method are its API.
    def on_drift(  # noqa: PLR0913
        self,
        ref: str,
        *,
        window: str | None = None,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        current: pd.DataFrame | str | Path | None = None,
        reference: str = "train",
        trusted: bool = False,
        on_report: Callable[[Monitored], None] | None = None,
        progress: Progress | None = None,
    ) -> OnDrift:
        """Watch ``ref`` and retrain its model when production drifted: what
        ``trenches monitor drift REF --retrain`` does, in one call.

        The ``[retrain.MODEL]`` settings and the training function are read first (a
        mistake there stops it before anything is measured); then the window is
        compared with the reference (see :meth:`trenches.Monitoring.run`) and the
        report stored; ``on_report`` hears of it at once. When it drifted, one pass
        runs, set off by that report (see :meth:`run`)."""
        model = ref.split("@")[0]
        load_function(self.settings(model))
        report = self._parts.monitoring.run(
            ref,
            window=window,
            since=since,
            until=until,
            current=current,
            reference=reference,
            trusted=trusted,
        )
        if on_report is not None:
            on_report(report)
        if not report.drifted:
            return OnDrift(report, None)
        passed = self.run(model, report_id=report.id, trusted=trusted, progress=progress)
        return OnDrift(report, passed)

    def run(
        self,
        model: str,
        *,
        path: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        report_id: int | None = None,
        trusted: bool = False,
        progress: Progress | None = None,
    ) -> Retrain:
        """One pass of the loop for ``model``: snapshot, train, register, predict, check
        the gates, compare with production, and promote the candidate when it passes
        and is better (else leave it at ``candidate``, with the reason).

        The settings (``settings``, else the trenches.toml at ``path``, else the
        store's), the training function and the gates are read first: a mistake is
        an :class:`InvalidConfig` and nothing is written. Once the pass is recorded, a
        failure leaves it ``failed`` with the error and raises :class:`RetrainFailed`.
        ``report_id`` is the drift report that set the pass off, if one did.
        ``progress`` is called with a :class:`RetrainStep` as each step happens.
        """
        project = given(settings, path) or self._settings()
        table = project.retraining(model)
        function = load_function(table)
        production = self._production(model)
        dataset = self._dataset(table, production)
        table.check_task(dataset.name, dataset.task)
        if report_id is not None:
            self._check_report(report_id)
        asked = Asked(report_id, trusted, progress)
        p = Pass(self._parts, table, function, dataset, production, asked, project)
        p.start()
        with failing(p):
            snap = p.snapshot()
            candidate = p.train(snap)
            name, ids, problems = p.predict(candidate)
            p.backfill()
            check = p.check(candidate)
            figures = p.compare(candidate, name, ids)
            p.body["figures"] = to_json(figures)
            p.body["problems"] = to_json(p.tallies(candidate, problems))
            p.say("compare", figures.why)
            promote, reason = decide(p, check, figures)
            if promote:
                self._parts.models.promote(candidate.ref, "production", reason=reason)
            p.record(
                status="promoted" if promote else "candidate",
                reason=reason,
                body=orjson.dumps(p.body).decode(),
                ended_at=timestamps.now_us(),
            )
            p.say(
                "decision",
                f"promoted {candidate.ref} to production"
                if promote
                else f"left {candidate.ref} at candidate",
            )
        return self.get(p.id)

    def _production(self, model: str) -> ModelVersion | None:
        try:
            return self._parts.models.get(f"{model}@production")
        except NotFound:
            return None

    def _dataset(self, settings: RetrainSettings, production: ModelVersion | None) -> Dataset:
        name = settings.dataset
        if name is None:
            version = production
            if version is None:
                try:
                    found = self._parts.models.versions(settings.model)
                except NotFound:
                    found = []
                version = found[-1] if found else None
            if version is None or version.dataset is None:
                raise settings.error(
                    None,
                    f"dataset is missing: model {settings.model!r} has no version with a "
                    'dataset to take it from; add dataset = "NAME"',
                )
            name = version.dataset
        try:
            return self._parts.datasets.get(name)
        except NotFound:
            if settings.dataset is None:
                raise
            raise settings.error("dataset", f"there is no dataset {name!r}") from None

    def _check_report(self, report_id: int) -> None:
        with read(self._parts.engine) as conn:
            found = conn.execute(
                select(t.drift_reports.c.id).where(t.drift_reports.c.id == report_id)
            ).first()
        if found is None:
            raise NotFound(f"there is no drift report #{report_id}")

    def get(self, retrain_id: int) -> Retrain:
        """One pass by id."""
        found = self._read(t.retrains.c.id == retrain_id)
        if not found:
            raise NotFound(f"there is no retrain #{retrain_id}")
        return found[0]

    def history(self, model: str | None = None) -> builtins.list[Retrain]:
        """Every pass (of ``model``, or of every model), newest first."""
        return self._read(t.retrains.c.model == model if model is not None else None)

    def _read(self, where: Any) -> builtins.list[Retrain]:
        return read_passes(self._parts.engine, where)
