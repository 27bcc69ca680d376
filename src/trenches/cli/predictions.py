"""``trenches predictions ...``: a predictor's stored predictions, beside the patterns
they are about, to export or to look at."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from trenches.cli._output import console, err_console, int64, open_store, print_json
from trenches.errors import InvalidInput
from trenches.names import in_int64

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(
    help="A model version's or a baseline's predictions, pattern by pattern.",
    no_args_is_help=True,
)

_REF_HELP = "A model version (name@3, name@production) or a baseline name."
_PATTERNS_HELP = (
    "validation, test, train or all (the active patterns of a split), problem:SLUG, or "
    "pattern ids like 1,2,3. Default: every pattern it has a prediction for."
)
_IDS = re.compile(r"^[0-9][0-9,\s]*$")


def _pattern_set(value: str | None) -> str | list[int] | None:
    """``--patterns`` as the API takes it: a set's name, or a list of pattern ids."""
    if value is None or not _IDS.match(value):
        return value
    ids = [int(part) for part in re.split(r"[,\s]+", value.strip(" ,")) if part]
    beyond = [i for i in ids if not in_int64(i)]
    if beyond:
        raise InvalidInput(f"--patterns: pattern id {beyond[0]} is out of range (beyond 64 bits)")
    return ids


def _unpredicted(frame: pd.DataFrame) -> int:
    return int((~frame["predicted"]).sum())


@app.command("export")
def export(
    ref: str = typer.Argument(..., help=_REF_HELP),
    out: Path = typer.Option(..., "--out", help="The file: .parquet, .csv or .jsonl."),
    patterns: str = typer.Option(None, "--patterns", help=_PATTERNS_HELP),
) -> None:
    """Write a version's (or a baseline's) predictions to a Parquet, CSV or JSON lines
    file, chosen by its suffix: one row per pattern with its inputs, label, split and
    source, the prediction, class probabilities (p_CLASS), right, loss, and for
    regression the error. Patterns of the set without a prediction are kept, with
    `predicted` false.

    Example: `trenches predictions export cancer-clf@3 --out test.parquet --patterns test`
    """
    from trenches.patterns.ingest import file_format
    from trenches.prediction_table import write_file

    file_format(out)  # a suffix it cannot write is refused before any work
    with open_store() as store:
        frame = store.predictions(ref, _pattern_set(patterns))
    write_file(frame, out)
    console.print(
        f"wrote {len(frame)} rows of {frame.attrs['predictor']} on "
        f"{frame.attrs['pattern_set']} to {escape(str(out))}; "
        f"{_unpredicted(frame)} without a prediction"
    )


@app.command("show")
def show(
    ref: str = typer.Argument(..., help=_REF_HELP),
    patterns: str = typer.Option(None, "--patterns", help=_PATTERNS_HELP),
    limit: int = typer.Option(
        20, "--limit", min=1, callback=int64, help="Show at most this many rows."
    ),
    as_json: bool = typer.Option(False, "--json", help="Rows as JSON, inputs included."),
) -> None:
    """Show a version's (or a baseline's) predictions, pattern by pattern, in pattern id
    order: split, source, label, prediction, class probabilities, right, loss (and error,
    for regression). The table leaves the inputs out; `--json` and `export` have them.

    Example: `trenches predictions show cancer-clf@3 --patterns problem:small-dense`
    """
    with open_store() as store:
        frame = store.predictions(ref, _pattern_set(patterns))
    shown = frame.head(limit)
    if as_json:
        print_json(
            {
                "predictor": frame.attrs["predictor"],
                "pattern_set": frame.attrs["pattern_set"],
                "rows": len(frame),
                "unpredicted": _unpredicted(frame),
                "shown": len(shown),
                "predictions": shown.reset_index().to_dict(orient="records"),
            }
        )
        return
    console.print(
        f"[bold]{frame.attrs['predictor']}[/] on [bold]{frame.attrs['pattern_set']}[/]: "
        f"{len(frame)} patterns, {_unpredicted(frame)} without a prediction"
        + (f"; the first {len(shown)}" if len(shown) < len(frame) else "")
    )
    if len(frame) == 0 and patterns is None:
        err_console.print(f"no predictions yet; run `trenches evaluate {escape(ref)}`")
        return
    console.print(_table(shown, _shown_columns(frame)))


def _shown_columns(frame: pd.DataFrame) -> list[str]:
    """The label and the columns the table adds after it (the inputs come before)."""
    names = [str(c) for c in frame.columns]
    start = names.index("split")
    return [names[start - 1], *(c for c in names[start:] if c != "predicted")]


def _table(frame: pd.DataFrame, columns: list[str]) -> Table:
    import pandas as pd

    table = Table("pattern", *columns)
    for pattern_id, row in zip(frame.index, frame[columns].itertuples(index=False), strict=True):
        cells = (
            "[dim]-[/]" if pd.isna(v) else _cell(c, v) for c, v in zip(columns, row, strict=True)
        )
        table.add_row(str(pattern_id), *cells)
    return table


def _cell(column: str, value: Any) -> str:
    if column == "right":
        return "[green]yes[/]" if value else "[red]no[/]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))
