"""``trenches requests ...``: the request log of the model server, feedback, and
requests turned into patterns."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from trenches import timestamps
from trenches.cli._output import (
    console,
    err_console,
    exit_if_skipped,
    int64,
    open_store,
    print_json,
    progress_bar,
)
from trenches.json_form import to_json

app = typer.Typer(
    help="The request log of `trenches serve`: what was asked and answered, feedback on "
    "it, and requests made patterns.",
    no_args_is_help=True,
)


def _first_prediction(outputs: dict[str, Any], n: int) -> str:
    labels, values = outputs.get("labels"), outputs.get("values")
    if labels:
        first = str(labels[0])
        scores = outputs.get("scores")
        if scores:
            first += f" ({max(scores[0]):.2f})"
    elif values:
        first = f"{values[0]:.4g}"
    else:
        return "-"
    return first + (f" (+{n - 1})" if n > 1 else "")


def _feedback_text(feedback: list[dict[str, Any]] | None) -> str:
    if not feedback:
        return ""
    parts = []
    for f in feedback:
        bits = []
        if f["label"] is not None:
            bits.append(f"label {f['label']}")
        if f["rating"] is not None:
            bits.append(f"rating {f['rating']:g}")
        if f["pattern_id"] is not None:
            bits.append(f"pattern {f['pattern_id']}")
        parts.append((f"row {f['row']}: " if f["row"] else "") + ", ".join(bits))
    return "; ".join(parts)


@app.command("list")
def list_(
    since: str = typer.Option(
        None, "--since", help="Received at or after: 2026-03-01, 2026-03-01T12:00Z, 3d, 12h."
    ),
    until: str = typer.Option(None, "--until", help="Received before (same forms)."),
    version: str = typer.Option(
        None, "--version", help="Only this version (name@3, name@production) or model (name)."
    ),
    limit: int = typer.Option(
        50, "--limit", min=0, callback=int64, help="Show the newest N requests (0: all of them)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List served requests, oldest first: time, version, rows, first prediction,
    latency and feedback (`--json`: inputs and outputs too).

    Example: `trenches requests list --since 1h --version cancer-clf@production`
    """
    with open_store() as store:
        frame = store.requests.list(since=since, until=until, version=version, limit=limit or None)
    if as_json:
        records = frame.assign(
            received_at=[timestamps.iso(timestamps.to_us(x)) for x in frame["received_at"]]
        ).to_dict(orient="records")
        print_json(records)
        return
    if frame.empty:
        console.print("no requests logged" + (" in that window" if since or until else ""))
        return
    table = Table(
        "request", "received", "version", "endpoint", "rows", "prediction", "ms", "feedback"
    )
    for row in frame.itertuples(index=False):
        table.add_row(
            row.request_id,
            f"{row.received_at:%Y-%m-%d %H:%M:%S}",
            row.version,
            row.endpoint,
            str(row.n),
            _first_prediction(row.outputs, row.n),
            f"{row.latency_ms:.1f}",
            _feedback_text(row.feedback),
        )
    console.print(table)


@app.command("feedback")
def feedback(
    request_id: str = typer.Argument(..., help="The request id the server answered with."),
    row: int = typer.Option(
        0, "--row", min=0, callback=int64, help="Which row of the request (from 0)."
    ),
    label: str = typer.Option(None, "--label", help="The true answer."),
    rating: float = typer.Option(None, "--rating", help="A rating of the answer."),
    comment: str = typer.Option(None, "--comment"),
) -> None:
    """Attach a true label or a rating to a logged request (what `POST /feedback`
    does for a client). The label is checked against the served version's dataset.

    Example: `trenches requests feedback 7f3c... --label malignant --comment "biopsy"`
    """
    with open_store() as store:
        done = store.requests.feedback(
            request_id, row=row, label=label, rating=rating, comment=comment
        )
    what = []
    if done.label is not None:
        what.append(f"label {done.label}")
    if done.rating is not None:
        what.append(f"rating {done.rating:g}")
    console.print(f"feedback on {done.request_id}, row {done.row}: {', '.join(what)}")


@app.command("to-patterns")
def to_patterns(
    request_ids: list[str] = typer.Argument(..., help="Request ids (with labelled feedback)."),
    problem: str = typer.Option(
        None, "--problem", help="Also add the patterns to this problem (and backfill it)."
    ),
    polarity: str = typer.Option(
        "positive", "--polarity", help="With --problem: positive (shows it) or negative."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Make logged requests with a labelled feedback patterns (source `production`) of
    the dataset of the version that served them; with `--problem`, patterns of that
    problem too, predicted at once by every version. All or nothing: an unknown id, or
    a request without a labelled feedback, stores nothing. Rows made patterns before
    are skipped.

    Example: `trenches requests to-patterns 7f3c... 91ab... --problem small-dense`
    """
    with open_store() as store, progress_bar("backfilling the problem", None) as advance:
        result = store.requests.to_patterns(
            request_ids, problem=problem, polarity=polarity, progress=advance
        )
    if as_json:
        print_json(to_json(result))
        if result.problem_result is not None:
            exit_if_skipped(result.problem_result.skipped, quiet=True)
        return
    datasets = ", ".join(result.dataset)
    if result.created:
        ids = " ".join(str(p.pattern_id) for p in result.created)
        n = len(result.created)
        console.print(f"{n} new pattern{'s' if n != 1 else ''} of {datasets}: {ids}")
    for p in result.skipped:
        err_console.print(
            f"{p.request_id}, row {p.row}: a pattern already ({p.pattern_id}); skipped"
        )
    if not result.created:
        err_console.print("nothing new: every labelled row is a pattern already")
    r = result.problem_result
    if r is not None:
        console.print(
            f"problem {result.problem}: {r.added} added"
            + (f" ({r.already} were there)" if r.already else "")
            + f"; {r.predicted} new predictions from {r.versions} versions"
        )
        exit_if_skipped(r.skipped)
