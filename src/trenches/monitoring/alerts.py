"""Alerts: a line in the log, and a JSON POST to the webhook of ``trenches.toml``.

A webhook that is down, slow or refusing never breaks the check that raised the
alert: the post is retried with backoff, and what happened is recorded with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

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
