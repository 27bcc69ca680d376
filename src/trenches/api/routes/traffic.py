"""Traffic policies: ``/api/v1/models/{model}/traffic`` (see :mod:`trenches.traffic`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.traffic.policies import FLOOR

router = APIRouter(prefix="/models", tags=["traffic"])

Reading = Annotated[Caller, Depends(Allow("traffic.read", path("model")))]
Setting = Annotated[Caller, Depends(Allow("traffic.set", path("model")))]


Version = Annotated[int, Field(ge=1, le=2**62)]


class PolicyChange(BaseModel):
    """The policy the model's servers follow from now, and why (kept with it)."""

    kind: Literal["off", "shadow", "canary", "ab", "bandit"]
    #: The candidates' version numbers: one for shadow, canary and ab; one or more for
    #: a bandit; none for off.
    versions: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(
        default_factory=list, max_length=16
    )
    share: float | None = Field(default=None, gt=0, lt=1)
    floor: float = Field(default=FLOOR, ge=0, le=1)
    rating_max: float | None = Field(default=None, gt=0)
    reason: str = Field(min_length=1, max_length=10_000)


@router.get("/{model}/traffic")
def traffic(model: str, caller: Reading) -> Any:
    """The model's traffic policy now, and every one before it (oldest first)."""
    store = caller.store
    return {
        "policy": store.traffic.policy(model).to_json(),
        "history": [p.to_json() for p in store.traffic.history(model)],
    }


@router.put("/{model}/traffic")
def set_traffic(model: str, body: PolicyChange, caller: Setting) -> Any:
    """Set the model's traffic policy; every server of the model follows it within its
    next look at the store."""
    from trenches.errors import InvalidInput

    refs = [f"{model}@{v}" for v in body.versions]
    wanted = {"off": 0, "bandit": None}.get(body.kind, 1)
    if wanted is not None and len(refs) != wanted:
        raise InvalidInput(f"a {body.kind} policy names {wanted} version(s), not {len(refs)}")
    if body.kind == "canary" and body.share is None:
        raise InvalidInput("a canary needs its share (0 < share < 1)")
    detail = body.model_dump()
    traffic = caller.store.traffic
    with caller.changing("traffic.set", f"model:{model}", detail):
        if body.kind == "off":
            policy = traffic.off(model, reason=body.reason)
        elif body.kind == "shadow":
            policy = traffic.shadow(refs[0], reason=body.reason)
        elif body.kind == "canary":
            policy = traffic.canary(refs[0], share=body.share or 0.0, reason=body.reason)
        elif body.kind == "ab":
            policy = traffic.ab(refs[0], share=body.share or 0.5, reason=body.reason)
        else:
            policy = traffic.bandit(
                refs, reason=body.reason, floor=body.floor, rating_max=body.rating_max
            )
    return policy.to_json()
