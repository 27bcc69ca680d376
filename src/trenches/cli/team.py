"""``trenches users / tokens / grants / audit``: the team around a shared store.

These commands work on the store directly, as its administrator: whoever can open the
database can run them. Their changes are recorded in the audit log as the local OS user
(``local:<name>``).
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from trenches import timestamps
from trenches.cli._output import console, err_console, int64, open_store, print_json
from trenches.errors import InvalidInput
from trenches.json_form import to_json

_DURATION = re.compile(r"^\s*(\d+)\s*(m|h|d|w)\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

_ROLES_HELP = (
    "Roles, each including the ones before: viewer (read), labeller (relabel, feedback, "
    "add patterns), tester (problems), maintainer (datasets, runs, models, evaluation, "
    "checks, promotion to candidate), approver (promotion to production, forced "
    "promotion), admin (accounts, the audit log, trusting model files)."
)

users_app = typer.Typer(
    help="Accounts of the people and robots (CI) who share this store. Passwords are "
    "stored as argon2 hashes, never as given.",
    no_args_is_help=True,
)
tokens_app = typer.Typer(
    help="API tokens: a secret shown once, stored only as its SHA-256, with an expiry.",
    no_args_is_help=True,
)
grants_app = typer.Typer(
    help="Who holds which role on which datasets and models. " + _ROLES_HELP,
    no_args_is_help=True,
)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _password(password_file: Path | None) -> str:
    """The first line of ``password_file`` (``-``: standard input), or what the user
    types at the terminal, twice, unseen."""
    if password_file is not None:
        where = "standard input" if str(password_file) == "-" else str(password_file)
        try:
            if str(password_file) == "-":
                text = sys.stdin.readline()
            else:
                text = password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(f"cannot read the password from {where}: {e}") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
    if not _at_a_terminal():
        raise InvalidInput(
            "there is no terminal to ask for the password on: give --password-file FILE "
            "(- for standard input), or --no-password"
        )
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


def _at_a_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):  # closed, or replaced by something without a terminal
        return False


def parse_lifetime(text: str) -> timedelta | None:
    """``90d``, ``12h``, ``30m``, ``2w``, or ``never``."""
    if text.strip().lower() == "never":
        return None
    m = _DURATION.match(text)
    if m is None:
        raise InvalidInput(
            f"--expires-in {text!r} is not a lifetime; give 30m, 12h, 90d, 2w or never"
        )
    try:
        return timedelta(**{_UNITS[m[2]]: int(m[1])})
    except OverflowError:
        raise InvalidInput(f"--expires-in {text!r} is too long; give a shorter time") from None


_PASSWORD_FILE_HELP = (
    "Read the password from the first line of this file (- for standard input) instead "
    "of a hidden prompt. At least 12 characters."
)


# --- users ---------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="The user name: letters, digits, '.', '_', '-', '@'."),
    admin: bool = typer.Option(False, "--admin", help="An administrator: admin everywhere."),
    password_file: Path = typer.Option(None, "--password-file", help=_PASSWORD_FILE_HELP),
    no_password: bool = typer.Option(
        False, "--no-password", help="No password: the account signs in with tokens only."
    ),
) -> None:
    """Make an account; asks for its password unless --password-file or --no-password.

    Example: `trenches users add ada`, `trenches users add ci --no-password`
    """
    password = None if no_password else _password(password_file)
    with open_store() as store:
        user = store.accounts.create(name, password=password, admin=admin)
    kind = "administrator" if user.admin else "user"
    console.print(f"{kind} [bold]{user.name}[/] added (id {user.id})")


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the accounts, disabled ones too.

    Example: `trenches users list`
    """
    with open_store() as store:
        users = store.accounts.list()
    if as_json:
        print_json(to_json(users))
        return
    if not users:
        console.print("no users yet (trenches users add NAME)")
        return
    table = Table("id", "name", "admin", "password", "created", "disabled")
    for u in users:
        table.add_row(
            str(u.id),
            u.name,
            "yes" if u.admin else "",
            "yes" if u.has_password else "",
            _when(u.created_at),
            _when(u.disabled_at),
        )
    console.print(table)


@users_app.command("disable")
def users_disable(name: str = typer.Argument(..., help="The user.")) -> None:
    """Stop an account from signing in, by password or any of its tokens; it stays, so
    that the audit log keeps naming it.

    Example: `trenches users disable ada`
    """
    with open_store() as store:
        store.accounts.disable(name)
    console.print(f"user [bold]{name}[/] disabled")


@users_app.command("enable")
def users_enable(name: str = typer.Argument(..., help="The user.")) -> None:
    """Let a disabled account sign in again.

    Example: `trenches users enable ada`
    """
    with open_store() as store:
        store.accounts.enable(name)
    console.print(f"user [bold]{name}[/] enabled")


@users_app.command("link")
def users_link(
    name: str = typer.Argument(..., help="The user."),
    issuer: str = typer.Option(..., "--issuer", help="The identity provider's issuer URL."),
    subject: str = typer.Option(..., "--subject", help="The user's subject (sub) there."),
) -> None:
    """Let an account sign in through an identity provider (docs/team.md, "Sign in
    with OpenID Connect"): a first sign-in never takes over an account by its name.

    Example: `trenches users link ada --issuer https://id.example.com --subject 4f2a`
    """
    with open_store() as store:
        store.accounts.link(name, issuer=issuer, subject=subject)
    console.print(f"user [bold]{name}[/] signs in as {subject} of {issuer}")


