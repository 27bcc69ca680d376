"""Alerts: a line in the log, and a JSON POST to the webhook of ``trenches.toml``.

A webhook that is down, slow or refusing never breaks the check that raised the
alert: the post is retried with backoff, and what happened is recorded with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, update

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import write
from trenches.monitoring.reports import Alert, Monitored, finite

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.settings import MonitorSettings

log = logging.getLogger("trenches.monitoring")

#: Answers worth another try; any other 4xx means the request itself is refused.
_RETRY_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    error: str | None


def post(
    url: str,
    payload: dict[str, Any],
    *,
    timeout: float = 5.0,
    retries: int = 3,
    backoff: float = 0.5,
) -> Delivery:
    """POST ``payload`` as JSON to ``url``: up to ``1 + retries`` attempts, waiting
    ``backoff``, then twice as long, ... (at most 8 s) between them. Never raises."""
    import httpx

    error = None
    attempts = 0
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for attempt in range(retries + 1):
            attempts = attempt + 1
            try:
                answer = client.post(url, json=payload, headers={"user-agent": "trenches-monitor"})
            except httpx.HTTPError as e:
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                if answer.is_success:
                    return Delivery(True, attempts, None)
                error = f"HTTP {answer.status_code}"
                if 400 <= answer.status_code < 500 and answer.status_code not in _RETRY_STATUS:
                    break
            if attempt < retries:
                time.sleep(min(backoff * 2**attempt, 8.0))
    log.warning("the alert webhook %s did not take the alert: %s", url, error)
    return Delivery(False, attempts, error)


def raise_alert(engine: Engine, report_id: int, monitored: Monitored, s: MonitorSettings) -> Alert:
    """The alert of a stored report that found drift: logged, stored, and posted to
    the webhook when one is set (whether it was delivered is stored with it)."""
    report = monitored.report
    parts = []
    if report.drifted_columns:
        parts.append(
            f"{len(report.drifted_columns)} of {len(report.columns)} input columns drifted "
            f"({', '.join(report.drifted_columns[:8])}"
            f"{', ...' if len(report.drifted_columns) > 8 else ''})"
        )
    if report.prediction is not None and report.prediction.drifted:
        parts.append("the predictions drifted")
    message = (
        f"drift in {monitored.version}: {'; '.join(parts)} — {monitored.current} against "
        f"{monitored.reference} (report {report_id})"
    )
    log.warning(message)
    now = timestamps.now_us()
    with write(engine) as conn:
        alert_id = int(
            conn.execute(
                insert(t.alerts).values(
                    report_id=report_id,
                    message=message,
                    webhook=s.webhook,
                    delivered=None,
                    attempts=0,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        )
    delivery = None
    if s.webhook:
        payload = {
            "event": "trenches.drift",
            "report_id": report_id,
            "alert_id": alert_id,
            "model": monitored.version.split("@")[0],
            "version": monitored.version,
            "message": message,
            "reference": monitored.reference,
            "current": monitored.current,
            "since": monitored.since.isoformat() if monitored.since else None,
            "until": monitored.until.isoformat() if monitored.until else None,
            "drifted_columns": report.drifted_columns,
            "prediction_drifted": bool(report.prediction and report.prediction.drifted),
            "columns": [
                {
                    "name": c.name,
                    "test": c.test,
                    "statistic": finite(c.statistic),
                    "reasons": list(c.reasons),
                }
                for c in (*report.columns, *([report.prediction] if report.prediction else []))
                if c.drifted
            ],
            "created_at": timestamps.from_us(now).isoformat(),
        }
        delivery = post(
            s.webhook,
            payload,
            timeout=s.webhook_timeout,
            retries=s.webhook_retries,
            backoff=s.webhook_backoff,
        )
        with write(engine) as conn:
            conn.execute(
                update(t.alerts)
                .where(t.alerts.c.id == alert_id)
                .values(
                    delivered=delivery.delivered,
                    attempts=delivery.attempts,
                    error=delivery.error,
                )
            )
    return Alert(
        id=alert_id,
        report_id=report_id,
        message=message,
        webhook=s.webhook,
        delivered=delivery.delivered if delivery else None,
        attempts=delivery.attempts if delivery else 0,
        error=delivery.error if delivery else None,
        created_at=timestamps.from_us(now),
    )
