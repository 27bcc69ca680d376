"""The automatic guard of a rollout: a canary's candidate, or a bandit's arm, whose
live figures cross the bounds of ``[guard]`` in ``trenches.toml`` is rolled back, and
an alert posted to the monitoring webhook.

Each server judges what it saw since the policy began (:class:`Watch`: the requests
an arm answered, those it failed where the version served did not, their latencies,
and how often it agreed with the version served, which answers the same rows in the
arm's shadow) and the feedback the store holds on the arm's answers. The first server
to see an arm cross a bound writes the rollback, only if the policy it judged is still
the model's (:meth:`~trenches.traffic.policies.Traffic.roll_back`); the others follow
the store within their next look.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from trenches.settings import MonitorSettings
from trenches.settings.guard import GuardSettings
from trenches.traffic.arms import BASELINE, TrafficPolicy
from trenches.traffic.routing import Tally

log = logging.getLogger("trenches.traffic")

#: Latencies an arm's watch keeps (its newest), for the 99th percentile.
LATENCIES = 10_000


@dataclass
class ArmFigures:
    """What one server saw of one arm since the policy began."""

    requests: int = 0
    errors: int = 0  # failed where the version served answered
    compared: int = 0  # rows also answered by the version served
    agreed: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCIES))

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None

    @property
    def latency_p99_ms(self) -> float | None:
        return (
            float(np.percentile(np.fromiter(self.latencies, float), 99)) if self.latencies else None
        )


class Watch:
    """The figures of each arm of one policy, as one server sees them. Updated from the
    request path and the shadow answers' threads."""

    def __init__(self, policy: TrafficPolicy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self.arms = {a.name: ArmFigures() for a in policy.arms}

    def answered(self, arm: str, seconds: float) -> None:
        with self._lock:
            figures = self.arms[arm]
            figures.requests += 1
            figures.latencies.append(seconds * 1000.0)

    def failed(self, arm: str) -> int:
        """Count a failure of ``arm``; its failures so far."""
        with self._lock:
            figures = self.arms[arm]
            figures.requests += 1
            figures.errors += 1
            return figures.errors

    def compared(self, arm: str, rows: int, agreed: int) -> None:
        with self._lock:
            figures = self.arms[arm]
            figures.compared += rows
            figures.agreed += agreed


@dataclass(frozen=True)
class Crossed:
    """An arm whose figure crossed its bound."""

    arm: str
    figure: str  # error-rate | latency-p99-ms | agreement | feedback-accuracy
    value: float
    bound: float
    requests: int

    @property
    def reason(self) -> str:
        side = "above" if self.figure in ("error-rate", "latency-p99-ms") else "below"
        return (
            f"guard: {self.arm}'s {self.figure} {self.value:.4g} is {side} the bound "
            f"{self.bound:g} (after {self.requests} requests)"
        )


def judge(watch: Watch, tallies: Mapping[str, Tally], bounds: GuardSettings) -> Crossed | None:
    """The first arm of a guarded policy (a canary, a bandit) whose figures cross a
    bound; None when every arm holds, or the policy is not guarded."""
    policy = watch.policy
    if policy.kind not in ("canary", "bandit"):
        return None
    for arm in policy.arms:
        if arm.name == BASELINE:
            continue
        figures = watch.arms[arm.name]
        crossed = _crossed(arm.name, figures, tallies.get(arm.name), bounds)
        if crossed is not None:
            return crossed
    return None


def _crossed(
    arm: str, figures: ArmFigures, tally: Tally | None, bounds: GuardSettings
) -> Crossed | None:
    n = figures.requests
    if n >= bounds.min_requests:
        if figures.error_rate > bounds.error_rate:
            return Crossed(arm, "error-rate", figures.error_rate, bounds.error_rate, n)
        p99 = figures.latency_p99_ms
        if bounds.latency_p99_ms is not None and p99 is not None and p99 > bounds.latency_p99_ms:
            return Crossed(arm, "latency-p99-ms", p99, bounds.latency_p99_ms, n)
        agreement = figures.agreement
        if (
            bounds.agreement is not None
            and agreement is not None
            and figures.compared >= bounds.min_requests
            and agreement < bounds.agreement
        ):
            return Crossed(arm, "agreement", agreement, bounds.agreement, n)
    accuracy = tally.accuracy if tally is not None else None
    if (
        bounds.feedback_accuracy is not None
        and tally is not None
        and accuracy is not None
        and tally.labelled >= bounds.min_feedback
        and accuracy < bounds.feedback_accuracy
    ):
        return Crossed(arm, "feedback-accuracy", accuracy, bounds.feedback_accuracy, n)
    return None


def alert(
    monitor: MonitorSettings, policy: TrafficPolicy, crossed: Crossed, fresh: TrafficPolicy
) -> None:
    """Log a rollback, and post it to the monitoring webhook when one is set."""
    arm = policy.arm(crossed.arm)
    log.error("%s rolled back: %s; now %s", arm.ref, crossed.reason, fresh.describe())
    if not monitor.webhook:
        return
    from trenches.monitoring.alerts import post

    payload = {
        "kind": "traffic.rollback",
        "model": policy.model,
        "version": arm.ref,
        "arm": crossed.arm,
        "figure": crossed.figure,
        "value": crossed.value,
        "bound": crossed.bound,
        "requests": crossed.requests,
        "message": crossed.reason,
        "policy": policy.to_json(),
        "now": fresh.to_json(),
    }
    post(
        monitor.webhook,
        payload,
        timeout=monitor.webhook_timeout,
        retries=monitor.webhook_retries,
        backoff=monitor.webhook_backoff,
    )
