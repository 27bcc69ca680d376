"""Traffic policies: how a model's requests are shared between its versions, kept in
the store so that every server of the model (``--workers N``, other hosts) follows
the same one (``store.traffic``).

- ``shadow``: the version served answers every caller; the candidate answers the same
  rows too, its answer logged and never returned.
- ``canary``: a share of requests goes to the candidate, sticky per caller key when one
  is sent (``x-caller-key``); ramping the share up keeps callers where they were.
- ``ab``: a fixed split for an experiment, sticky the same way.
- ``bandit``: Thompson sampling over versions, the reward being feedback (a label that
  is the answer given, or a rating over its best value), each arm keeping a floor share.
- ``off``: the version served answers everything (the default).

The version the server serves (its alias, e.g. ``churn@production``) is the arm named
``baseline``; a candidate is the arm ``v<number>``. Each change is a row with who made
it and why, in the audit trail with the team server; the model's policy is its newest.
A guard (:mod:`trenches.traffic.guard`) may roll an arm back: it writes the change
only if the policy it judged is still the model's, so replicas that judge at once
roll back once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import insert, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import acting_name, change
from trenches.db.engine import read, write
from trenches.errors import InvalidInput, NotFound
from trenches.traffic.arms import BASELINE, FLOOR, GUARD, KINDS, TrafficArm, TrafficPolicy

__all__ = [
    "BASELINE",
    "FLOOR",
    "GUARD",
    "KINDS",
    "Traffic",
    "TrafficArm",
    "TrafficPolicy",
]

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.traffic.live import LiveComparison


def _share(share: float, what: str) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share):
        raise InvalidInput(f"{what} {share!r} must be a number between 0 and 1")
    if not 0 < share < 1:
        raise InvalidInput(f"{what} {share!r} must be more than 0 and less than 1")
    return float(share)


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("changing a traffic policy needs a reason (--reason)")
    return reason.strip()


class _Stale(Exception):
    """The policy a guard judged is no longer its model's."""


