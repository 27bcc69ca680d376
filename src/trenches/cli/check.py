"""``trenches check name@V``: the version against its model's gates in trenches.toml."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from trenches.cli._output import TRUSTED_HELP, console, err_console, open_store, print_json
from trenches.json_form import to_json


def check(
    ref: str = typer.Argument(..., help="The version to check: name@3, name@candidate."),
    junit: Path = typer.Option(
        None, "--junit", help="Also write JUnit XML here (one test case per gate) for CI."
    ),
    markdown: Path = typer.Option(
        None, "--markdown", help="Also write a Markdown summary here, for a pull request."
    ),
    config: Path = typer.Option(
        None, "--config", help="The trenches.toml to read (default: the nearest one)."
    ),
    trusted: bool = typer.Option(False, "--trusted", help=TRUSTED_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check a version against the gates written for its model in trenches.toml:
    predict whatever the gates need that is not stored yet, compute each figure over
    its named pattern set, print gate, figure, bound and result, and store the check
    with a digest of the criteria.

    Exit status: 0 every gate passes (skipped ones included), 1 a gate fails, 2 the
    gates or the arguments are wrong (the error names the key and its line).

    Example: `trenches check cancer-clf@5 --junit gates.xml --markdown gates.md`
    """
    from trenches.gates.outputs import figure_text, write_junit, write_markdown

    with open_store(settings=config) as store:

        def progress(ref: str, n: int) -> None:
            if not as_json:
                err_console.print(f"[dim]predicted {n} patterns the gates need with {ref}[/]")

        result = store.gates.check(ref, trusted=trusted, progress=progress)
    if junit is not None:
        write_junit(result, junit)
    if markdown is not None:
        write_markdown(result, markdown)
    if as_json:
        print_json(to_json(result))
    else:
        table = Table("gate", "figure", "bound", "result", title=f"gates of {result.version}")
        style = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}
        for r in result.results:
            table.add_row(escape(r.gate), figure_text(r), escape(r.bound), style[r.status])
        console.print(table)
        for r in result.results:
            if r.status != "pass":
                where = f" ({r.key}, line {r.line})" if r.line else f" ({r.key})" if r.key else ""
                console.print(f"  {r.status}: {escape(r.gate)}{where}: {escape(r.detail)}")
        n, failed = len(result.results), len(result.failed)
        console.print(
            f"[green]{result.version} passes {n - failed - len(result.skipped)} of {n} gates"
            + (f" ({len(result.skipped)} skipped)" if result.skipped else "")
            + "[/]"
            if result.passed
            else f"[bold red]{result.version} fails {failed} of {n} gates[/]"
        )
        console.print(
            f"[dim]check #{result.id}, criteria {result.criteria_digest[:12]} from "
            f"{result.source}[/]"
        )
    if not result.passed:
        raise typer.Exit(1)
