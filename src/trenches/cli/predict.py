"""``trenches predict REF --input FILE|GLOB --output FILE``: batch scoring of files."""

from __future__ import annotations

import typer
from rich.markup import escape

from trenches.cli._output import (
    TRUSTED_HELP,
    err_console,
    int64,
    open_store,
    print_json,
    progress_bar,
)
from trenches.json_form import to_json


def predict(
    ref: str = typer.Argument(..., help="A model version: name@3, name@production."),
    input: str = typer.Option(
        ...,
        "--input",
        "-i",
        help="The file to predict, or a glob of files (quote it: 'daily/*.parquet'): "
        ".parquet, .csv or .jsonl; a local path or a URL the workers reach (s3://...).",
    ),
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        help="The file to write: .parquet, .csv or .jsonl; a local path or a URL (s3://...).",
    ),
    keep: list[str] = typer.Option(
        None,
        "--keep",
        help="An input column to copy to the output (repeat it; default: every input "
        "column). `--keep customer_id` writes ids and predictions only.",
    ),
    trusted: bool = typer.Option(False, "--trusted", help=TRUSTED_HELP),
    chunk_size: int = typer.Option(
        100_000,
        "--chunk-size",
        min=1,
        callback=int64,
        help="Rows read and predicted at a time (on a cluster: a task's): what one "
        "process holds in memory, whatever the size of the files.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Predict every row of a file, or of a glob of files, with a model version, into
    one output file: the once-a-day scoring job, instead of a server. Nothing is
    stored in the store: the output file is the result. (Not `trenches predictions`,
    which shows the predictions a version made of a dataset's patterns.)

    The output holds every input row, in order (the files of a glob in the sorted order
    of their names), with the input's columns (all, or those of --keep), then
    `prediction` (the class, or the value) and, for a classifier, `p_CLASS` for each
    class. An input column named like one of these is renamed `data_NAME`. A CSV file's
    columns are copied as their text. The file is written under a temporary name and
    renamed at the end, so a failed run leaves none.

    Runs in this process, or on the Dask cluster of `[compute] scheduler` in
    trenches.toml / $TRENCHES_DASK_SCHEDULER (`local-cluster:N` starts one for the
    command), whose workers read their slices of the files themselves. Ctrl-C stops it.

    Example: `trenches predict churn@production --input 'exports/2026-12-04/*.parquet'
    --output scores/2026-12-04.parquet --keep customer_id`
    """
    with open_store() as store, progress_bar(f"predicting with {ref}", None, unit="rows") as bar:
        done = store.score(
            ref,
            input,
            output,
            keep=keep or None,
            trusted=trusted,
            chunk=chunk_size,
            progress=lambda n, total: bar(n, total=total),
        )
    if as_json:
        print_json(to_json(done))
        return
    files = f"{len(done.inputs)} file{'s' if len(done.inputs) != 1 else ''}"
    where = "in this process" if done.cluster is None else f"on the cluster at {done.cluster}"
    err_console.print(
        f"{done.rows} rows of {files} predicted by {escape(done.ref)} {where}, "
        f"written to {escape(str(done.output))}"
    )
