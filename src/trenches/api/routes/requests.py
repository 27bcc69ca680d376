"""The request log of ``trenches serve`` and feedback on it: a model's requests, and
``/api/v1/requests/{request_id}/feedback``. A request is about the model that answered it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.api.pages import Limit, Offset, page
from trenches.json_form import to_json
from trenches.names import INT64_MAX

if TYPE_CHECKING:
    from trenches.store import Store

router = APIRouter(tags=["requests"])


def request_model(request: Request, store: Store) -> str:
    """The model whose version answered the request named by the path parameter
    ``request_id``."""
    served = store.requests.served_by(str(request.path_params["request_id"]))
    return served.rpartition("@")[0]


ReadingLog = Annotated[Caller, Depends(Allow("requests.read", path("model")))]
ReadingOne = Annotated[Caller, Depends(Allow("requests.read", request_model))]
Giving = Annotated[Caller, Depends(Allow("feedback.add", request_model))]
#: A request id, as the model server answers it.
RequestId = Annotated[str, Path(min_length=1, max_length=64)]
#: A time bound: ISO 8601, or a duration back from now (``3d``, ``12h``).
When = Annotated[str | None, Query(max_length=100, description="2026-03-01T12:00Z, 3d, 12h")]


@router.get("/models/{model}/requests")
def list_requests(
    model: str,
    request: Request,
    caller: ReadingLog,
    since: When = None,
    until: When = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """The requests the model's versions answered in ``[since, until)``, newest first,
    a page at a time: inputs, outputs, latency and the feedback on each."""
    log = caller.store.requests
    total = log.count(since=since, until=until, version=model)
    frame = log.list(since=since, until=until, version=model, limit=limit, offset=offset)
    out = page(request, range(total), limit=limit, offset=offset)
    out["items"] = to_json(frame.iloc[::-1].to_dict(orient="records"))
    return out


class NewFeedback(BaseModel):
    """The true answer (or a rating) for one row of a served request."""

    row: int = Field(0, ge=0, le=INT64_MAX, description="Which row of the request, from 0.")
    label: Any = Field(None, description="The true answer, as the dataset's labels are.")
    rating: float | None = None
    comment: str | None = Field(None, max_length=10_000)


@router.post("/requests/{request_id}/feedback", status_code=201)
def add_feedback(request_id: RequestId, body: NewFeedback, caller: Giving) -> Any:
    """Attach a true label or a rating to a row of a logged request; the label is
    checked against the answering version's dataset (``trenches requests feedback``)."""
    detail = {"row": body.row, "label": body.label, "rating": body.rating}
    with caller.changing("feedback.add", f"request:{request_id}", detail):
        made = caller.store.requests.feedback(
            request_id, row=body.row, label=body.label, rating=body.rating, comment=body.comment
        )
    return to_json(made)


@router.get("/requests/{request_id}/feedback")
def list_feedback(request_id: RequestId, caller: ReadingOne) -> Any:
    """The feedback on a request, oldest first."""
    return to_json(caller.store.requests.get_feedback(request_id))
