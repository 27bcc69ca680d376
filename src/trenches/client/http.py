"""The wire under a remote store: one ``httpx.Client`` to the team server, the token it
shows, and the server's refusals (RFC 9457 problem details) raised again as the
trenches errors they were on the server."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from trenches import errors
from trenches.errors import InvalidInput, NotAuthenticated, StoreError, TrenchesError

#: The token a remote store shows, when none is given.
ENV_TOKEN = "TRENCHES_TOKEN"
#: A file holding it (one line), when ``$TRENCHES_TOKEN`` is not set.
ENV_TOKEN_FILE = "TRENCHES_TOKEN_FILE"
#: The API's prefix on the server.
PREFIX = "/api/v1"
#: Items asked for per page of a list (the server's most).
PAGE = 1_000
#: How long a call may take: evaluations and checks predict on the server.
TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=600.0, pool=60.0)

#: The error raised for a status, when the answer does not name its kind.
_BY_STATUS: dict[int, type[TrenchesError]] = {
    400: InvalidInput,
    401: NotAuthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: InvalidInput,
    422: InvalidInput,
    503: errors.StoreBusy,
}


def is_remote(location: object) -> bool:
    """Whether a store location is a team server (``http://`` or ``https://``)."""
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


def default_token_file() -> Path:
    """``$TRENCHES_TOKEN_FILE``, else ``trenches/token`` in the user's config folder."""
    given = os.environ.get(ENV_TOKEN_FILE)
    if given:
        return Path(given).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "trenches" / "token"


def find_token(url: str) -> str:
    """The token to show ``url``: ``$TRENCHES_TOKEN``, else the token file, which only
    its owner may read (as ssh asks of a key)."""
    token = os.environ.get(ENV_TOKEN, "").strip()
    if token:
        return token
    path = default_token_file()
    if not path.is_file():
        raise NotAuthenticated(
            f"no token for {url}: set ${ENV_TOKEN}, or put one in {path} "
            "(`trenches tokens create` makes one; an admin runs it for you)"
        )
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise NotAuthenticated(
            f"{path} can be read by others (mode {stat.filemode(mode)}); a token file must "
            f"be its owner's alone: chmod 600 {path}"
        )
    token = path.read_text().strip()
    if not token:
        raise NotAuthenticated(f"the token file {path} is empty")
    return token


def _raise_for(response: httpx.Response) -> None:
    """Raise the trenches error a refusal stands for, with the server's message."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or response.reason_phrase or response.status_code)
    kind = getattr(errors, str(body.get("kind")), None)
    if not (isinstance(kind, type) and issubclass(kind, TrenchesError)):
        kind = _BY_STATUS.get(response.status_code, StoreError)
    if issubclass(kind, InvalidInput):
        row = body.get("row")
        raise kind(
            str(body.get("reason") or detail),
            file=body.get("file"),
            row=row if isinstance(row, int) else None,
            field=body.get("field"),
        )
    if kind is StoreError:
        detail = f"the server at {response.url} answered {response.status_code}: {detail}"
    raise kind(detail)


class Server:
    """The team server a remote store talks to: ``get``, ``post`` and ``pages`` of the
    API under ``/api/v1``, each refusal raised as the trenches error it stands for."""

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url + PREFIX,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "trenches-client"},
            timeout=TIMEOUT,
            transport=transport,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise StoreError(f"cannot reach the team server at {self.url}: {e}") from None
        _raise_for(response)
        return response

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.call("GET", path, params=_params(params)).json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        if body is not None:
            kwargs["json"] = body
        return self.call("POST", path, **kwargs).json()

    def pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a paged list, a page at a time."""
        query = {**_params(params), "limit": PAGE}
        offset = 0
        while True:
            # By offset, not by the page's ``next``: behind a proxy its host may not be
            # the one this client reaches.
            page = self.call("GET", path, params={**query, "offset": offset}).json()
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or page.get("next") is None:
                return

    def close(self) -> None:
        self._http.close()


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters without the ones left unset."""
    return {k: v for k, v in (params or {}).items() if v is not None}
