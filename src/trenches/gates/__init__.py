"""Sign-off gates: criteria agreed up front in ``trenches.toml``, one array of gates per
model name, checked against a version with ``trenches check`` (or ``store.gates.check``).

Each check is stored with the digest of the criteria it ran against; promotion refuses
a version whose latest check failed unless forced with a recorded reason.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import insert, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import acting_name
from trenches.db.engine import read, write
from trenches.errors import CheckFailed, InvalidInput
from trenches.gates.check import GateResult, Parts, check_version
from trenches.json_form import from_json, json_shape, to_json
from trenches.settings import given
from trenches.settings.gates import Criteria, GateSpec

if TYPE_CHECKING:
    from trenches.settings import Settings

__all__ = ["Check", "Criteria", "GateResult", "GateSpec", "Gates", "Parts"]


@json_shape(
    omit=("criteria",),
    encode={"created_at": datetime.isoformat},
    order=("id", "version", "passed", "criteria_digest", "source", "checked_by", "created_at"),
)
@dataclass(frozen=True)
class Check:
    """One stored check of a version against its model's gates."""

    id: int
    version: str  # name@V
    passed: bool
    criteria_digest: str
    criteria: list[dict[str, Any]]
    source: str | None
    results: list[GateResult]
    checked_by: str | None
    created_at: datetime

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def skipped(self) -> list[GateResult]:
        return [r for r in self.results if r.status == "skip"]


class Gates:
    """``store.gates``: check a version against its model's gates, and read checks."""

    def __init__(self, parts: Parts, settings: Callable[[], Settings]) -> None:
        self._parts = parts
        self._settings = settings

    def criteria(
        self,
        model: str,
        path: str | os.PathLike[str] | None = None,
        *,
        settings: Settings | None = None,
    ) -> Criteria:
        """The gates of ``model`` in ``settings``, else in the trenches.toml at ``path``,
        else in the store's (``store.settings``)."""
        return (given(settings, path) or self._settings()).criteria(model)

    def check(
        self,
        ref: str,
        *,
        path: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        trusted: bool = False,
        progress: Callable[[str, int], None] | None = None,
    ) -> Check:
        """Check the version ``ref`` against its gates, predicting whatever they need
        that is not stored yet, and store the result. The gates and the error costs are
        those of ``settings``, else of the trenches.toml at ``path``, else the store's."""
        version = self._parts.models.get(ref)
        project = given(settings, path) or self._settings()
        criteria = project.criteria(version.model)
        if version.dataset is None:
            raise InvalidInput(
                f"{version.ref} was registered without a dataset: gates are figures over "
                "its patterns, so it cannot be checked"
            )
        results = check_version(
            self._parts, version, criteria, costs=project.costs, trusted=trusted, progress=progress
        )
        passed = all(r.passed for r in results)
        now = timestamps.now_us()
        user = acting_name()
        with write(self._parts.engine) as conn:
            check_id = conn.execute(
                insert(t.checks).values(
                    version_id=version.id,
                    criteria_digest=criteria.digest,
                    criteria=orjson.dumps(criteria.raw, option=orjson.OPT_SORT_KEYS).decode(),
                    source=criteria.file,
                    passed=passed,
                    results=orjson.dumps(to_json(results)).decode(),
                    checked_by=user,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        return Check(
            id=int(check_id),
            version=version.ref,
            passed=passed,
            criteria_digest=criteria.digest,
            criteria=criteria.raw,
            source=criteria.file,
            results=results,
            checked_by=user,
            created_at=timestamps.from_us(now),
        )

    def history(self, ref: str) -> builtins.list[Check]:
        """Every check of the version ``ref``, oldest first."""
        version = self._parts.models.get(ref)
        c = t.checks.c
        with read(self._parts.engine) as conn:
            rows = conn.execute(
                select(t.checks).where(c.version_id == version.id).order_by(c.id)
            ).all()
        return [
            Check(
                id=int(r.id),
                version=version.ref,
                passed=bool(r.passed),
                criteria_digest=r.criteria_digest,
                criteria=orjson.loads(r.criteria),
                source=r.source,
                results=[from_json(GateResult, d) for d in orjson.loads(r.results)],
                checked_by=r.checked_by,
                created_at=timestamps.from_us(r.created_at),
            )
            for r in rows
        ]

    def latest(self, ref: str) -> Check | None:
        """The newest check of the version ``ref``, or None if it was never checked."""
        found = self.history(ref)
        return found[-1] if found else None

    def guard_promotion(self, ref: str, alias: str, force: bool) -> None:
        """Refuse to move ``alias`` to a version whose latest gate check failed, unless
        forced (the force and its reason are kept in the alias history). The registry
        asks this before every move but to ``candidate``."""
        latest = self.latest(ref)
        if latest is None or latest.passed or force:
            return
        failed = latest.failed
        names = "; ".join(r.gate for r in failed[:3]) + ("; ..." if len(failed) > 3 else "")
        raise CheckFailed(
            f"{latest.version}'s latest check (#{latest.id}, "
            f"{latest.created_at:%Y-%m-%d %H:%M}) failed {len(failed)} of "
            f"{len(latest.results)} gates ({names}); it cannot become {alias}. Run "
            f"`trenches check {latest.version}` again after fixing, or promote with "
            "--force --reason TEXT (recorded in the alias history)"
        )
