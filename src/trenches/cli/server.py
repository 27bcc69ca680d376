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
    oidc_issuer: str = typer.Option(
        None, "--oidc-issuer", help="Sign in through this OpenID Connect provider (its issuer)."
    ),
    oidc_client_id: str = typer.Option(
        None, "--oidc-client-id", help="The client id the provider gave the server."
    ),
    oidc_client_secret_file: Path = typer.Option(
        None,
        "--oidc-client-secret-file",
        help="File holding the client secret (else $TRENCHES_OIDC_CLIENT_SECRET).",
    ),
    oidc_redirect_url: str = typer.Option(
        None,
        "--oidc-redirect-url",
        help="The server's callback, as registered: https://HOST/api/v1/oidc/callback.",
    ),
) -> None:
    """Serve the store to a team over HTTP: the web UI at `/` (sign in at `/sign-in`
    with an account of `trenches users add`; docs/ui.md), the API under `/api/v1` (its
    OpenAPI document at `/api/v1/openapi.json`) and `/health`. Every API call needs a token
    (`Authorization: Bearer TOKEN`, made with `trenches tokens create`), and the
    caller's roles (`trenches grants`) decide what it may do; every change is recorded
    in the audit log (`trenches audit`). With `--oidc-issuer`, browsers sign in through
    the team's identity provider at `/api/v1/oidc/login`. Serve HTTPS with `--ssl-certfile` and
    `--ssl-keyfile`, or behind a proxy that does (docs/team.md).

    Example: `trenches --store postgresql://trenches@db/trenches server --host 0.0.0.0
    --workers 4 --oidc-issuer https://id.example.com --oidc-client-id trenches
    --oidc-client-secret-file /run/secrets/oidc --oidc-redirect-url
    https://trenches.example.com/api/v1/oidc/callback`
    """
    from trenches.api.app import Settings
    from trenches.api.oidc import OidcSettings
    from trenches.errors import InvalidInput
    from trenches.web.server import run

    if (certfile is None) != (keyfile is None):
        raise InvalidInput("give both --ssl-certfile and --ssl-keyfile, or neither")
    tls = None if certfile is None or keyfile is None else (str(certfile), str(keyfile))
    oidc = None
    given = [oidc_issuer, oidc_client_id, oidc_redirect_url]
    if any(given) or oidc_client_secret_file is not None:
        if not all(given):
            raise InvalidInput(
                "sign-in with OpenID Connect needs --oidc-issuer, --oidc-client-id and "
                "--oidc-redirect-url (and the secret in --oidc-client-secret-file or "
                "$TRENCHES_OIDC_CLIENT_SECRET)"
            )
        oidc = OidcSettings(
            issuer=oidc_issuer,
            client_id=oidc_client_id,
            redirect_url=oidc_redirect_url,
            client_secret_file=None
            if oidc_client_secret_file is None
            else str(oidc_client_secret_file),
        )
    settings = Settings(store=state.store, max_body=max_body, oidc=oidc)
    run(settings, port=port, host=host, workers=workers, tls=tls, say=err_console.print)