@users_app.command("password")
def users_password(
    name: str = typer.Argument(..., help="The user."),
    password_file: Path = typer.Option(None, "--password-file", help=_PASSWORD_FILE_HELP),
) -> None:
    """Set an account's password (asked for twice, unseen, unless --password-file).

    Example: `trenches users password ada`
    """
    password = _password(password_file)
    with open_store() as store:
        store.accounts.set_password(name, password)
    console.print(f"password of [bold]{name}[/] set")


# --- tokens --------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    user: str = typer.Argument(..., help="Whose token it is."),
    name: str = typer.Argument(..., help="What it is for, e.g. ci."),
    expires_in: str = typer.Option(
        "90d", "--expires-in", help="Lifetime: 30m, 12h, 90d, 2w, or never."
    ),
    as_json: bool = typer.Option(False, "--json", help="The token and its secret as JSON."),
) -> None:
    """Make an API token and print its secret, this once: it is stored only as a hash.

    Example: `trenches tokens create ci github-actions --expires-in 30d`
    """
    lifetime = parse_lifetime(expires_in)
    with open_store() as store:
        made = store.tokens.create(user, name, expires_in=lifetime)
    if as_json:
        print_json(to_json(made))
    else:
        typer.echo(made.secret)
    expiry = (
        "never expires"
        if made.token.expires_at is None
        else "expires " + (timestamps.iso(timestamps.to_us(made.token.expires_at)) or "")
    )
    err_console.print(
        f"[yellow]token {made.token.id} for {escape(made.token.user)} ({expiry}): this is the "
        "only time its secret is shown; keep it now (trenches tokens revoke "
        f"{made.token.id} if it leaks)[/]"
    )


@tokens_app.command("list")
def tokens_list(
    user: str = typer.Option(None, "--user", help="Only this user's tokens."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List tokens (never their secrets): active, expired and revoked.

    Example: `trenches tokens list --user ci`
    """
    with open_store() as store:
        tokens = store.tokens.list(user)
    if as_json:
        print_json(to_json(tokens))
        return
    if not tokens:
        console.print("no tokens" + (f" of {user}" if user else ""))
        return
    table = Table("id", "user", "name", "starts with", "state", "created", "expires", "last used")
    for tk in tokens:
        table.add_row(
            str(tk.id),
            tk.user,
            escape(tk.name),
            tk.prefix + "...",
            tk.state(),
            _when(tk.created_at),
            _when(tk.expires_at) if tk.expires_at else "never",
            _when(tk.last_used_at),
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: int = typer.Argument(..., help="The token's id.", callback=int64),
) -> None:
    """Revoke a token: it no longer lets anyone in.

    Example: `trenches tokens revoke 3`
    """
    with open_store() as store:
        token = store.tokens.revoke(token_id)
    console.print(f"token {token.id} ({escape(token.name)}) of {token.user} revoked")


# --- grants --------------------------------------------------------------------------


@grants_app.command("add")
def grants_add(
    user: str = typer.Argument(..., help="The user."),
    role: str = typer.Argument(
        ..., help="viewer, labeller, tester, maintainer, approver or admin."
    ),
    namespace: str = typer.Argument(
        "*", help="A dataset or model name, a pattern of them (fraud-*), or * for all."
    ),
) -> None:
    """Give a user a role on a namespace, replacing the one they held there.

    Example: `trenches grants add ada tester 'tumours*'`
    """
    with open_store() as store:
        grant = store.grants.grant(user, role, namespace)
    console.print(f"{grant.user} is {grant.role} on {escape(grant.namespace)}")


@grants_app.command("list")
def grants_list(
    user: str = typer.Option(None, "--user", help="Only this user's grants."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List who holds which role where.

    Example: `trenches grants list`
    """
    with open_store() as store:
        grants = store.grants.list(user)
    if as_json:
        print_json(to_json(grants))
        return
    if not grants:
        console.print("no grants" + (f" of {user}" if user else ""))
        return
    table = Table("user", "role", "namespace", "granted")
    for g in grants:
        table.add_row(g.user, g.role, escape(g.namespace), _when(g.created_at))
    console.print(table)


@grants_app.command("remove")
def grants_remove(
    user: str = typer.Argument(..., help="The user."),
    namespace: str = typer.Argument(..., help="The namespace, exactly as granted."),
) -> None:
    """Take back a user's grant on a namespace.

    Example: `trenches grants remove ada 'tumours*'`
    """
    with open_store() as store:
        grant = store.grants.revoke(user, namespace)
    console.print(f"{grant.user} is no longer {grant.role} on {escape(grant.namespace)}")


# --- the audit log -------------------------------------------------------------------


def audit(
    user: str = typer.Option(
        None, "--user", help="Only this actor's changes: a user, or local:<os user>."
    ),
    action: str = typer.Option(
        None, "--action", help="Only this action, or family: models covers models.promote."
    ),
    since: str = typer.Option(
        None, "--since", help="Only changes since: 2026-03-01, or 3d / 12h ago."
    ),
    limit: int = typer.Option(100, "--limit", min=1, callback=int64, help="At most this many."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Who changed what, when and from where: the audit log, newest first.

    Every change to accounts, tokens and grants is in it, and promotions, problem
    additions and relabels; nothing in trenches can edit it.

    Example: `trenches audit --action models.promote --since 7d`
    """
    with open_store() as store:
        entries = store.audit.list(user=user, action=action, since=since, limit=limit)
    if as_json:
        print_json(to_json(entries))
        return
    if not entries:
        console.print("no changes recorded" + (" that match" if user or action or since else ""))
        return
    table = Table("at", "who", "action", "target", "detail", "from")
    for e in entries:
        detail = ", ".join(f"{k}={v}" for k, v in e.detail.items())
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            escape(e.actor),
            e.action,
            escape(e.target),
            escape(detail),
            escape(e.remote or ""),
        )
    console.print(table)
