"""``trenches report ...``: the HTML report, and graphs."""

from __future__ import annotations

from pathlib import Path

import typer

from trenches.cli._output import console, open_store

app = typer.Typer(
    help=(
        "The report: one self-contained HTML file (it opens offline) with every model "
        "version's metric over time, the problem graph with drill-down to patterns, the "
        "latest gate checks, the two newest versions compared, the explanations of problem "
        "patterns and the data quality of the newest snapshot.\n\n"
        "Example: `trenches report --out report.html`\n\n"
        "Example: `trenches report --out cancer.html --dataset cancer --model cancer-clf`\n\n"
        "Only the problem graph: `trenches report problems --out problems.png`"
    ),
    no_args_is_help=True,
    invoke_without_command=True,
)


@app.callback()
def report(
    ctx: typer.Context,
    out: Path = typer.Option(
        None, "--out", "-o", help="The HTML file to write (needed unless a command follows)."
    ),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Only this dataset."),
    model: str = typer.Option(None, "--model", "-m", help="Only this model's versions."),
) -> None:
    if ctx.invoked_subcommand is not None:
        if out is not None or dataset is not None or model is not None:
            raise typer.BadParameter(
                f"give the options after `{ctx.invoked_subcommand}`, e.g. "
                f"`trenches report {ctx.invoked_subcommand} --out FILE`"
            )
        return
    if out is None:
        raise typer.BadParameter("name the file to write: --out report.html", param_hint="--out")
    from trenches.report.html import write_report

    with open_store() as store:
        path = write_report(store, out, dataset=dataset, model=model)
    size = path.stat().st_size
    console.print(f"wrote {path} ({size / 1e6:.1f} MB; it opens offline)")


@app.command("problems")
def problems(
    out: Path = typer.Option(..., "--out", "-o", help="FILE.png or FILE.html"),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Only this dataset's problems."),
) -> None:
    """Draw each problem's score across model versions (in creation order), one line
    per problem, with the validation accuracy beside it. The HTML form opens offline;
    clicking a point lists the patterns of that problem with what the version predicted.

    Example: `trenches report problems --out problems.html`
    """
    from trenches.report.problems import write_problem_graph

    with open_store() as store:
        path = write_problem_graph(store, out, dataset)
    console.print(f"wrote {path}")
