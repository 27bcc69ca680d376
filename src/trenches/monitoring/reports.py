"""Drift reports as stored: the report of a window with its alert and the retraining
passes it set off."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from trenches import timestamps
from trenches.json_form import from_json, json_shape
from trenches.monitoring.results import ColumnDrift, DriftReport
from trenches.settings.monitor import DriftSettings


def finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


@json_shape(encode={"created_at": datetime.isoformat})
@dataclass(frozen=True)
class Alert:
    id: int
    report_id: int
    message: str
    webhook: str | None
    delivered: bool | None
    attempts: int
    error: str | None
    created_at: datetime


@json_shape(
    flatten=("report",),
    encode={
        "since": datetime.isoformat,
        "until": datetime.isoformat,
        "created_at": datetime.isoformat,
    },
    order=("id", "version", "reference", "current", "since", "until", "created_at"),
)
@dataclass(frozen=True)
class Monitored:
    """A drift report of one window, as stored (``id`` is None when not stored)."""

    id: int | None
    version: str
    reference: str
    current: str
    since: datetime | None
    until: datetime | None
    report: DriftReport
    metrics: dict[str, Any] | None
    alert: Alert | None
    created_at: datetime
    retrains: tuple[dict[str, Any], ...] = ()

    @property
    def drifted(self) -> bool:
        return self.report.drifted


def alert_from_row(row: Any) -> Alert:
    return Alert(
        id=int(row.id),
        report_id=int(row.report_id),
        message=row.message,
        webhook=row.webhook,
        delivered=row.delivered,
        attempts=int(row.attempts),
        error=row.error,
        created_at=timestamps.from_us(row.created_at),
    )


def report_from_row(
    row: Any, alert: Alert | None, retrains: tuple[dict[str, Any], ...]
) -> Monitored:
    body = orjson.loads(row.body)
    settings = orjson.loads(row.settings)
    columns = tuple(from_json(ColumnDrift, c) for c in body["columns"])
    prediction = from_json(ColumnDrift, body["prediction"]) if body.get("prediction") else None
    drift_settings = DriftSettings(
        **{
            k: v
            for k, v in settings.items()
            if k != "columns" and k in DriftSettings.__dataclass_fields__
        }
    )
    report = DriftReport(
        columns=columns,
        prediction=prediction,
        reference_rows=int(row.reference_rows),
        current_rows=int(row.current_rows),
        settings=drift_settings,
        ignored=tuple(body.get("ignored") or ()),
        extra=tuple(body.get("extra") or ()),
    )
    return Monitored(
        id=int(row.id),
        version=f"{row.model_name}@{row.number}",
        reference=row.reference,
        current=row.current,
        since=timestamps.from_us(row.since) if row.since is not None else None,
        until=timestamps.from_us(row.until) if row.until is not None else None,
        report=report,
        metrics=body.get("metrics"),
        alert=alert,
        created_at=timestamps.from_us(row.created_at),
        retrains=retrains,
    )
