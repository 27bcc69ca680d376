"""``trenches retrain NAME``: one pass of the continuous-training loop, or its history."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from trenches.cli._output import TRUSTED_HELP, console, err_console, int64, open_store, print_json
from trenches.json_form import to_json

if TYPE_CHECKING:
    from trenches.retrain import Retrain, RetrainStep


def retrain(
    name: str = typer.Argument(..., help="The model to retrain, as named in the registry."),
    config: Path = typer.Option(
        None, "--config", help="The trenches.toml to read (default: the nearest one)."
    ),
    report: int = typer.Option(
        None,
        "--report",
        callback=int64,
        help="The drift report that set this pass off (recorded with it).",
    ),
    trusted: bool = typer.Option(False, "--trusted", help=TRUSTED_HELP),
    history: bool = typer.Option(
        False, "--history", help="List the past passes of NAME instead of running one."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the pass (or the history) as JSON."),
) -> None:
    """Retrain a model with the function named in trenches.toml, and promote the result
    if it earns it.

    One pass: take a fresh snapshot of the dataset, call the training function of
    `[retrain.NAME]` on its train split (with the recency weights configured) in a
    tracked run, register the candidate under the alias `candidate`, predict the
    validation split and every problem with it and with production, backfill every
    version of the dataset (validation, test and problems: a version that cannot be
    loaded is named and left out), check its gates, and compare it with production on
    the metric configured. It is promoted to
    `production` only when every gate passes and it is better; otherwise it stays at
    `candidate` and the reason is printed and recorded.

    Exit status: 0 promoted, 1 left at candidate or the pass failed, 2 the settings or
    the arguments are wrong (the error names the key and its line; nothing is written).

    Examples: `trenches retrain cancer-clf`, `trenches retrain cancer-clf --history`
    """
    if history:
        _history(name, as_json)
        return
    from trenches.retrain import RetrainFailed

    with open_store(settings=config) as store, _Display(quiet=as_json) as display:
        try:
            result = store.retrains.run(name, report_id=report, trusted=trusted, progress=display)
        except RetrainFailed as e:
            if not as_json or e.retrain is None:
                raise
            print_json(to_json(e.retrain))
            err_console.print(f"[bold red]error:[/] {escape(str(e))}")
            raise typer.Exit(1) from None
    if as_json:
        print_json(to_json(result))
    else:
        _show(result)
    if not result.promoted:
        raise typer.Exit(1)


class _Display:
    """Prints each step as it happens, with a progress bar while predicting."""

    def __init__(self, *, quiet: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.quiet = quiet
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err_console,
            transient=True,
            disable=quiet or not err_console.is_terminal,
        )
        self.task: Any = None

    def __enter__(self) -> _Display:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, step: RetrainStep) -> None:
        if self.quiet:
            return
        if step.name == "predict":
            if self.task is None or step.done == 0:
                if self.task is not None:
                    self.bar.remove_task(self.task)
                self.task = self.bar.add_task(step.message, total=step.total)
            self.bar.update(self.task, completed=step.done or 0)
            return
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
        if step.name in ("compare", "decision"):
            return  # shown with the figures at the end
        style = "bold" if step.name == "start" else ""
        console.print(f"[{style}]{escape(step.message)}[/]" if style else escape(step.message))


def _show(result: Retrain) -> None:
    from trenches.gates.outputs import figure_text

    if result.gates:
        table = Table("gate", "figure", "bound", "result", title=f"gates of {result.candidate}")
        style = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}
        for r in result.gates:
            table.add_row(escape(r.gate), figure_text(r), escape(r.bound), style[r.status])
        console.print(table)
    figures = result.figures
    if figures is not None:
        table = Table(
            "metric", str(result.candidate), str(figures.production_ref or "production"), "delta"
        )
        delta = figures.delta
        table.add_row(
            f"{figures.metric} on {figures.pattern_set} ({figures.size} patterns)",
            "-" if figures.candidate is None else f"{figures.candidate:.4f}",
            "-" if figures.production is None else f"{figures.production:.4f}",
            "-" if delta is None else f"{delta:+.4f}",
        )
        console.print(table)
        console.print(escape(figures.why))
    if result.problems:
        table = Table("problem", "status", "patterns", f"right: {result.candidate}", "production")
        for p in result.problems:
            table.add_row(
                p.problem,
                p.status,
                str(p.patterns),
                str(p.candidate_right),
                "-" if p.production_right is None else str(p.production_right),
            )
        console.print(table)
    if result.promoted:
        console.print(f"[bold green]promoted {result.candidate} to production[/]")
    else:
        console.print(f"[bold red]left {result.candidate} at candidate[/]")
    console.print(escape(result.reason or ""))


def _history(name: str, as_json: bool) -> None:
    with open_store() as store:
        passes = store.retrains.history(name)
    if as_json:
        print_json(to_json(passes))
        return
    if not passes:
        console.print(f"no retraining passes of {name} yet; run `trenches retrain {name}`")
        return
    table = Table("id", "started", "by", "trigger", "candidate", "status", "reason")
    colour = {"promoted": "green", "candidate": "yellow", "failed": "red", "running": "blue"}
    for p in passes:
        table.add_row(
            str(p.id),
            f"{p.started_at:%Y-%m-%d %H:%M}",
            escape(p.started_by or "-"),
            p.trigger,
            p.candidate or "-",
            f"[{colour.get(p.status, 'white')}]{p.status}[/]",
            escape(p.reason or ""),
        )
    console.print(table)
