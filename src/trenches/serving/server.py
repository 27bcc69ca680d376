"""Starting uvicorn: the app in this process (one worker), or a factory that each
worker process calls (``--workers N``).

Workers end with their parent: uvicorn's parent stops its workers when it is asked to
stop, but a parent that is SIGKILLed (or crashes) cannot, and its workers would go on
serving, holding the port, with nobody to stop them. Each worker therefore asks Linux
to send it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and, on any
system, watches its parent's pid; either way it stops as on SIGTERM: requests in flight
finish and the request log is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from trenches.json_form import from_json, to_json
from trenches.serving.settings import Settings

if TYPE_CHECKING:
    from trenches.serving.hot import HotPath

#: Seconds between a worker's looks at its parent's pid.
PARENT_POLL = 0.5
_SETTINGS = "TRENCHES_SERVE_SETTINGS"
_PARENT = "TRENCHES_SERVE_PARENT"


def run(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    say: Callable[[str], Any] = print,
) -> None:

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
    with _mover(settings) as settings:
        _serve(settings, host, port, workers, options, say)


def _serve(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    options: dict[str, Any],
    say: Callable[[str], Any],
) -> None:
    import uvicorn

    if workers == 1:
        from trenches.serving.app import create_app

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
    os.environ[_SETTINGS] = orjson.dumps(to_json(settings)).decode()
    os.environ[_PARENT] = str(os.getpid())
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="trenches-metrics-"))
    say(f"serving {settings.ref} at http://{host}:{port} with {workers} workers")
    uvicorn.run("trenches.serving.server:app_from_env", factory=True, workers=workers, **options)


@contextlib.contextmanager
def _mover(settings: Settings) -> Iterator[Settings]:
    """A request log's mover process beside the server (:mod:`.mover`), and the
    settings its workers serve by (they leave the moving to it)."""
    if not settings.log_requests:
        yield settings
        return
    import subprocess

    from trenches.requests import stored
    from trenches.serving import mover

    cmd = mover.command(settings.store or "", os.getpid(), stored.MOVE_ROWS, stored.MOVE_SECONDS)
    process = subprocess.Popen(cmd)
    try:
        yield dataclasses.replace(settings, moves_here=False)
    finally:
        process.terminate()  # it ends between two moves
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def app_from_env() -> HotPath:
    """The app of a uvicorn worker process (``--workers N``): settings from the
    environment, as ``trenches serve`` put them there; the worker ends with its parent."""
    from trenches.serving.app import create_app

    stop_with_parent(int(os.environ[_PARENT]))
    return create_app(from_json(Settings, orjson.loads(os.environ[_SETTINGS])))


def stop_with_parent(parent: int) -> None:
    """SIGTERM this process when process ``parent`` is no longer its parent."""
    if sys.platform == "linux":
        import ctypes

        # PR_SET_PDEATHSIG = 1: from the kernel, at once; without prctl, the watch does it.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)

    def watch() -> None:
        # Also covers a parent that died before prctl was called, and other systems.
        while os.getppid() == parent:
            threading.Event().wait(PARENT_POLL)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="trenches-parent-watch", daemon=True).start()
