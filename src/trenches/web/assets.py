"""The scripts and styles the pages use, served by trenches itself (no CDN): htmx
(vendored under ``static/``, with its licence), Plotly's bundle (from the ``plotly``
package), and the UI's own script and style sheet.

Each is served at ``/static/{digest}/{name}``: the digest changes with the files, so a
browser may keep them for a year and still never runs an old one.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import Response

from trenches.errors import NotFound

router = APIRouter(include_in_schema=False)

#: Each asset's media type.
MEDIA = {
    "htmx.min.js": "text/javascript",
    "plotly.min.js": "text/javascript",
    "trenches.js": "text/javascript",
    "trenches.css": "text/css",
}
_CACHED = "public, max-age=31536000, immutable"


def _file(name: str) -> Path:
    if name == "plotly.min.js":
        import plotly

        return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return Path(str(resources.files("trenches.web") / "static" / name))


@cache
def _content(name: str) -> bytes:
    return _file(name).read_bytes()


@cache
def digest() -> str:
    """A short digest of every asset: the path part that changes when any does."""
    h = hashlib.sha256()
    for name in sorted(MEDIA):
        h.update(_content(name))
    return h.hexdigest()[:12]


def url(name: str) -> str:
    """Where a page finds the asset ``name``."""
    if name not in MEDIA:
        raise KeyError(name)
    return f"/static/{digest()}/{name}"


@router.get("/static/{version}/{name}")
def asset(
    version: Annotated[str, PathParam(max_length=64)],
    name: Annotated[str, PathParam(max_length=64)],
) -> Response:
    """One asset; an old digest still gets today's file, without the year of caching."""
    if name not in MEDIA:
        raise NotFound(f"no asset {name!r}")
    headers = {"cache-control": _CACHED if version == digest() else "no-cache"}
    return Response(_content(name), media_type=MEDIA[name], headers=headers)
