"""``trenches problems ...`` and ``trenches backfill``: the problem database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from trenches.cli._output import (
    TRUSTED_HELP,
    console,
    err_console,
    exit_if_skipped,
    open_store,
    print_json,
    progress_bar,
)
from trenches.json_form import to_json

if TYPE_CHECKING:
    from trenches.backfill import BackfillResult


app = typer.Typer(
    help="The problem database: known failure modes and every version's score on them.",
    no_args_is_help=True,
)


@app.command("create")
def create(
    slug: str = typer.Argument(..., help="A short name, e.g. small-dense-tumours."),
    dataset: str = typer.Option(..., "--dataset", "-d"),
    title: str = typer.Option(..., "--title"),
    description: str = typer.Option(None, "--description"),
    severity: str = typer.Option("medium", "--severity", help="low, medium, high or critical."),
    tolerance: str = typer.Option(
        None,
        "--tolerance",
        help="Regression: right within this of the label, instead of the dataset's "
        "tolerance: 0.5, 10% or '0.5 or 10%'.",
    ),
    trainable: bool = typer.Option(
        False,
        "--trainable",
        help="New snapshots may train on its patterns. By default an open problem's "
        "patterns are held out of training, so new models are scored on what they did "
        "not see.",
    ),
) -> None:
    """Record a known failure mode.

    Example: `trenches problems create small-dense --dataset cancer --title "Misses small
    dense tumours" --severity high`
    """
    with open_store() as store:
        problem = store.problems.create(
            slug,
            dataset=dataset,
            title=title,
            description=description,
            severity=severity,
            tolerance=tolerance,
            trainable=trainable,
        )
    console.print(f"problem [bold]{problem.slug}[/] on {problem.dataset}: {problem.title}")


@app.command("edit")
def edit(
    slug: str = typer.Argument(..., help="The problem."),
    title: str = typer.Option(None, "--title"),
    description: str = typer.Option(None, "--description"),
    severity: str = typer.Option(None, "--severity", help="low, medium, high or critical."),
    tolerance: str = typer.Option(
        None, "--tolerance", help="Regression: 0.5, 10% or '0.5 or 10%' for this problem."
    ),
    clear_tolerance: bool = typer.Option(
        False, "--clear-tolerance", help="Use the dataset's tolerance again."
    ),
    trainable: bool = typer.Option(
        None,
        "--trainable/--held-out",
        help="Whether new snapshots may train on its patterns (held out by default).",
        show_default=False,
    ),
) -> None:
    """Change a problem's title, description, severity, tolerance, or whether new
    snapshots may train on its patterns. Snapshots made before keep what they held out.

    Example: `trenches problems edit small-dense --severity critical --trainable`
    """
    with open_store() as store:
        problem = store.problems.edit(
            slug,
            title=title,
            description=description,
            severity=severity,
            tolerance=tolerance,
            clear_tolerance=clear_tolerance,
            trainable=trainable,
        )
    console.print(
        f"problem [bold]{problem.slug}[/] ({problem.severity}, {problem.status}): "
        f"{problem.title}; "
        + ("trainable" if problem.trainable else "held out of new snapshots while open")
        + (f"; right within {problem.tolerance}" if problem.tolerance else "")
    )


@app.command("add")
def add(
    slug: str = typer.Argument(..., help="The problem."),
    positive: list[str] = typer.Option(
        [], "--positive", "-p", help="Pattern ids that show the problem (repeat, or 1,2,3)."
    ),
    negative: list[str] = typer.Option(
        [], "--negative", "-n", help="Control pattern ids (repeat, or 4,5,6)."
    ),
    from_file: Path = typer.Option(
        None,
        "--from-file",
        help="New inputs with labels (CSV, Parquet, JSONL; an optional polarity column): "
        "they become patterns of the dataset and of the problem.",
    ),
    source: str = typer.Option(
        "contrived", "--source", help="With --from-file: contrived or production."
    ),
    polarity: str = typer.Option(
        "positive", "--polarity", help="With --from-file and no polarity column."
    ),
    no_backfill: bool = typer.Option(
        False, "--no-backfill", help="Do not predict them now; `trenches backfill` will."
    ),
    trusted: bool = typer.Option(False, "--trusted", help=TRUSTED_HELP),
) -> None:
    """Add positive and negative patterns to a problem, and predict them with every
    model version of its dataset.

    A version that cannot be loaded (a model that can run code, without --trusted) is skipped and
    named with the reason; the patterns are stored all the same, and the command exits 1.

    Example: `trenches problems add small-dense --positive 12,40,77 --negative 3,8`,
    or `trenches problems add small-dense --from-file new-cases.csv --source production`,
    or `trenches problems add small-dense --positive 12 --trusted` (a pickled version)
    """
    with open_store() as store, progress_bar(f"backfilling {slug}", None) as advance:
        if from_file is not None:
            if positive or negative:
                from trenches.errors import InvalidInput

                raise InvalidInput("give pattern ids or --from-file, not both")
            result = store.problems.add_from_file(
                slug,
                from_file,
                source=source,
                polarity=polarity,
                backfill=not no_backfill,
                trusted=trusted,
                progress=advance,
            )
        else:
            result = store.problems.add(
                slug,
                positive=positive,
                negative=negative,
                backfill=not no_backfill,
                trusted=trusted,
                progress=advance,
            )
    if result.already_stored:
        n = result.already_stored
        was = "was" if n == 1 else "were"
        err_console.print(
            f"[yellow]warning:[/] {n} of the file's rows {was} in the dataset already (the "
            "same inputs, label and source) and now each has a second pattern in this "
            "problem; `trenches problems show` lists them, `trenches data deactivate` takes "
            "copies out"
        )
    if result.training:
        n = len(result.training)
        err_console.print(
            f"[yellow]warning:[/] {n} of these patterns {'is' if n == 1 else 'are'} in the "
            f"train split ({_ids(result.training)}): versions that trained on them may know "
            "them by heart, so their held-out score leaves them out; new snapshots hold "
            "them out of training while the problem is open (unless it is --trainable)"
        )
    console.print(
        f"added {result.added} patterns to {slug}"
        + (f" ({result.already} were there)" if result.already else "")
        + (
            f"; {result.predicted} new predictions from {result.versions} versions"
            if not no_backfill
            else "; not predicted yet (run `trenches backfill`)"
        )
    )
    exit_if_skipped(result.skipped)


@app.command("list")
def list_(
    dataset: str = typer.Option(None, "--dataset", "-d"),
    status: str = typer.Option(None, "--status", help="open or closed"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List problems with their size and status.

    Example: `trenches problems list --status open`
    """
    with open_store() as store:
        problems = store.problems.list(dataset=dataset, status=status)
    if as_json:
        print_json(
            [
                {
                    "slug": p.slug,
                    "dataset": p.dataset,
                    "title": p.title,
                    "severity": p.severity,
                    "status": p.status,
                    "positive": len(p.positive),
                    "negative": len(p.negative),
                }
                for p in problems
            ]
        )
        return
    if not problems:
        console.print("no problems recorded; create one with `trenches problems create`")
        return
    table = Table("problem", "dataset", "title", "severity", "status", "+", "-")
    for p in problems:
        table.add_row(
            p.slug,
            p.dataset,
            p.title,
            p.severity,
            p.status,
            str(len(p.positive)),
            str(len(p.negative)),
        )
    console.print(table)


