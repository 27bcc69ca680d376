"""The model server's application: the routes of :mod:`trenches.serving.routes` on one
FastAPI app, the worker's state (:mod:`trenches.serving.state`) on ``app.state``, the
bearer token as a dependency of every router but the probes', and one exception
handler (:mod:`trenches.serving.errors`).

The hot path parses the body with orjson, predicts the whole request at once (ONNX
Runtime on a float matrix when the version has an ONNX form), answers, and hands the
request to the request log, whose writer stores it later in batches.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Security

from trenches.serving import errors, openapi
from trenches.serving.auth import BearerToken
from trenches.serving.hot import HotPath
from trenches.serving.middleware import JsonErrors
from trenches.serving.routes import docs, feedback, metrics, mlflow, predict, probes, v2
from trenches.serving.settings import Settings
from trenches.serving.state import Server

__all__ = ["Settings", "create_app"]

#: Routers that ask for the token when one is set; the prediction routes first, as
#: the router tries routes in order.
GUARDED = (
    mlflow.router,
    v2.router,
    predict.router,
    feedback.router,
    metrics.router,
    docs.router,
)
#: Routers that answer without the token.
OPEN = (probes.router,)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    server: Server = app.state.server
    server.start()
    try:
        yield
    finally:
        server.stop()


def create_app(settings: Settings) -> HotPath:
    """The application for ``settings``; the model is loaded here, before serving. Its
    prediction routes are answered before FastAPI's (:mod:`trenches.serving.hot`)."""
    server = Server(settings)
    app = FastAPI(
        title="trenches model server",
        description=f"Serves {settings.ref} from a trenches store.",
        lifespan=_lifespan,
        openapi_url=None,  # the document and its pages are routes of ours (routes.docs)
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = server
    app.state.bearer = BearerToken(settings.token) if settings.token else None
    app.openapi = functools.partial(openapi.document, app)  # type: ignore[method-assign]
    guarded: list[Any] = [Security(app.state.bearer)] if app.state.bearer else []
    for router in GUARDED:
        app.include_router(router, dependencies=guarded)
    for router in OPEN:
        app.include_router(router)
    for kind in errors.HANDLED:
        app.add_exception_handler(kind, errors.answer)
    # The last resort stays middleware: an exception no handler knows reaches Starlette's
    # ServerErrorMiddleware, which answers and then raises again, and uvicorn closes the
    # keep-alive connection on it; JsonErrors answers instead (see middleware.py).
    app.add_middleware(JsonErrors)
    return HotPath(app)
