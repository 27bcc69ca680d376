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
    a: str = typer.Argument(
        ..., help="A version (name@3) or a baseline name; with --live, a model."
    ),
    b: str = typer.Argument(None, help="Another version or baseline (not with --live)."),
    problem: str = typer.Option(None, "--problem", help="Only this problem's patterns."),
    live: bool = typer.Option(
        False, "--live", help="Compare the arms of model A's traffic policy on live traffic."
    ),
    window: str = typer.Option("24h", "--window", help="With --live: how far back (24h, 7d)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare two versions (or a version and a baseline) on the patterns both were
    evaluated on: metric deltas, a paired test, and the patterns that flipped (fixed: A
    wrong, B right; broken: A right, B wrong), overall and per problem. Classification:
    an exact McNemar test. Regression: a Wilcoxon signed-rank test on the absolute
    errors, and right or wrong by the dataset's (or the problem's) tolerance. When both
    versions were trained on snapshots, the flipped patterns that were added or
    relabelled between the two snapshots are named, with who labelled them.

    With --live, the arms of a model's traffic over the window (`trenches traffic`):
    per arm, requests, latency, feedback accuracy with its 95% interval, and its share
    under the policy now (a bandit's current shares).

    Example: `trenches compare cancer-clf@3 cancer-clf@4 --problem small-dense`, or
    `trenches compare --live cancer-clf --window 24h`
    """
    if live:
        if b is not None or problem is not None:
            raise typer.BadParameter("--live compares the arms of one model: give only MODEL")
        _live(a, window, as_json)
        return
    if b is None:
        raise typer.BadParameter("give two versions (or baselines) to compare, or --live MODEL")
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


def _live(model: str, window: str, as_json: bool) -> None:
    with open_store() as store:
        result = store.traffic.live(model, window=window)
    if as_json:
        print_json(to_json(result))
        return
    console.print(
        f"[bold]{model}[/] from {result.since:%Y-%m-%d %H:%M} to {result.until:%Y-%m-%d %H:%M} "
        f"UTC; policy now: {result.policy.describe()}"
    )
    if not result.arms:
        console.print("no requests in the window")
        return
    table = Table(
        "arm", "version", "requests", "p50 ms", "p99 ms", "feedback accuracy (95%)", "share now"
    )
    for arm in result.arms:
        accuracy = (
            f"{arm.accuracy:.1%} [{arm.accuracy_low:.1%}, {arm.accuracy_high:.1%}] "
            f"of {arm.labelled}"
            if arm.accuracy is not None
            else "-"
        )
        table.add_row(
            ("(no policy)" if arm.arm == "-" else arm.arm) + (" (shadow)" if arm.shadow else ""),
            arm.version,
            str(arm.requests),
            f"{arm.latency_ms_p50:.2f}" if arm.latency_ms_p50 is not None else "-",
            f"{arm.latency_ms_p99:.2f}" if arm.latency_ms_p99 is not None else "-",
            accuracy,
            f"{arm.share:.1%}" if arm.share is not None else "-",
        )
    console.print(table)
