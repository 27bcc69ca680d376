"""The model registry: ``/api/v1/models``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.json_form import to_json
from trenches.team.roles import promotion_action

router = APIRouter(prefix="/models", tags=["models"])

Reading = Annotated[Caller, Depends(Allow("models.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("models.read", path("model")))]


def _promotion(request: Request) -> str:
    force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
    return promotion_action(str(request.path_params["alias"]), force=force)


Promoting = Annotated[
    Caller,
    Depends(
        Allow(
            _promotion,
            path("model"),
            actions=(
                "models.promote.candidate",
                "models.promote.production",
                "models.promote.force",
            ),
        )
    ),
]


@router.get("")
def list_models(caller: Reading) -> list[str]:
    """The names of the models the caller may read."""
    return [n for n in caller.store.models.names() if caller.may("models.read", n)]


@router.get("/{model}/versions")
def list_versions(model: str, caller: ReadingOne) -> Any:
    """Every version of ``model``, oldest first, with its aliases."""
    return to_json(caller.store.models.versions(model))


@router.get("/{model}/versions/{version}")
def show_version(model: str, version: str, caller: ReadingOne) -> Any:
    """One version: ``3``, or an alias (``production``)."""
    return to_json(caller.store.models.get(f"{model}@{version}"))


def _download(request: Request) -> str:
    """A pickle runs code when loaded: only those who may trust one download it."""
    pickled = request.query_params.get("format") == "pickle"
    return "models.trust" if pickled else "models.read"


Downloading = Annotated[
    Caller, Depends(Allow(_download, path("model"), actions=("models.read", "models.trust")))
]
BYTES = "application/octet-stream"


@router.get(
    "/{model}/versions/{version}/file",
    response_class=Response,
    responses={200: {"content": {BYTES: {}}}},
)
def download(
    model: str,
    version: str,
    caller: Downloading,
    format: Annotated[Literal["skops", "onnx", "pickle"], Query()] = "skops",
) -> Response:
    """The version's stored file, byte for byte: ``skops`` or ``onnx`` (which load
    without running code), or ``pickle`` (admins only: it runs code when loaded)."""
    found = caller.store.models.get(f"{model}@{version}")
    data = caller.store.models.file_bytes(found, format)
    name = f"{found.model}-{found.version}.{format}"
    return Response(
        data,
        media_type=BYTES,
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.get("/{model}/versions/{version}/lineage")
def lineage(model: str, version: str, caller: ReadingOne) -> Any:
    """What made the version: run, code, snapshot, data, environment."""
    return caller.store.lineage(f"{model}@{version}").to_json()


class Promotion(BaseModel):
    """Which version the alias moves to, and why (kept in the alias history)."""

    version: int = Field(ge=1, le=2**62)
    reason: str = Field(min_length=1, max_length=10_000)


@router.post("/{model}/aliases/{alias}")
def promote(
    model: str,
    alias: str,
    body: Promotion,
    caller: Promoting,
    force: Annotated[bool, Query(description="Past a failed check (approvers).")] = False,
) -> Any:
    """Move ``alias`` to a version. ``candidate`` is a maintainer's; any other alias is
    a release, an approver's; ``?force=true`` (approvers) passes a failed gate check
    and is recorded with the reason."""
    ref = f"{model}@{body.version}"
    detail = {"version": body.version, "reason": body.reason, "force": force}
    with caller.changing("models.promote", f"model:{model}@{alias}", detail):
        moved = caller.store.models.promote(ref, alias, reason=body.reason, force=force)
    return to_json(moved)
