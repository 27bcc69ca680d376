"""A version's predictions, measured and compared: ``/api/v1/models/{model}/...``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.api.pages import Limit, Offset, page
from trenches.json_form import to_json

router = APIRouter(prefix="/models/{model}", tags=["predictions"])

Reading = Annotated[Caller, Depends(Allow("predictions.read", path("model")))]
Predicting = Annotated[Caller, Depends(Allow("predictions.create", path("model")))]

#: A named set of patterns: a split, ``all``, or ``problem:SLUG``.
PatternSetName = Annotated[
    str, Field(min_length=1, max_length=300, description="validation, test, problem:SLUG, ...")
]
#: A version of the model in the path: its number, or an alias.
Version = Annotated[str, Query(min_length=1, max_length=100, description="3, or an alias")]


@router.get("/versions/{version}/predictions")
def predictions(
    model: str,
    version: str,
    request: Request,
    caller: Reading,
    patterns: Annotated[
        str | None,
        Query(
            max_length=300,
            description="validation, test, train, all or problem:SLUG; default: every "
            "pattern the version predicted",
        ),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """The version's predictions beside their patterns, by pattern id, a page at a time
    (``trenches predictions show``): inputs, label, split, source, prediction, class
    scores, right, loss. Patterns of the set it has not predicted have ``predicted``
    false."""
    frame = caller.store.predictions(f"{model}@{version}", patterns)
    chosen = frame.iloc[offset : offset + limit].reset_index()
    out = page(request, range(len(frame)), limit=limit, offset=offset)
    out["items"] = to_json(chosen.to_dict(orient="records"))
    out["predictor"] = frame.attrs["predictor"]
    out["pattern_set"] = frame.attrs["pattern_set"]
    return out


class Evaluation(BaseModel):
    """The patterns to measure the version on."""

    patterns: PatternSetName = "validation"


@router.post("/versions/{version}/evaluate")
def evaluate(model: str, version: str, body: Evaluation, caller: Predicting) -> Any:
    """Predict what the version has not yet predicted of the set and of every problem,
    then measure it over the set (``trenches evaluate``). A model file that runs code
    when loaded is refused."""
    ref = f"{model}@{version}"
    with caller.changing("predictions.create", f"model:{ref}", {"patterns": body.patterns}):
        done = caller.store.evaluate(ref, body.patterns)
    return to_json(done)


@router.get("/compare")
def compare(
    model: str,
    caller: Reading,
    a: Version,
    b: Version,
    problem: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    """Version ``a`` against version ``b`` on the patterns both predicted (or on a
    problem's): metric deltas, the patterns each fixed and broke, the paired test
    (``trenches compare``)."""
    return to_json(caller.store.compare(f"{model}@{a}", f"{model}@{b}", problem=problem))
