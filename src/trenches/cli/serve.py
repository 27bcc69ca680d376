"""``trenches serve name@production``: a model server over HTTP."""

from __future__ import annotations

from pathlib import Path

import typer

from trenches.cli._output import TRUSTED_HELP, err_console, state

#: Bounds of the options: beyond them a typo, not a setting (a million workers, a poll
#: longer than a day, a body limit past 1 TiB).
MAX_WORKERS = 256
MAX_POLL = 86_400.0
MAX_BODY = 2**40


def serve(
    ref: str = typer.Argument(
        ..., help="The version to serve: name@production follows the alias, name@3 is fixed."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=MAX_WORKERS, help="Worker processes (each loads the model)."
    ),
    token_file: Path = typer.Option(
        None,
        "--token-file",
        help="A file holding the bearer token every request must carry "
        "(Authorization: Bearer TOKEN); only the probes /ping, /health, /v2/health/live "
        "and /v2/health/ready answer without it.",
    ),
    max_body: int = typer.Option(
        16 * 1024 * 1024,
        "--max-body",
        min=1,
        max=MAX_BODY,
        help="Largest request body, in bytes (413 above).",
    ),
    poll: float = typer.Option(
        2.0,
        "--poll",
        min=0.1,
        max=MAX_POLL,
        help="Seconds between looks at the alias for a new version.",
    ),
    no_log: bool = typer.Option(
        False, "--no-log", help="Do not keep the request log (feedback is then refused too)."
    ),
    no_write_ahead: bool = typer.Option(
        False,
        "--no-write-ahead",
        help="Log requests without writing each ahead to a file first: a little faster, "
        "but a killed server (kill -9) loses the requests its log still held in memory.",
    ),
    trusted: bool = typer.Option(False, "--trusted", help=TRUSTED_HELP),
) -> None:
    """Serve a registered version over HTTP: the Open Inference Protocol (KServe V2:
    `/v2/models/NAME/infer`), the MLflow scoring protocol (`/invocations`, `/ping`) and
    `/predict` (a JSON list of records). Every answer carries a request id and the
    version that produced it; every request is logged in the store off the request
    path (`trenches requests list`); `POST /feedback` attaches a true label or a
    rating; `GET /metrics` is Prometheus. When the alias moves, the server switches to
    the new version within `--poll` seconds, without failing a request in flight.
    Ctrl-C or SIGTERM stops it gracefully, storing every logged request first.

    Example: `trenches serve cancer-clf@production --port 8080 --token-file token.txt`
    """
    from trenches.errors import InvalidInput
    from trenches.serving.server import run
    from trenches.serving.settings import Settings

    token = None
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(f"cannot read the token file: {e}", file=str(token_file)) from None
        if not token:
            raise InvalidInput("the token file is empty", file=str(token_file))
    settings = Settings(
        ref=ref,
        store=state.store,
        token=token,
        max_body=max_body,
        poll=poll,
        trusted=trusted,
        log_requests=not no_log,
        write_ahead=not no_write_ahead,
    )
    run(settings, host=host, port=port, workers=workers, say=err_console.print)
