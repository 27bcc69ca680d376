"""``trenches explain REF PATTERN_ID...``: why a model version predicted what it did."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from trenches import timestamps
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

if TYPE_CHECKING:
    from trenches.explain import Explanation


def explain(
    ref: str = typer.Argument(..., help="A model version: name@3, name@production."),
    pattern_ids: list[int] = typer.Argument(
        None, help="Patterns to explain, by id.", callback=int64
    ),
    problem: str = typer.Option(
        None, "--problem", help="Explain every pattern (positive and negative) of a problem."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="Seed of LIME's random perturbations."
    ),
    samples: int = typer.Option(
        5000,
        "--samples",
        min=10,
        callback=int64,
        help="Perturbed copies of each pattern the model is asked.",
    ),
    features: int = typer.Option(
        10,
        "--features",
        min=1,
        callback=int64,
        help="Most features (or words) in an explanation.",
    ),
    trusted: bool = typer.Option(False, "--trusted", help=TRUSTED_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Explain the version's prediction on each pattern with LIME: the features (or
    words) that pushed toward the predicted class and those that pushed against it.
    Explanations are reproducible (`--seed`) and stored once per pattern and settings;
    asking again shows the stored one.

    Example: `trenches explain cancer-clf@3 17 42` or
    `trenches explain cancer-clf@3 --problem small-tumours --json`
    """
    from trenches.errors import InvalidInput

    if bool(pattern_ids) == (problem is not None):
        raise InvalidInput("name the patterns to explain: PATTERN_ID... or --problem SLUG")
    with open_store() as store:
        ids = list(pattern_ids) if pattern_ids else list(store.problems.get(problem).patterns())
        if not ids:
            raise InvalidInput(f"problem {problem!r} has no patterns yet")
        started = timestamps.now_us()
        with progress_bar("explaining", len(ids)) as advance:
            found = store.explanations.explain(
                ref,
                ids,
                seed=seed,
                num_samples=samples,
                num_features=features,
                trusted=trusted,
                progress=advance,
            )
    computed = sum(timestamps.to_us(e.created_at) >= started for e in found)
    if as_json:
        print_json(
            {
                "version": found[0].version,
                "computed": computed,
                "explanations": to_json(found),
            }
        )
        return
    err_console.print(
        f"{computed} new, {len(found) - computed} stored already"
        if computed
        else f"nothing to compute: {len(found)} stored already"
    )
    for e in found:
        _show(e)


def _show(e: Explanation) -> None:
    if e.label is not None:
        head = f"predicted [bold]{escape(e.label)}[/]"
        if e.probability is not None:
            head += f" (p = {e.probability:.3f})"
        up, down = f"toward {escape(e.label)}", "against"
    else:
        head = f"predicted [bold]{float(e.prediction):.4g}[/]"
        up, down = "toward higher", "toward lower"
    console.print(
        f"\n[bold]{escape(e.version)}[/] on pattern [bold]{e.pattern_id}[/]: {head}  "
        f"[dim]{e.method}, surrogate R² {e.score:.2f}, seed {e.settings.get('seed')}[/]"
    )
    toward, against = e.toward(), e.against()
    table = Table(up, "weight", down, "weight")
    for i in range(max(len(toward), len(against))):
        cells: list[str] = []
        for side in (toward, against):
            if i < len(side):
                _, condition, weight = side[i]
                cells += [escape(condition), f"{weight:+.4f}"]
            else:
                cells += ["", ""]
        table.add_row(*cells)
    console.print(table)
