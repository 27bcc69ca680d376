"""``trenches replay CANDIDATE``: a candidate answers the requests callers sent."""

from __future__ import annotations

import typer
from rich.table import Table

from trenches.cli._output import console, open_store, print_json, progress_bar
from trenches.json_form import to_json


def replay(
    ref: str = typer.Argument(..., help="The candidate: name@5."),
    window: str = typer.Option("7d", "--window", help="How far back: 24h, 7d, 30d."),
    trusted: bool = typer.Option(
        False, "--trusted", help="Load a model file that runs code when loaded (a pickle)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replay a candidate on the request log: it answers the rows callers sent its
    model in the window (those it answered itself left out), and is compared with what
    they were answered: agreement, the rows that flipped, and accuracy on rows with a
    feedback label, overall and per problem the rows became patterns of. Its answers
    are stored once per request row (a second replay predicts only new rows); the
    replay is stored for the report and for a gate (metric = "replay-agreement").

    Example: `trenches replay cancer-clf@5 --window 7d`
    """
    with open_store() as store, progress_bar(f"replaying {ref}", None, unit="rows") as advance:
        result = store.replays.run(ref, window=window, trusted=trusted, progress=advance)
    if as_json:
        print_json(to_json(result))
        return
    agreement = f"{result.agreement:.2%}" if result.agreement is not None else "-"
    console.print(
        f"replay {result.id}: [bold]{result.candidate}[/] on {result.requests} requests "
        f"({result.rows} rows, {result.predicted} predicted now) agrees with what callers "
        f"were answered on {result.agreed} rows: [bold]{agreement}[/]"
    )
    if result.labelled:
        console.print(
            f"on {result.labelled} rows with a feedback label: right {result.candidate_right} "
            f"({result.candidate_accuracy:.2%}), production {result.production_right} "
            f"({result.production_accuracy:.2%}); fixed {result.fixed_count}, broken "
            f"{result.broken_count}"
        )
    if result.problems:
        table = Table("problem", "rows", "agree", "candidate right", "production right")
        for p in result.problems:
            table.add_row(
                p.problem,
                str(p.rows),
                str(p.agreed),
                str(p.candidate_right),
                str(p.production_right),
            )
        console.print(table)
