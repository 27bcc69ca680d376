"""The Open Inference Protocol (KServe V2): server and model metadata, readiness, and
inference on ``/v2/models/{name}/infer`` (its health probes are in :mod:`.probes`).
Another model's name, or another version, is a 404 naming the one served."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from trenches.serving import binary, protocols
from trenches.serving.model import Served
from trenches.serving.payloads import PayloadError, shown
from trenches.serving.routes.prediction import JSON, predicted
from trenches.serving.state import Server, ServerDep

router = APIRouter(tags=["V2"])


async def _named(name: str, server: ServerDep) -> Served:
    """The version served, if the path names its model."""
    served = server.served
    if name != served.name:
        raise PayloadError(404, f"no model {shown(name)} here; this server serves {served.name!r}")
    return served


async def _named_version(name: str, version: str, server: ServerDep) -> Served:
    """The version served, if the path names its model and its version number."""
    served = await _named(name, server)
    if version != served.version:
        raise PayloadError(404, f"version {version} is not served; {served.model.ref} is")
    return served


#: The version served, as a route's parameter, from the path's ``{name}``.
Named = Annotated[Served, Depends(_named)]
#: The version served, from the path's ``{name}`` and ``{version}``.
NamedVersion = Annotated[Served, Depends(_named_version)]


@router.get("/v2")
async def server_metadata() -> Response:
    import trenches

    return Response(
        orjson.dumps(
            {
                "name": "trenches",
                "version": trenches.__version__,
                "extensions": ["binary_tensor_data"],
            }
        ),
        media_type=JSON,
    )


@router.get("/v2/models/{name}")
async def model_metadata(served: Named) -> Response:
    return Response(orjson.dumps(protocols.v2_metadata(served)), media_type=JSON)


@router.get("/v2/models/{name}/ready")
async def model_ready(served: Named) -> Response:
    return Response(orjson.dumps({"name": served.name, "ready": True}), media_type=JSON)


@router.post("/v2/models/{name}/infer", response_class=Response)
async def infer(request: Request, server: ServerDep, served: Named) -> Response:
    """Open Inference Protocol: one 1-D tensor per input column (or one 2-D tensor), in
    JSON or with the binary data extension (:mod:`trenches.serving.binary`)."""
    return await _infer(request, server, served)


@router.post("/v2/models/{name}/versions/{version}/infer", response_class=Response)
async def infer_version(request: Request, server: ServerDep, served: NamedVersion) -> Response:
    """The version named answers, whatever the traffic policy."""
    return await _infer(request, server, served, routed=False)


async def _infer(
    request: Request, server: Server, served: Served, *, routed: bool = True
) -> Response:
    wire = binary.Wire(served)
    header = request.headers.get(binary.HEADER)
    return await predicted(
        request,
        server,
        served,
        "v2",
        protocols.v2,
        wire.render,
        lambda raw: wire.load(raw, header),
        routed=routed,
    )
