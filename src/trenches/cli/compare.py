"""``trenches compare A B``: two predictors on the patterns both predicted."""

from __future__ import annotations

import typer
from rich.table import Table

from trenches.cli._output import console, open_store, print_json


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
    errors, and right or wrong by the dataset's (or the problem's) tolerance.

    Example: `trenches compare cancer-clf@3 cancer-clf@4 --problem small-dense`
    """
    from trenches.comparison import compare as run

    with open_store() as store:
        result = run(store, a, b, problem=problem)
    if as_json:
        print_json(result.to_json())
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
