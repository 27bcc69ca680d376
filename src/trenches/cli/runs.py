"""``trenches runs ...``: list and show training runs."""

from __future__ import annotations

import typer
from rich.table import Table

from trenches import timestamps
from trenches.cli._output import console, int64, open_store, print_json
from trenches.json_form import to_json

app = typer.Typer(help="Training runs: params, metrics, code and data.", no_args_is_help=True)


@app.command("list")
def list_(
    filter_: str = typer.Option(
        None,
        "--filter",
        help="Clauses joined by 'and': params.model = 'lr', metrics.acc > 0.9, "
        "tags.team != 'x', attributes.status = 'finished'.",
    ),
    order_by: list[str] = typer.Option(
        [], "--order-by", help="e.g. 'metrics.acc DESC' (repeatable). Default: newest first."
    ),
    limit: int = typer.Option(
        None, "--limit", min=0, callback=int64, help="At most this many runs."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List runs, filtered and ordered.

    Example: `trenches runs list --filter "params.model = 'lr' and metrics.acc > 0.9"
    --order-by "metrics.acc DESC"`
    """
    with open_store() as store:
        runs = store.runs.list(filter_, order_by=order_by, limit=limit)
    if as_json:
        print_json(to_json(runs))
        return
    if not runs:
        console.print("no runs match" if filter_ else "no runs yet")
        return
    metric_keys = sorted({k for r in runs for k in r.metrics})[:6]
    param_keys = sorted({k for r in runs for k in r.params})[:4]
    table = Table("id", "name", "status", "started", *param_keys, *metric_keys, "git")
    for r in runs:
        table.add_row(
            str(r.id),
            r.name,
            r.status,
            f"{r.started_at:%Y-%m-%d %H:%M}",
            *(r.params.get(k, "") for k in param_keys),
            *(f"{r.metrics[k]:.4g}" if k in r.metrics else "" for k in metric_keys),
            (r.git_commit or "")[:8] + (" dirty" if r.git_state == "dirty" else "") or r.git_state,
        )
    console.print(table)


@app.command("show")
def show(
    run_id: int = typer.Argument(..., help="The run's id.", callback=int64),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one run: status, times, params, tags, last metric values, code and data.

    Example: `trenches runs show 12`
    """
    with open_store() as store:
        run = store.runs.get(run_id)
        snapshot = store.snapshots.get(run.snapshot_id) if run.snapshot_id else None
    if as_json:
        out = to_json(run)
        out["snapshot_digest"] = snapshot.digest if snapshot else None
        print_json(out)
        return
    ended = f"{run.ended_at:%Y-%m-%d %H:%M:%S}" if run.ended_at else "-"
    console.print(
        f"[bold]run {run.id}[/] {run.name!r}: {run.status}, started "
        f"{run.started_at:%Y-%m-%d %H:%M:%S}, ended {ended}"
        + (f" ({run.duration_s:.1f} s)" if run.duration_s is not None else "")
    )
    if run.error:
        console.print(f"[red]error:[/] {run.error}")
    code = {
        "none": "not in a git work tree",
        "unknown": "unknown",
    }.get(run.git_state, f"{run.git_commit} on {run.git_branch} ({run.git_state})")
    console.print(f"code: {code}" + (f", tag {run.git_tag}" if run.git_tag else ""))
    if run.git_diff_sha256:
        console.print(f"dirty diff: artifact {run.git_diff_sha256}")
    if snapshot:
        console.print(
            f"data: snapshot {snapshot.id} of {snapshot.dataset} ({snapshot.patterns} "
            f"patterns as of {timestamps.iso(timestamps.to_us(snapshot.as_of))}), "
            f"digest {snapshot.digest}"
        )
    for title, values in (("param", run.params), ("tag", run.tags), ("metric", run.metrics)):
        if values:
            table = Table(title, "value", title_justify="left")
            for k, v in sorted(values.items()):
                table.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
            console.print(table)
