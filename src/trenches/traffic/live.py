"""What the store knows of a policy's arms while it runs: the feedback on each arm's
answers (a bandit's posteriors, a guard's feedback accuracy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.traffic.routing import Tally

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.traffic.policies import Policy


def tallies(engine: Engine, policy: Policy) -> dict[str, Tally]:
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
