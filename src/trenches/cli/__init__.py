"""The ``trenches`` command: ``trenches NOUN VERB``, plus top-level jobs.

Exit statuses: 0 ok, 1 a check failed, 2 bad usage or input.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from trenches.cli import check as check_cli
from trenches.cli import compare as compare_cli
from trenches.cli import data as data_cli
from trenches.cli import evaluate as evaluate_cli
from trenches.cli import explain as explain_cli
from trenches.cli import lineage as lineage_cli
from trenches.cli import models as models_cli
from trenches.cli import problems as problems_cli
from trenches.cli import report as report_cli
from trenches.cli import requests as requests_cli
from trenches.cli import runs as runs_cli
from trenches.cli import serve as serve_cli
from trenches.cli import store as store_cli
from trenches.cli._output import err_console, state
from trenches.errors import TrenchesError

app = typer.Typer(
    name="trenches",
    help=(
        "trenches keeps the whole life of a machine-learning model in one database: "
        "patterns with provenance, snapshots and data quality; runs, the model registry "
        "and lineage; per-pattern evaluation, the problem database and comparisons; "
        "sign-off gates, explanations and reports.\n\n"
        "Start with `trenches init` in your project folder, or `trenches demo` for a tour."
    ),
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback when something fails."
    ),
    store: str = typer.Option(
        None,
        "--store",
        envvar="TRENCHES_DB_URL",
        show_envvar=True,
        help="Store folder, SQLite file or database URL (default: .trenches/ here).",
    ),
) -> None:
    state.debug = debug
    state.store = store


app.add_typer(data_cli.app, name="data")
app.add_typer(runs_cli.app, name="runs")
app.add_typer(models_cli.app, name="models")
app.command("lineage")(lineage_cli.lineage)
app.command("evaluate")(evaluate_cli.evaluate)
app.command("explain")(explain_cli.explain)
app.add_typer(problems_cli.app, name="problems")
app.command("backfill")(problems_cli.backfill)
app.command("compare")(compare_cli.compare)
app.command("check")(check_cli.check)
app.add_typer(report_cli.app, name="report")
app.add_typer(requests_cli.app, name="requests")
app.command("serve")(serve_cli.serve)
store_cli.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; maps trenches errors to exit statuses.

    Typer handles usage errors itself (exit 2, with the usage line).
    """
    try:
        app(args=argv, prog_name="trenches")
    except TrenchesError as e:
        if state.debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(e.exit_code)