class Traffic:
    """``store.traffic``: set, read and roll back models' traffic policies."""

    def __init__(self, engine: Engine, models: Models) -> None:
        self._engine = engine
        self._models = models

    # --- setting ------------------------------------------------------------------------

    def shadow(self, ref: str, *, reason: str) -> TrafficPolicy:
        """Version ``ref`` answers every request in the shadow of the version served."""
        (version,) = self._candidates([ref])
        arms = [TrafficArm(BASELINE, None, 1.0), TrafficArm(_name(version), version.id, 0.0)]
        return self._set(version.model, "shadow", arms, reason=reason)

    def canary(self, ref: str, *, share: float, reason: str) -> TrafficPolicy:
        """Version ``ref`` answers ``share`` of requests (0.1: a tenth); the guard of
        ``trenches.toml`` rolls it back when its figures cross their bounds."""
        (version,) = self._candidates([ref])
        share = _share(share, "share")
        arms = [
            TrafficArm(_name(version), version.id, share),
            TrafficArm(BASELINE, None, 1.0 - share),
        ]
        return self._set(version.model, "canary", arms, reason=reason)

    def ab(self, ref: str, *, share: float = 0.5, reason: str) -> TrafficPolicy:
        """An experiment: version ``ref`` answers ``share`` of requests, the version
        served the rest, for as long as it runs (no guard)."""
        (version,) = self._candidates([ref])
        share = _share(share, "share")
        arms = [
            TrafficArm(_name(version), version.id, share),
            TrafficArm(BASELINE, None, 1.0 - share),
        ]
        return self._set(version.model, "ab", arms, reason=reason)

    def bandit(
        self,
        refs: Sequence[str],
        *,
        reason: str,
        floor: float = FLOOR,
        rating_max: float | None = None,
    ) -> TrafficPolicy:
        """Thompson sampling over the version served and the versions ``refs``: each
        request goes to the arm whose sampled reward is highest, each arm keeping
        ``floor`` of requests. The reward is feedback: 1 for a label that is the answer
        given, 0 for one that is not; a rating counts as ``rating / rating_max``."""
        versions = self._candidates(refs)
        n = len(versions) + 1
        floor = float(floor)
        if not math.isfinite(floor) or not 0 <= floor * n <= 1:
            raise InvalidInput(
                f"floor {floor!r} must be between 0 and 1/{n} (each of the {n} arms keeps it)"
            )
        if rating_max is not None and not (math.isfinite(rating_max) and rating_max > 0):
            raise InvalidInput(f"rating_max {rating_max!r} must be a number above 0")
        arms = [
            TrafficArm(BASELINE, None, 1.0 / n),
            *(TrafficArm(_name(v), v.id, 1.0 / n) for v in versions),
        ]
        return self._set(
            versions[0].model, "bandit", arms, reason=reason, floor=floor, rating_max=rating_max
        )

    def off(self, model: str, *, reason: str) -> TrafficPolicy:
        """The version served answers every request again."""
        self._models.versions(model)  # NotFound for a model that is not registered
        return self._set(model, "off", [TrafficArm(BASELINE, None, 1.0)], reason=reason)

    def _candidates(self, refs: Sequence[str]) -> list[ModelVersion]:
        if not refs:
            raise InvalidInput("name at least one version (MODEL@VERSION)")
        versions = [self._models.get(ref) for ref in refs]
        names = {v.model for v in versions}
        if len(names) > 1:
            raise InvalidInput(f"the versions are of different models: {', '.join(sorted(names))}")
        if len({v.id for v in versions}) < len(versions):
            raise InvalidInput("a version is named twice")
        served = self._served(versions[0].model)
        for v in versions:
            if served is not None and list(v.signature.columns) != list(served.signature.columns):
                raise InvalidInput(
                    f"{v.ref} takes other inputs than {served.ref}, which is served: "
                    f"{list(v.signature.columns)[:6]} vs {list(served.signature.columns)[:6]}"
                )
        return versions

    def _served(self, model: str) -> ModelVersion | None:
        try:
            return self._models.get(f"{model}@production")
        except NotFound:
            return None

    def _set(
        self,
        model: str,
        kind: str,
        arms: list[TrafficArm],
        *,
        reason: str,
        floor: float = 0.0,
        rating_max: float | None = None,
    ) -> TrafficPolicy:
        reason = _reason(reason)
        detail = {"kind": kind, "arms": [a.to_json() for a in arms], "reason": reason}
        with change("traffic.set", f"model:{model}", detail), write(self._engine) as conn:
            model_id = _model_id(conn, model)
            pid = _insert(conn, model_id, kind, arms, floor, rating_max, reason, acting_name())
        return self.get(pid)

    # --- the guard's rollback -----------------------------------------------------------

    def roll_back(self, policy_id: int, arm: str, *, reason: str) -> TrafficPolicy | None:
        """Take ``arm`` out of policy ``policy_id`` (a canary's candidate: the policy
        goes off; a bandit's arm: the bandit goes on without it), if that policy is
        still its model's; None when another change came first."""
        judged = self.get(policy_id)
        kept = [a for a in judged.arms if a.name != arm]
        if judged.kind == "bandit" and len(kept) > 1:
            share = 1.0 / len(kept)
            kind, arms = "bandit", [TrafficArm(a.name, a.version_id, share) for a in kept]
        else:
            kind, arms = "off", [TrafficArm(BASELINE, None, 1.0)]
        detail = {"kind": kind, "rolled_back": arm, "policy": policy_id, "reason": reason}
        marking = change("traffic.rollback", f"model:{judged.model}", detail)
        try:
            with marking, write(self._engine) as conn:
                pid = self._replace(conn, judged, kind, arms, reason)
        except _Stale:
            return None
        return self.get(pid)

    def _replace(
        self,
        conn: Connection,
        judged: TrafficPolicy,
        kind: str,
        arms: list[TrafficArm],
        reason: str,
    ) -> int:
        """Write the policy that follows ``judged``, if it is still its model's; else
        raise :class:`_Stale` (the transaction rolls back: no change, no audit row)."""
        model_id = _model_id(conn, judged.model)
        # The model's row locked: replicas rolling back at once write one change.
        m, p = t.models.c, t.traffic_policies.c
        conn.execute(select(m.id).where(m.id == model_id).with_for_update())
        newest = conn.execute(
            select(p.id).where(p.model_id == model_id).order_by(p.id.desc()).limit(1)
        ).scalar()
        if newest != judged.id:
            raise _Stale
        return _insert(conn, model_id, kind, arms, judged.floor, judged.rating_max, reason, GUARD)

    # --- reading ------------------------------------------------------------------------

    def live(
        self,
        model: str,
        *,
        window: str | None = "24h",
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
    ) -> LiveComparison:
        """Each arm of the model over a window of its request log (the last 24 hours by
        default; or ``since``/``until``): requests, latency, feedback accuracy with its
        95% interval, and each arm's share under the policy now."""
        from trenches.traffic.live import compare_live

        if window is not None and since is not None:
            raise InvalidInput("give either a window or since, not both")
        start = timestamps.parse(window if since is None else since, what="window")
        end = timestamps.parse(until, what="until") or timestamps.now_us()
        return compare_live(self._engine, self.policy(model), start or 0, end)

    def policy(self, model: str) -> TrafficPolicy:
        """The model's policy now (``off``, id 0, if it never had one)."""
        with read(self._engine) as conn:
            model_id = _model_id(conn, model)
            p = t.traffic_policies.c
            row = conn.execute(
                select(t.traffic_policies)
                .where(p.model_id == model_id)
                .order_by(p.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return TrafficPolicy(
                    0, model, "off", (TrafficArm(BASELINE, None, 1.0),), 0.0, None, "", "", None
                )
            return _policy(conn, row, model)

    def get(self, policy_id: int) -> TrafficPolicy:
        with read(self._engine) as conn:
            p = t.traffic_policies.c
            row = conn.execute(select(t.traffic_policies).where(p.id == policy_id)).first()
            if row is None:
                raise NotFound(f"no traffic policy {policy_id}")
            name = conn.execute(select(t.models.c.name).where(t.models.c.id == row.model_id))
            return _policy(conn, row, name.scalar_one())

    def history(self, model: str) -> list[TrafficPolicy]:
        """Every policy the model had, oldest first."""
        with read(self._engine) as conn:
            model_id = _model_id(conn, model)
            p = t.traffic_policies.c
            rows = conn.execute(
                select(t.traffic_policies).where(p.model_id == model_id).order_by(p.id)
            ).all()
            return [_policy(conn, row, model) for row in rows]


def _name(version: ModelVersion) -> str:
    return f"v{version.version}"


def _model_id(conn: Connection, model: str) -> int:
    found = conn.execute(select(t.models.c.id).where(t.models.c.name == model)).scalar()
    if found is None:
        raise NotFound(f"no model {model!r}")
    return int(found)


def _insert(
    conn: Connection,
    model_id: int,
    kind: str,
    arms: Sequence[TrafficArm],
    floor: float,
    rating_max: float | None,
    reason: str,
    set_by: str | None,
) -> int:
    made = conn.execute(
        insert(t.traffic_policies).values(
            model_id=model_id,
            kind=kind,
            arms=orjson.dumps([a.to_json() for a in arms]).decode(),
            floor=floor,
            rating_max=rating_max,
            reason=reason,
            set_by=set_by or "unknown",
            created_at=timestamps.now_us(),
        )
    )
    return int(made.inserted_primary_key[0])  # type: ignore[index]


def _arms(text: str) -> list[TrafficArm]:
    return [TrafficArm(a["name"], a["version_id"], float(a["weight"])) for a in orjson.loads(text)]


def _policy(conn: Connection, row: Any, model: str) -> TrafficPolicy:
    arms = _arms(row.arms)
    ids = [a.version_id for a in arms if a.version_id is not None]
    v = t.model_versions.c
    numbers = dict(conn.execute(select(v.id, v.version).where(v.id.in_(ids))).all()) if ids else {}
    return TrafficPolicy(
        int(row.id),
        model,
        row.kind,
        tuple(
            TrafficArm(
                a.name,
                a.version_id,
                a.weight,
                None if a.version_id is None else f"{model}@{numbers.get(a.version_id)}",
            )
            for a in arms
        ),
        float(row.floor),
        row.rating_max,
        row.reason,
        row.set_by,
        timestamps.from_us(row.created_at),
    )
