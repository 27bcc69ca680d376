"""The ``trenches`` command: ``trenches NOUN VERB``, plus top-level jobs.

Exit statuses: 0 ok, 1 a check failed, 2 bad usage or input, 70 a bug in trenches (an
exception that is not a trenches error: one line saying so, the traceback with --debug).

``trenches serve`` is assembled on its own, without the other commands' modules: a
server has to answer within a second and a half of starting.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from trenches._lazy import lazy_names

if TYPE_CHECKING:
    import typer

#: The exit status of an unexpected exception: a bug, not the user's doing (sysexits.h's
#: EX_SOFTWARE).
BUG_EXIT_STATUS = 70

#: Root options that take a value, to find the command word after them.
_VALUED = ("--store",)


def _command(argv: list[str]) -> str | None:
    """The first word of ``argv`` that is not a root option (or its value)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _VALUED:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg
    return None


def _serve_app() -> typer.Typer:
    import typer

    from trenches.cli import serve as serve_cli
    from trenches.cli._root import HELP, SETTINGS, root

    app = typer.Typer(help=HELP, **SETTINGS)
    app.callback()(root)
    app.command("serve")(serve_cli.serve)
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; maps trenches errors to exit statuses.

    Typer handles usage errors itself (exit 2, with the usage line).
    """
    from trenches.cli._output import err_console, state
    from trenches.errors import TrenchesError

    args = sys.argv[1:] if argv is None else argv
    app = _serve_app() if _command(args) == "serve" else __getattr__("app")
    try:
        app(args=args, prog_name="trenches")
    except TrenchesError as e:
        if state.debug:
            raise
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(e.exit_code)
    except Exception as e:
        # Every user mistake and environment fault is a TrenchesError with a message;
        # anything else is a bug. Say so in one line rather than with a traceback.
        if state.debug:
            raise
        from rich.markup import escape

        what = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        err_console.print(
            f"[bold red]error:[/] {escape(what)} -- this is a bug in trenches; please report "
            "it with the output of the same command run with --debug (trenches --debug ...)",
            highlight=False,
        )
        sys.exit(BUG_EXIT_STATUS)


#: The Typer app loads on first use: ``trenches serve`` builds a smaller one.
__getattr__ = lazy_names(__name__, {"app": "trenches.cli.commands"})
