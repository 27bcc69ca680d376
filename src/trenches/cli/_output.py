"""What every command shares: the consoles, the store it opens, JSON output, progress."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

import trenches
from trenches.store import Store

# Piped output is not cut at 80 columns: tables get room, messages stay on one line.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class _State:
    debug: bool = False
    store: str | None = None


state = _State()


def open_store(*, create: bool = False) -> Store:
    """The store named by --store / $TRENCHES_DB_URL, or .trenches/ here."""
    return trenches.open(state.store, create=create)


def print_json(value: Any) -> None:
    sys.stdout.write(
        orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    )


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Any]:
    """A Rich progress bar on stderr; yields a callback taking the number of items done."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
