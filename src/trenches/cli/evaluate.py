"""``trenches evaluate REF``: predict a split, then show metrics over it."""

from __future__ import annotations

import typer
from rich.table import Table

from trenches.cli._output import (
    TRUSTED_HELP,
    console,
    err_console,
    int64,
    open_store,
    print_json,
    progress_bar,
)
from trenches.json_form import to_json


def evaluate(
    ref: str = typer.Argument(..., help="A model version: name@3, name@production."),
    split: str = typer.Option(
        "validation", "--split", help="validation, test, train or all (active patterns)."
    ),
    trusted: bool = typer.Option(False, "--trusted", help=TRUSTED_HELP),
    batch_size: int = typer.Option(
        500_000,
        "--batch-size",
        min=1,
        callback=int64,
        help="Patterns predicted and stored per transaction (an Iceberg commit each): "
        "the work a kill can lose.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predict the patterns of a split, and every problem's patterns, that have no
    prediction of this version yet (each prediction is stored once), then show metrics
    over the whole split. Each batch is stored in its own transaction, so a killed run
    loses at most one batch and the next run carries on where it stopped.

    Example: `trenches evaluate cancer-clf@3 --split test`
    """
    with open_store() as store, progress_bar(f"predicting {split} and the problems", None) as bar:
        found = store.evaluate(
            ref,
            split,
            with_problems=True,
            trusted=trusted,
            batch_size=batch_size,
            progress=lambda n, total: bar(n, total=total),
        )
    result, done = found.evaluation, found.predicted
    if as_json:
        out = to_json(result)
        out["computed"] = done.computed
        print_json(out)
        return
    err_console.print(
        f"{done.computed} new predictions, {done.already} stored already"
        if done.computed
        else f"nothing to predict: all {done.requested} patterns have predictions"
    )
    console.print(
        f"[bold]{result.predictor}[/] on [bold]{result.pattern_set}[/] ({result.size} patterns)"
    )
    table = Table("metric", "value")
    for k, v in result.metrics.items():
        table.add_row(k, f"{v:.4f}")
    console.print(table)
    if result.per_class is not None:
        per = Table(
            "class", "precision", "recall", "f1", "support", title="per class", title_justify="left"
        )
        for cls, row in result.per_class.iterrows():
            per.add_row(
                str(cls),
                f"{row['precision']:.4f}",
                f"{row['recall']:.4f}",
                f"{row['f1']:.4f}",
                str(int(row["support"])),
            )
        console.print(per)
    if result.confusion is not None:
        cm = Table(
            "true \\ predicted",
            *[str(c) for c in result.confusion.columns],
            title="confusion matrix",
            title_justify="left",
        )
        for cls, row in result.confusion.iterrows():
            cm.add_row(str(cls), *[str(int(v)) for v in row])
        console.print(cm)
