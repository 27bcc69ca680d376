"""A traffic policy as a value: its kind and arms (:mod:`.policies` keeps them in the
store, :mod:`.routing` picks an arm, :mod:`.guard` watches the arms)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trenches.errors import NotFound

KINDS = ("off", "shadow", "canary", "ab", "bandit")
#: The arm of the version the server serves.
BASELINE = "baseline"
#: The least share a bandit arm keeps, unless told otherwise.
FLOOR = 0.05
#: Who a guard's rollback is recorded as made by.
GUARD = "trenches-guard"


@dataclass(frozen=True)
class TrafficArm:
    """One arm of a policy: a version (None: the one the server serves) and its weight
    (its share of requests; 0 for a version answering in the shadow)."""

    name: str
    version_id: int | None
    weight: float
    ref: str | None = None  # ``churn@5``; None for the baseline

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version_id": self.version_id, "weight": self.weight}


@dataclass(frozen=True)
class TrafficPolicy:
    """A model's traffic policy as stored: ``id`` 0 for a model that never had one."""

    id: int
    model: str
    kind: str
    arms: tuple[TrafficArm, ...]
    floor: float
    rating_max: float | None
    reason: str
    set_by: str
    created_at: datetime | None

    @property
    def routes(self) -> bool:
        """Whether servers do anything but answer with the version served."""
        return self.kind != "off"

    @property
    def shadows(self) -> tuple[TrafficArm, ...]:
        """The arms that answer in the baseline's shadow (a shadow policy's candidate)."""
        return tuple(a for a in self.arms if a.weight == 0 and a.version_id is not None)

    @property
    def candidates(self) -> tuple[TrafficArm, ...]:
        return tuple(a for a in self.arms if a.version_id is not None)

    def arm(self, name: str) -> TrafficArm:
        for a in self.arms:
            if a.name == name:
                return a
        raise NotFound(f"policy {self.id} of {self.model} has no arm {name!r}")

    def describe(self) -> str:
        """The policy in words: ``canary: v5 10%, baseline 90%``."""
        if self.kind == "off":
            return "off: the version served answers every request"
        if self.kind == "shadow":
            names = ", ".join(a.name for a in self.shadows)
            return f"shadow: {names} answer in the baseline's shadow"
        if self.kind == "bandit":
            names = ", ".join(a.name for a in self.arms)
            return f"bandit over {names} (floor {self.floor:.0%} each)"
        shares = ", ".join(f"{a.name} {a.weight:.0%}" for a in self.arms)
        return f"{self.kind}: {shares}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "kind": self.kind,
            "arms": [{**a.to_json(), "ref": a.ref} for a in self.arms],
            "floor": self.floor,
            "rating_max": self.rating_max,
            "reason": self.reason,
            "set_by": self.set_by,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
            "described": self.describe(),
        }
