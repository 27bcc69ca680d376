"""The problem database: ``/api/v1/problems`` (and a dataset's new problems)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path, problem_dataset
from trenches.json_form import to_json
from trenches.problems import SEVERITIES

router = APIRouter(tags=["problems"])

Reading = Annotated[Caller, Depends(Allow("problems.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("problems.read", problem_dataset))]
Creating = Annotated[Caller, Depends(Allow("problems.create", path("dataset")))]
Adding = Annotated[Caller, Depends(Allow("problems.add", problem_dataset))]
Closing = Annotated[Caller, Depends(Allow("problems.close", problem_dataset))]


@router.get("/problems")
def list_problems(
    caller: Reading,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
) -> Any:
    """The problems the caller may read (of ``dataset``, with ``status``)."""
    found = caller.store.problems.list(dataset=dataset, status=status)
    return to_json([p for p in found if caller.may("problems.read", p.dataset)])


@router.get("/problems/{slug}")
def show_problem(slug: str, caller: ReadingOne) -> Any:
    return to_json(caller.store.problems.get(slug))


class NewProblem(BaseModel):
    """A known failure mode of a dataset's models."""

    slug: str = Field(min_length=1, max_length=100)
    title: str = Field(min_length=1, max_length=1_000)
    description: str | None = Field(None, max_length=100_000)
    severity: Literal[SEVERITIES] = "medium"  # type: ignore[valid-type]
    tolerance: str | float | None = None
    trainable: bool = False


@router.post("/datasets/{dataset}/problems", status_code=201)
def create_problem(dataset: str, body: NewProblem, caller: Creating) -> Any:
    """Record a known failure mode of the models of ``dataset``."""
    with caller.changing("problems.create", f"problem:{body.slug}", {"dataset": dataset}):
        made = caller.store.problems.create(
            body.slug,
            dataset=dataset,
            title=body.title,
            description=body.description,
            severity=body.severity,
            tolerance=body.tolerance,
            trainable=body.trainable,
        )
    return to_json(made)


class NewPatterns(BaseModel):
    """Patterns that show the problem (positive) and controls (negative), by id."""

    positive: list[int] = Field(default_factory=list, max_length=100_000)
    negative: list[int] = Field(default_factory=list, max_length=100_000)


@router.post("/problems/{slug}/patterns")
def add_patterns(slug: str, body: NewPatterns, caller: Adding) -> Any:
    """Add patterns to the problem; every version of its dataset predicts them (the
    backfill). Models that could run code when loaded are skipped, and named."""
    detail = {"positive": body.positive, "negative": body.negative}
    with caller.changing("problems.add", f"problem:{slug}", detail):
        added = caller.store.problems.add(slug, positive=body.positive, negative=body.negative)
    return to_json(added)


class CloseReason(BaseModel):
    """Why the problem is closed (fixed, or not a problem after all)."""

    reason: str = Field(min_length=1, max_length=10_000)


@router.post("/problems/{slug}/close")
def close_problem(slug: str, body: CloseReason, caller: Closing) -> Any:
    with caller.changing("problems.close", f"problem:{slug}", {"reason": body.reason}):
        closed = caller.store.problems.close(slug, reason=body.reason)
    return to_json(closed)


@router.get("/problems/{slug}/scores")
def problem_scores(slug: str, caller: ReadingOne) -> Any:
    """Every version's (and baseline's) score on the problem, oldest first."""
    return to_json(caller.store.problems.scores(slug))
