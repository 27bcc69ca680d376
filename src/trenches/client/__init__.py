"""The library as a client of the team server.

``trenches.open("https://trenches.example")`` (or ``--store URL``, or
``$TRENCHES_DB_URL`` set to the server's URL) opens a :class:`RemoteStore` through
:func:`connect`: the store's day-to-day API over ``/api/v1``, with the token of
``$TRENCHES_TOKEN`` or of the token file (``$TRENCHES_TOKEN_FILE``, else
``~/.config/trenches/token``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trenches.client.store import RemoteStore


def connect(url: str, *, token: str | None = None, settings: object = None) -> RemoteStore:
    """The store on the team server at ``url``; its token is checked now, so a wrong
    one fails here and not at the first call."""
    from trenches.client.http import Server, find_token
    from trenches.client.store import RemoteStore, check_settings

    check_settings(settings)
    server = Server(url, token or find_token(url))
    store = RemoteStore(server)
    try:
        store.me()
    except BaseException:
        store.close()
        raise
    return store


def __getattr__(name: str) -> object:
    if name == "RemoteStore":
        from trenches.client.store import RemoteStore

        return RemoteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RemoteStore", "connect"]
