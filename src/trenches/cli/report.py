"""``trenches report ...``: graphs and reports."""

from __future__ import annotations

from pathlib import Path

import typer

from trenches.cli._output import console, open_store

app = typer.Typer(help="Graphs and reports.", no_args_is_help=True)


@app.command("problems")
def problems(
    out: Path = typer.Option(..., "--out", "-o", help="FILE.png or FILE.html"),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Only this dataset's problems."),
) -> None:
    """Draw each problem's score across model versions (in creation order), one line
    per problem, with the validation accuracy beside it. The HTML form opens offline;
    clicking a point lists the patterns that version got right and wrong.

    Example: `trenches report problems --out problems.html`
    """
    from trenches.report.problems import write_graph

    with open_store() as store:
        path = write_graph(store, out, dataset)
    console.print(f"wrote {path}")
