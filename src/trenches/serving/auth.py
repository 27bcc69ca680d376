"""The bearer token (``trenches serve --token-file``): every route but the probes asks for
it, and a request without it gets a 401 that says nothing about what is served (not
even a 404).

:class:`BearerToken` is a FastAPI security dependency: ``create_app`` puts it on every
router but the probes', so the OpenAPI document declares it; the one exception handler
asks it about the router's own 404 and 405 too (a path the server does not have is no
route, and no dependency runs for it).
"""

from __future__ import annotations

import hmac
from collections.abc import MutableMapping
from typing import Any, ClassVar

from fastapi.requests import HTTPConnection
from fastapi.security import HTTPBearer

from trenches.serving.payloads import PayloadError


class NoToken(PayloadError):
    """A request without the bearer token, or with another one: a 401."""

    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": "Bearer"}

    def __init__(self) -> None:
        super().__init__(401, "a valid bearer token is needed (Authorization: Bearer TOKEN)")


class BearerToken(HTTPBearer):
    """Asks every request for ``Authorization: Bearer TOKEN``, comparing in constant
    time; raises :class:`NoToken` otherwise."""

    def __init__(self, token: str) -> None:
        super().__init__(
            auto_error=False,
            scheme_name="token",
            description="The token trenches serve was given (--token-file).",
        )
        self._token = token.encode()

    def authorised(self, scope: MutableMapping[str, Any]) -> bool:
        """The request's first Authorization header carries the token. Read from the raw
        bytes: HTTPBearer's own parsing strips more than ASCII whitespace."""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    given.strip(), self._token
                )
        return False

    async def __call__(self, request: HTTPConnection) -> None:
        if not self.authorised(request.scope):
            raise NoToken()
