"""Explanations of a version's predictions: ``.../versions/{version}/explanations``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.json_form import to_json
from trenches.names import INT64_MAX

router = APIRouter(prefix="/models/{model}/versions/{version}/explanations", tags=["explanations"])

Reading = Annotated[Caller, Depends(Allow("predictions.read", path("model")))]
Explaining = Annotated[Caller, Depends(Allow("predictions.create", path("model")))]


class Explain(BaseModel):
    """The patterns to explain, and LIME's settings (an explanation stored with the
    same settings is returned as stored)."""

    patterns: list[Annotated[int, Field(ge=1, le=INT64_MAX)]] = Field(min_length=1, max_length=100)
    num_samples: int = Field(5_000, ge=10, le=50_000)
    num_features: int = Field(10, ge=1, le=100)
    seed: int = Field(0, ge=0, le=2**32 - 1)


@router.post("")
def explain(model: str, version: str, body: Explain, caller: Explaining) -> Any:
    """Explain the version's prediction on each pattern, in order, by LIME
    (``trenches explain``); each explanation is stored."""
    ref = f"{model}@{version}"
    with caller.changing("predictions.create", f"model:{ref}", body.model_dump()):
        made = caller.store.explanations.explain(
            ref,
            body.patterns,
            seed=body.seed,
            num_samples=body.num_samples,
            num_features=body.num_features,
        )
    return to_json(made)


@router.get("")
def list_explanations(model: str, version: str, caller: Reading) -> Any:
    """The version's stored explanations, by pattern and time of storing."""
    return to_json(caller.store.explanations.list(f"{model}@{version}"))
