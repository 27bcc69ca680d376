"""Starting the team server with uvicorn: the app in this process (one worker), or a
factory each worker process calls (``--workers N``); workers end with their parent, as
the model server's do."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from trenches.api.app import Settings
from trenches.json_form import from_json, to_json
from trenches.serving.server import stop_with_parent
from trenches.web.app import create_app

if TYPE_CHECKING:
    from fastapi import FastAPI

_SETTINGS = "TRENCHES_SERVER_SETTINGS"
_PARENT = "TRENCHES_SERVER_PARENT"


def run(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    tls: tuple[str, str] | None = None,
    say: Callable[[str], Any] = print,
) -> None:
    """Serve until stopped (Ctrl-C or SIGTERM). ``tls``: a certificate and its key file."""
    import uvicorn

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        "proxy_headers": True,
    }
    if tls is not None:
        options["ssl_certfile"], options["ssl_keyfile"] = tls
    scheme = "https" if tls is not None else "http"
    say(
        f"trenches team server at {scheme}://{host}:{port}/ ({workers} worker(s)): "
        "the web UI, and the API under /api/v1"
    )
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    os.environ[_SETTINGS] = orjson.dumps(to_json(settings)).decode()
    os.environ[_PARENT] = str(os.getpid())
    # Each worker counts in prometheus_client's multiprocess folder; /metrics adds them up.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="trenches-metrics-"))
    uvicorn.run("trenches.web.server:app_from_env", factory=True, workers=workers, **options)


def app_from_env() -> FastAPI:
    """The app of one worker process, from the settings ``run`` put in the environment."""
    stop_with_parent(int(os.environ[_PARENT]))
    return create_app(from_json(Settings, orjson.loads(os.environ[_SETTINGS])))
