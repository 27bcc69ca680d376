"""What every command shares: the consoles, the store it opens, JSON output, progress."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from trenches.backfill import SkippedVersion
    from trenches.patterns.quality import QualityReport
    from trenches.store import Store

# Piped output is not cut at 80 columns: tables get room, messages stay on one line.
#: The help of every --trusted option.
TRUSTED_HELP = (
    "Allow loading a model file that can run code: a pickle, or a skops file holding "
    "names outside trenches' fixed list (`trenches models show` names them; see "
    "docs/registry.md). Only for files you trust."
)

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class _State:
    debug: bool = False
    store: str | None = None


state = _State()


def open_store(*, create: bool = False, settings: Path | None = None) -> Store:
    """The store named by --store / $TRENCHES_DB_URL, or .trenches/ here, with the
    trenches.toml of --config (``settings``) or the nearest one as ``store.settings``:
    a command reads it once, and hands it down."""
    import trenches

    return trenches.open(state.store, create=create, settings=settings)


def int64(value: Any) -> Any:
    """Typer callback of every integer parameter: a number the store's 64-bit integers
    cannot hold is a usage error naming the parameter (exit 2), not an overflow deep in
    the database driver."""
    from trenches.names import INT64_MAX, in_int64

    for v in value if isinstance(value, list | tuple) else [value]:
        if isinstance(v, int) and not in_int64(v):
            raise typer.BadParameter(
                f"{v} is out of range: the store's integers are 64-bit, up to {INT64_MAX}"
            )
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(
        orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    )


class _Rate(ProgressColumn):
    """How many items a second, once some are done: ``12,345 patterns/s``."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if not speed else f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


@contextmanager
def progress_bar(description: str, total: int | None, *, unit: str = "patterns") -> Iterator[Any]:
    """A Rich progress bar on stderr; yields a callback taking the number of items done
    (and, when it is first known or changes, the ``total``). It shows how many
    ``unit`` a second go by: work on a Dask cluster advances it a part at a time."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda n, total=None: progress.update(task, advance=n, total=total)


def quality_table(report: QualityReport) -> Table:
    """A data quality report as a table: each kind, found or not, and example ids."""
    table = Table("check", "result", "patterns", "examples (ids)")
    for f in report.findings:
        mark = "[red]found[/]" if f.found else "[green]ok[/]"
        if f.kind == "source-mix":
            mark = "info"
        examples = (
            "; ".join(" ".join(str(i) for i in g) for g in f.groups[:3])
            if f.groups
            else " ".join(str(i) for i in f.pattern_ids[:8])
        )
        table.add_row(f"{f.kind}\n[dim]{f.summary}[/]", mark, str(len(f.pattern_ids)), examples)
    return table


def exit_if_skipped(skipped: Sequence[SkippedVersion], *, quiet: bool = False) -> None:
    """Name each version a backfill skipped, with why, and exit 1 if there is one."""
    if not skipped:
        return
    if not quiet:
        for s in skipped:
            err_console.print(f"skipped {escape(s.ref)}: {escape(s.reason)}")
    n = len(skipped)
    err_console.print(
        f"[bold red]{n} version{' was' if n == 1 else 's were'} skipped[/]: "
        f"{'its' if n == 1 else 'their'} predictions are still missing; once the reason is "
        "dealt with (--trusted for a model file you trust), `trenches backfill` "
        "predicts them"
    )
    raise typer.Exit(1)
