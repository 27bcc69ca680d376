"""What the full command line and the quick ``serve`` one share: the root options
(``--store``, ``--debug``) and the app settings."""

from __future__ import annotations

from typing import Any

import typer

from trenches.cli._output import state

HELP = (
    "trenches keeps the whole life of a machine-learning model in one database: "
    "patterns with provenance, snapshots and data quality; runs, the model registry "
    "and lineage; per-pattern evaluation, the problem database and comparisons; "
    "sign-off gates, explanations and reports; serving with a request log.\n\n"
    "Start with `trenches init` in your project folder, or `trenches demo` for a tour."
)

SETTINGS: dict[str, Any] = {
    "name": "trenches",
    "no_args_is_help": True,
    "add_completion": False,
    "context_settings": {"help_option_names": ["-h", "--help"]},
    "rich_markup_mode": "markdown",
    "pretty_exceptions_enable": False,
}


def root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback when something fails."
    ),
    store: str = typer.Option(
        None,
        "--store",
        envvar="TRENCHES_DB_URL",
        show_envvar=True,
        help="Store folder, SQLite file, database URL, or a team server's https:// URL "
        "(its token from $TRENCHES_TOKEN or ~/.config/trenches/token; default: .trenches/ here).",
    ),
) -> None:
    state.debug = debug
    state.store = store
