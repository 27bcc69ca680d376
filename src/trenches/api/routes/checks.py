"""Gate checks of a version: ``/api/v1/models/{model}/versions/{version}/checks``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from trenches.api.access import Allow, Caller, path
from trenches.errors import NotFound
from trenches.gates.outputs import junit
from trenches.json_form import to_json

router = APIRouter(prefix="/models/{model}/versions/{version}/checks", tags=["checks"])

Reading = Annotated[Caller, Depends(Allow("checks.read", path("model")))]
Running = Annotated[Caller, Depends(Allow("checks.run", path("model")))]

XML = "application/xml"


@router.post("", status_code=201)
def run_check(model: str, version: str, caller: Running) -> Any:
    """Check the version against its model's gates in the server's ``trenches.toml``
    (``trenches check``): whatever the gates need is predicted first, and the check
    is stored. A failed gate is an answer, not an error: see ``passed``."""
    ref = f"{model}@{version}"
    with caller.changing("checks.run", f"model:{ref}"):
        done = caller.store.gates.check(ref)
    return to_json(done)


@router.get("")
def list_checks(model: str, version: str, caller: Reading) -> Any:
    """Every check of the version, oldest first, with each gate's figure and result."""
    return to_json(caller.store.gates.history(f"{model}@{version}"))


@router.get("/latest/junit", response_class=Response, responses={200: {"content": {XML: {}}}})
def latest_junit(model: str, version: str, caller: Reading) -> Response:
    """The newest check as JUnit XML, one test case per gate, for CI."""
    ref = f"{model}@{version}"
    latest = caller.store.gates.latest(ref)
    if latest is None:
        raise NotFound(f"{ref} has no check yet (POST .../checks runs one)")
    return Response(junit(latest), media_type=XML)
