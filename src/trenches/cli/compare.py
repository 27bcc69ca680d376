"""``trenches compare A B``: two predictors on the patterns both predicted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from trenches.cli._output import console, open_store, print_json
from trenches.json_form import to_json

if TYPE_CHECKING:
    from trenches.comparison import Comparison


def compare(
    a: str = typer.Argument(..., help="A version (name@3) or a baseline name."),
    b: str = typer.Argument(..., help="Another version or baseline."),
    problem: str = typer.Option(None, "--problem", help="Only this problem's patterns."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare two versions (or a version and a baseline) on the patterns both were
    evaluated on: metric deltas, a paired test, and the patterns that flipped (fixed: A
    wrong, B right; broken: A right, B wrong), overall and per problem. Classification:
    an exact McNemar test. Regression: a Wilcoxon signed-rank test on the absolute
    errors, and right or wrong by the dataset's (or the problem's) tolerance. When both
    versions were trained on snapshots, the flipped patterns that were added or
    relabelled between the two snapshots are named, with who labelled them.

    Example: `trenches compare cancer-clf@3 cancer-clf@4 --problem small-dense`
    """
    with open_store() as store:
        result = store.compare(a, b, problem=problem)
    if as_json:
        print_json(to_json(result))
        return
    o = result.overall
    console.print(
        f"[bold]{result.a}[/] against [bold]{result.b}[/] on {o.pattern_set} ({o.size} patterns)"
    )
    table = Table("metric", result.a, result.b, "change")
    for k, delta in result.deltas.items():
        table.add_row(
            k,
            f"{result.a_metrics.metrics[k]:.4f}",
            f"{result.b_metrics.metrics[k]:.4f}",
            f"{delta:+.4f}",
        )
    console.print(table)
    test = "Wilcoxon p (absolute errors)" if o.test == "wilcoxon" else "McNemar p"
    flips = Table("patterns", "fixed (A wrong, B right)", "broken (A right, B wrong)", test)
    for label, f in (("all", o), *((f"problem {k}", v) for k, v in result.problems.items())):
        flips.add_row(
            f"{label} ({f.size})" + (f", within {f.tolerance}" if f.tolerance else ""),
            "-" if f.undefined else f"{len(f.fixed)}: " + " ".join(map(str, f.fixed[:12])),
            "-" if f.undefined else f"{len(f.broken)}: " + " ".join(map(str, f.broken[:12])),
            f"{f.p_value:.3g}",
        )
    console.print(flips)
    if o.undefined:
        console.print(f"[yellow]{o.undefined}[/]")
    for label, f in (("all", o), *result.problems.items()):
        note = f.training_note(result.a, result.b)
        if note:
            console.print(f"  {label}: {note}")
    _data_changes(result)


def _data_changes(result: Comparison) -> None:
    """Which flipped patterns changed between the two versions' training snapshots."""
    from rich.markup import escape

    data = result.data
    if data is None:
        return
    console.print(
        f"{result.a} trained on snapshot {data.a.id}, {result.b} on snapshot {data.b.id}: "
        f"{len(data.added)} patterns added, {len(data.relabelled)} relabelled, "
        f"{len(data.removed)} removed between them (trenches data diff {data.a.id} "
        f"{data.b.id})"
    )
    for label, f in (("all", result.overall), *result.problems.items()):
        note = f.change_note()
        if not note:
            continue
        console.print(f"  {escape(label)}: {escape(note)}")
        for c in f.changes[:10]:
            console.print(f"    pattern {c.pattern_id}: {escape(c.describe())}")
        if len(f.changes) > 10:
            console.print(f"    ... and {len(f.changes) - 10} more (--json lists them all)")
