"""What the store knows of a policy's arms while it runs: the feedback on each arm's
answers (a bandit's posteriors, a guard's feedback accuracy), and each arm's figures
over a window of the request log (``trenches compare --live``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.json_form import json_shape
from trenches.traffic import routing
from trenches.traffic.arms import TrafficPolicy
from trenches.traffic.routing import Tally

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def tallies(engine: Engine, policy: TrafficPolicy) -> dict[str, Tally]:
    """The feedback on the answers each arm of ``policy`` gave callers (not those given
    in a shadow), by arm name."""
    if policy.id == 0 or policy.created_at is None:
        return {}
    f, r = t.feedback.c, t.served_requests.c
    query = (
        select(
            r.arm,
            func.count(f.correct),
            func.coalesce(func.sum(f.correct), 0),
            func.count(f.rating),
            func.coalesce(func.sum(f.rating), 0.0),
        )
        .select_from(t.feedback.join(t.served_requests, r.request_id == f.request_id))
        .where(
            f.created_at >= timestamps.to_us(policy.created_at),
            r.policy_id == policy.id,
            r.shadow_of.is_(None),
        )
        .group_by(r.arm)
    )
    with read(engine) as conn:
        rows = conn.execute(query).all()
    return {
        arm: Tally(int(labelled), int(right), int(rated), float(rating_sum))
        for arm, labelled, right, rated, rating_sum in rows
        if arm is not None
    }


#: The normal quantile of a 95% interval.
_Z = 1.959963984540054


def wilson(right: int, n: int, z: float = _Z) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion ``right / n`` (95% by default)."""
    if n <= 0:
        return None
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@json_shape()
@dataclass(frozen=True)
class ArmLive:
    """One arm's live figures over a window: the requests it answered callers (or, for
    a shadow, answered in another's shadow), their latency, and the feedback on them."""

    arm: str  # the policy's arm; "-" for requests answered under no policy
    version: str  # name@V
    shadow: bool  # answers given in a shadow, never returned
    requests: int
    rows: int
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    labelled: int  # feedback labels on its answers
    right: int  # of them, the class it answered
    accuracy: float | None
    accuracy_low: float | None  # 95% Wilson interval
    accuracy_high: float | None
    share: float | None  # its share of requests under the policy now (a bandit's, estimated)


@json_shape()
@dataclass(frozen=True)
class LiveComparison:
    """``trenches compare --live``: a model's arms over a window of its request log."""

    model: str
    since: datetime
    until: datetime
    policy: TrafficPolicy
    arms: list[ArmLive]


def compare_live(engine: Engine, policy: TrafficPolicy, since: int, until: int) -> LiveComparison:
    """The arms of ``policy.model`` over ``[since, until)`` (µs), with the shares of
    ``policy`` (the model's policy now)."""
    import numpy as np

    r, v, m, f = t.served_requests.c, t.model_versions.c, t.models.c, t.feedback.c
    is_shadow = r.shadow_of.isnot(None)
    joined = t.served_requests.join(t.model_versions, r.version_id == v.id).join(
        t.models, v.model_id == m.id
    )
    window = (m.name == policy.model, r.received_at >= since, r.received_at < until)
    with read(engine) as conn:
        served = conn.execute(
            select(r.arm, v.version, is_shadow, r.n, r.latency_us)
            .select_from(joined)
            .where(*window)
        ).all()
        labelled = conn.execute(
            select(r.arm, v.version, func.count(f.correct), func.coalesce(func.sum(f.correct), 0))
            .select_from(joined.join(t.feedback, f.request_id == r.request_id))
            .where(*window, r.shadow_of.is_(None))
            .group_by(r.arm, v.version)
        ).all()
    feedback = {(arm or "-", int(ver)): (int(n), int(k)) for arm, ver, n, k in labelled}
    groups: dict[tuple[str, int, bool], list[tuple[int, int]]] = {}
    for arm, ver, shadow, n, latency in served:
        groups.setdefault((arm or "-", int(ver), bool(shadow)), []).append((int(n), int(latency)))
    now = routing.shares(policy, tallies(engine, policy)) if policy.routes else {}
    arms = []
    for (arm, ver, shadow), items in sorted(groups.items()):
        rows, latency = np.array(items, dtype=np.int64).T
        n, k = (0, 0) if shadow else feedback.get((arm, ver), (0, 0))
        interval = wilson(k, n)
        arms.append(
            ArmLive(
                arm,
                f"{policy.model}@{ver}",
                shadow,
                len(items),
                int(rows.sum()),
                float(np.percentile(latency, 50)) / 1000,
                float(np.percentile(latency, 99)) / 1000,
                n,
                k,
                k / n if n else None,
                interval[0] if interval else None,
                interval[1] if interval else None,
                None if shadow else now.get(arm),
            )
        )
    return LiveComparison(
        policy.model, timestamps.from_us(since), timestamps.from_us(until), policy, arms
    )
