"""The OpenAPI document and its pages, ``/openapi.json``, ``/docs`` (Swagger UI, with
its OAuth2 redirect page) and ``/redoc``: FastAPI's own, made here rather than by
FastAPI so that they are routes like the others, behind the token when one is set."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse

OPENAPI = "/openapi.json"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
#: The methods the pages answer, as FastAPI's own do for a browser (GET, and HEAD).
METHODS = ["GET", "HEAD"]

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    """The path the app is mounted under, if any (``--root-path`` of uvicorn)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.api_route(OPENAPI, methods=METHODS)
async def openapi(request: Request) -> JSONResponse:
    root = _root(request)
    schema = request.app.openapi()
    if root and root not in {s.get("url") for s in schema.get("servers", [])}:
        schema = {**schema, "servers": [{"url": root}, *schema.get("servers", [])]}
    return JSONResponse(schema)


@router.api_route("/docs", methods=METHODS)
async def swagger_ui_html(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=root + OPENAPI,
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=root + OAUTH2_REDIRECT,
    )


@router.api_route(OAUTH2_REDIRECT, methods=METHODS)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.api_route("/redoc", methods=METHODS)
async def redoc_html(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=_root(request) + OPENAPI, title=f"{request.app.title} - ReDoc"
    )