@app.command("show")
def show(
    slug: str = typer.Argument(..., help="The problem."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show a problem: its patterns, and each model version's score on them.

    Example: `trenches problems show small-dense`
    """
    with open_store() as store:
        problem = store.problems.get(slug)
        scores = store.problems.scores(slug)
    if as_json:
        print_json(
            {
                "slug": problem.slug,
                "dataset": problem.dataset,
                "title": problem.title,
                "description": problem.description,
                "severity": problem.severity,
                "status": problem.status,
                "close_reason": problem.close_reason,
                "positive": list(problem.positive),
                "negative": list(problem.negative),
                "trainable": problem.trainable,
                "tolerance": to_json(problem.tolerance),
                "scores": to_json(scores),
            }
        )
        return
    console.print(
        f"[bold]{problem.slug}[/] ({problem.severity}, {problem.status}) on "
        f"{problem.dataset}: {problem.title}"
    )
    if problem.description:
        console.print(problem.description)
    console.print(f"positive patterns: {' '.join(map(str, problem.positive)) or '-'}")
    console.print(f"negative patterns: {' '.join(map(str, problem.negative)) or '-'}")
    console.print(
        "trainable: new snapshots may train on its patterns"
        if problem.trainable
        else "held out: new snapshots leave its patterns out of training while it is open"
    )
    tolerances = {str(s.tolerance) for s in scores if s.tolerance is not None}
    if tolerances:
        console.print(f"right within {', '.join(sorted(tolerances))}")
    undefined = next((s.undefined for s in scores if s.undefined), None)
    if undefined:
        err_console.print(f"[yellow]{undefined}[/]")
    table = Table(
        "version",
        "created",
        "held out",
        "all",
        "trained on",
        "positive right",
        "negative right",
        "missing",
        caption="held out: the share right of the patterns the version did not train on "
        "(its skill); all: of every pattern (memory included)",
    )
    for s in scores:
        table.add_row(
            s.predictor,
            f"{s.created_at:%Y-%m-%d %H:%M}",
            _share(s.held_out_score, s.held_out_right, s.held_out_total),
            _share(s.score, s.right, s.total),
            "?" if s.trained_on is None else str(s.trained_on),
            f"{s.positive_right}/{s.positive_total}",
            f"{s.negative_right}/{s.negative_total}",
            str(s.missing) if s.missing else "",
        )
    console.print(table)


def _share(score: float, right: int, total: int) -> str:
    if total == 0 or score != score:
        return "-"
    return f"{score:.0%} ({right}/{total})"


def _ids(ids: tuple[int, ...], limit: int = 12) -> str:
    shown = " ".join(map(str, ids[:limit]))
    return shown + (f" +{len(ids) - limit} more" if len(ids) > limit else "")


@app.command("close")
def close(
    slug: str = typer.Argument(..., help="The problem."),
    reason: str = typer.Option(..., "--reason", help="Why it is closed."),
) -> None:
    """Close a problem (it stays, with its patterns and history).

    Example: `trenches problems close small-dense --reason "fixed in v4"`
    """
    with open_store() as store:
        problem = store.problems.close(slug, reason=reason)
    console.print(f"closed {problem.slug}: {problem.close_reason}")


def backfill(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Only this dataset's versions."),
    trusted: bool = typer.Option(False, "--trusted", help=TRUSTED_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Predict, with every model version, each active validation and test pattern and
    each problem pattern of its dataset that it has no prediction for yet, so that
    every version is measured on the same patterns.

    Only what is missing is computed, and each prediction is stored once: a second run
    does nothing and says so, and a run stopped half-way keeps what it stored. A
    version that cannot be loaded (a model that can run code, without --trusted) is skipped and
    named with the reason; the others are done, and the command exits 1.

    Examples: `trenches backfill`, `trenches backfill --dataset cancer --trusted`
    """
    with open_store() as store:
        plan = store.backfill.gaps(dataset=dataset)
        with progress_bar("backfilling", sum(g.missing for g in plan)) as advance:
            result = store.backfill(trusted=trusted, progress=advance, plan=plan)
    if as_json:
        print_json(to_json(result))
    else:
        _show_backfill(result, dataset)
    exit_if_skipped(result.skipped, quiet=as_json)


def _show_backfill(result: BackfillResult, dataset: str | None) -> None:
    where = f"of {dataset}" if dataset is not None else "of any dataset"
    if result.versions == 0:
        err_console.print(f"nothing to backfill: there is no model version {where}")
        return
    if result.missing == 0:
        err_console.print(
            f"nothing to backfill: each of the {result.versions} versions has a prediction "
            "for every validation, test and problem pattern"
        )
        return
    console.print(
        f"{result.computed} new predictions of validation, test and problem patterns; "
        f"{result.versions} versions visited"
    )
    table = Table("version", "dataset", "patterns", "lacked", "predicted")
    for v in result.per_version:
        if v.missing:
            table.add_row(
                v.ref,
                v.dataset,
                str(v.patterns),
                str(v.missing),
                "skipped" if v.skipped else str(v.computed),
            )
    console.print(table)
