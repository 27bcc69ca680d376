"""``trenches server``: the store shared by a team over HTTP."""

from __future__ import annotations

from pathlib import Path

import typer

from trenches.cli._output import err_console, state

#: Bounds of the options: beyond them a typo, not a setting.
MAX_WORKERS = 256
MAX_BODY = 2**40


def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=MAX_WORKERS, help="Worker processes serving together."
    ),
    certfile: Path = typer.Option(
        None, "--ssl-certfile", help="TLS certificate (PEM); with --ssl-keyfile, serve HTTPS."
    ),
    keyfile: Path = typer.Option(None, "--ssl-keyfile", help="The certificate's private key."),
    max_body: int = typer.Option(
        64 * 1024 * 1024, "--max-body", min=1, max=MAX_BODY, help="Largest request body, bytes."
    ),
) -> None:
    """Serve the store to a team over HTTP: the API under `/api/v1` (its OpenAPI
    document at `/api/v1/openapi.json`) and `/health`. Every call needs a token
    (`Authorization: Bearer TOKEN`, made with `trenches tokens create`), and the
    caller's roles (`trenches grants`) decide what it may do; every change is recorded
    in the audit log (`trenches audit`). Serve HTTPS with `--ssl-certfile` and
    `--ssl-keyfile`, or behind a proxy that does (docs/team.md).

    Example: `trenches --store postgresql://trenches@db/trenches server --host 0.0.0.0
    --workers 4`
    """
    from trenches.api.app import Settings
    from trenches.api.server import run
    from trenches.errors import InvalidInput

    if (certfile is None) != (keyfile is None):
        raise InvalidInput("give both --ssl-certfile and --ssl-keyfile, or neither")
    tls = None if certfile is None or keyfile is None else (str(certfile), str(keyfile))
    settings = Settings(store=state.store, max_body=max_body)
    run(settings, port=port, host=host, workers=workers, tls=tls, say=err_console.print)
