"""Starting uvicorn: the app in this process (one worker), or a factory that each
worker process calls (``--workers N``)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from typing import Any

from trenches.serving.app import Settings, create_app


def run(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    say: Callable[[str], Any] = print,
) -> None:
    import uvicorn

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "none",  # no websockets here: skip loading their protocol
        "timeout_graceful_shutdown": 30,
    }
    if workers == 1:
        app = create_app(settings)
        served = app.state.server.served.model
        say(
            f"serving {served.ref} ({served.format}) as {settings.ref} at http://{host}:{port}"
            f" — V2: /v2/models/{served.version.model}/infer, MLflow: /invocations, /predict"
            + (", token required" if settings.token else "")
        )
        uvicorn.run(app, **options)
        return
    # Each worker builds its own app from the environment; metrics are shared through
    # prometheus_client's multiprocess folder.
    settings = dataclasses.replace(settings, workers=workers)
    os.environ["TRENCHES_SERVE_SETTINGS"] = settings.to_json()
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="trenches-metrics-"))
    say(f"serving {settings.ref} at http://{host}:{port} with {workers} workers")
    uvicorn.run("trenches.serving.app:app_from_env", factory=True, workers=workers, **options)
