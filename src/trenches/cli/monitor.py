"""``trenches monitor``: drift of production against the training data, its history,
and the requests least like the reference."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from trenches.cli._output import TRUSTED_HELP, console, err_console, int64, open_store, print_json
from trenches.json_form import to_json

if TYPE_CHECKING:
    from trenches.monitoring.drift import ColumnDrift
    from trenches.monitoring.reports import Alert, Monitored


class _DefaultDrift(TyperGroup):
    """``trenches monitor REF ...`` means ``trenches monitor drift REF ...``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["drift", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultDrift,
    no_args_is_help=True,
    help=(
        "Monitor production: `trenches monitor name@production --window 24h` (short for "
        "`trenches monitor drift ...`) compares the requests of a window with the training "
        "data, column by column and the predictions too, stores the report, alerts, and "
        "exits 1 on drift. "
        "`trenches monitor history` lists the reports; `trenches monitor outliers` ranks "
        "the requests least like the training data."
    ),
)

_WINDOW = typer.Option(
    None, "--window", help="The last span of requests: 30m, 24h, 7d, 2w (until now)."
)
_SINCE = typer.Option(None, "--since", help="Requests from this time (ISO 8601, or 3d).")
_UNTIL = typer.Option(None, "--until", help="Requests before this time (default: now).")
_CURRENT = typer.Option(
    None,
    "--current",
    help="Compare a file of production inputs (CSV, Parquet, JSON lines) instead of logged "
    "requests; a label column, if present, gives the real metrics.",
)
_REFERENCE = typer.Option(
    "train",
    "--reference",
    help="What production is compared with: train (default), validation, test or all of the "
    "snapshot the version was trained on, or SNAPSHOT[:split].",
)
_CONFIG = typer.Option(
    None, "--config", help="The trenches.toml with [monitor] thresholds (default: the nearest)."
)
_TRUSTED = typer.Option(False, "--trusted", help=TRUSTED_HELP)


def _figure(c: ColumnDrift) -> str:
    if c.statistic is None or c.statistic != c.statistic:  # NaN
        return "-"
    if c.p_value is not None:
        adjusted = f" (adj {c.p_adjusted:.3g})" if c.p_adjusted is not None else ""
        return f"{c.statistic:.3g}, p {c.p_value:.3g}{adjusted}"
    return f"{c.statistic:.3g}"


def _missing(c: ColumnDrift) -> str:
    if c.missing_reference == 0 and c.missing_current == 0:
        return "0%"
    return f"{c.missing_reference:.1%} -> {c.missing_current:.1%}"


def _show(found: Monitored) -> None:
    report = found.report
    rows = [*report.columns, *([report.prediction] if report.prediction else [])]
    console.print(_drift_table(found, rows))
    _show_notes(found, rows)
    if found.metrics:
        _show_feedback_metrics(found.metrics)
    if report.drifted:
        console.print(
            f"[bold red]drift: {len(report.drifted_columns)} of {len(report.columns)} columns"
            + (
                ", and the predictions"
                if report.prediction is not None and report.prediction.drifted
                else ""
            )
            + "[/]"
        )
    else:
        console.print(f"[green]no drift in {len(report.columns)} columns[/]")
    if found.alert is not None:
        _show_alert(found.alert)
    if found.id is not None:
        console.print(f"[dim]report #{found.id}[/]")


def _drift_table(found: Monitored, rows: list[ColumnDrift]) -> Table:
    """A row per column (and the predictions): the test, its figure and bound, PSI,
    missing rates and the verdict."""
    alpha = found.report.settings.alpha
    table = Table(
        "column",
        "kind",
        "test",
        "statistic",
        "bound",
        "PSI",
        "missing",
        "drift",
        title=f"drift of {found.version}: {found.current}",
        caption=f"against the {found.reference}",
        title_justify="left",
        caption_justify="left",
    )
    for c in rows:
        bound = f"p < {alpha:g}" if c.test in ("ks", "chi2") else f"{c.threshold:g}"
        table.add_row(
            escape(c.name),
            c.kind,
            c.test,
            _figure(c),
            bound if c.test != "none" else "-",
            f"{c.psi:.3g}" if c.psi is not None else "-",
            _missing(c),
            "[bold red]DRIFT[/]" if c.drifted else "[green]ok[/]",
        )
    return table


def _show_notes(found: Monitored, rows: list[ColumnDrift]) -> None:
    """Why each test was chosen, what drifted and why, unseen categories, and the
    columns not compared."""
    report = found.report
    tests = sorted({c.why for c in rows if c.test != "none"})
    for why in tests:
        console.print(f"  [dim]{escape(why)}[/]")
    for c in rows:
        for reason in c.reasons:
            console.print(f"  [red]{escape(c.name)}[/]: {escape(reason)}")
        if c.unseen and not c.reasons:
            console.print(
                f"  [dim]{escape(c.name)}: {len(c.unseen)} categories unseen in the reference "
                f"({c.unseen_share:.1%} of values, {c.unseen_expected:.1%} expected)[/]"
            )
    if report.extra:
        console.print(f"  [dim]not in the reference, not compared: {', '.join(report.extra)}[/]")
    if report.ignored:
        console.print(f"  [dim]ignored by trenches.toml: {', '.join(report.ignored)}[/]")


def _show_feedback_metrics(metrics: dict[str, Any]) -> None:
    window = metrics["window"]
    ref = metrics.get("reference") or {}
    shown = ", ".join(
        f"{k} {v:.3f}" + (f" (reference {ref[k]:.3f})" if k in ref else "")
        for k, v in window.items()
        if k != "labelled"
    )
    console.print(
        f"  with feedback labels on {window['labelled']} rows: {shown}; reference: "
        f"{escape(metrics['reference_set'])}"
    )


def _show_alert(a: Alert) -> None:
    if a.webhook is None:
        console.print("  alert logged (no webhook in trenches.toml)")
    elif a.delivered:
        console.print(f"  alert posted to {escape(a.webhook)}")
    else:
        console.print(
            f"  [yellow]alert not delivered to {escape(a.webhook)} after {a.attempts} "
            f"attempts: {escape(a.error or '')}[/] (kept with the report)"
        )


@app.command("drift")
def drift_command(
    ref: str = typer.Argument(..., help="The version watched: name@production, name@3."),
    window: str = _WINDOW,
    since: str = _SINCE,
    until: str = _UNTIL,
    current: Path = _CURRENT,
    reference: str = _REFERENCE,
    config: Path = _CONFIG,
    retrain: bool = typer.Option(
        False, "--retrain", help="When drift is found, run `trenches retrain` for the model."
    ),
    trusted: bool = _TRUSTED,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare production with the training data: each input column with the test its
    type and the sample sizes call for (shown), PSI, missing rates and unseen
    categories; the predictions; and, where feedback gave labels, the real metrics.

    A window of 5,000,000 rows or more is read part by part and compared by the parts'
    merged sketches, on the Dask cluster of [compute] scheduler (or
    TRENCHES_DASK_SCHEDULER) when one is set: the same figures, the Wasserstein
    distance within a bound the report states (docs/monitoring.md).

    Exit status: 0 no drift, 1 drift found (an alert is logged and posted to the
    webhook of trenches.toml), 2 bad arguments.

    Examples: `trenches monitor drift cancer-clf@production --window 24h` (or just
    `trenches monitor cancer-clf@production --window 24h`), `trenches monitor
    cancer-clf@production --current week-46.parquet --json`
    """
    with open_store(settings=config) as store:
        window_of: dict[str, Any] = {
            "window": window,
            "since": since,
            "until": until,
            "current": current,
            "reference": reference,
            "trusted": trusted,
        }
        retrained: Any = None
        if not retrain:
            found = store.monitoring.run(ref, **window_of)
            if not as_json:
                _show(found)
        else:
            from trenches.cli.retrain import _Display
            from trenches.cli.retrain import _show as show_retrain

            def heard(report: Monitored) -> None:
                if not as_json:
                    _show(report)
                    if report.drifted:
                        console.print(
                            f"\nretraining {ref.split('@')[0]}, set off by report #{report.id}"
                        )

            with _Display(quiet=as_json) as display:
                done = store.retrains.on_drift(ref, **window_of, on_report=heard, progress=display)
            found, retrained = done.report, done.retrain
            if retrained is not None and not as_json:
                show_retrain(retrained)
    if as_json:
        out = to_json(found)
        if retrained is not None:
            out["retrain"] = to_json(retrained)
        print_json(out)
    if found.drifted:
        raise typer.Exit(1)


@app.command("history")
def history(
    model: str = typer.Argument(None, help="A model name or version (default: every model)."),
    limit: int = typer.Option(
        50, "--limit", min=0, callback=int64, help="At most this many reports, newest first."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The drift reports over time, newest first: the window, what drifted, the alert,
    and the retraining each one set off.

    Example: `trenches monitor history cancer-clf --limit 10`
    """
    with open_store() as store:
        found = store.monitoring.history(model, limit=limit)
    if as_json:
        print_json(to_json(found))
        return
    if not found:
        console.print("no drift reports yet; run `trenches monitor name@production`")
        return
    table = Table("report", "when", "version", "rows", "drifted", "alert", "retrain")
    for f in found:
        r = f.report
        drifted = ", ".join(r.drifted_columns[:5]) + (", ..." if len(r.drifted_columns) > 5 else "")
        if r.prediction is not None and r.prediction.drifted:
            drifted = (drifted + ", " if drifted else "") + "predictions"
        alert = "-"
        if f.alert is not None:
            alert = (
                "logged"
                if f.alert.webhook is None
                else "posted"
                if f.alert.delivered
                else "[yellow]not delivered[/]"
            )
        retrain = ", ".join(
            f"#{x['id']} {x['status']}" + (f" @{x['version']}" if x["version"] else "")
            for x in f.retrains
        )
        table.add_row(
            f"#{f.id}",
            f"{f.created_at:%Y-%m-%d %H:%M}",
            f.version,
            f"{r.current_rows:,}",
            f"[red]{escape(drifted)}[/]" if r.drifted else "[green]none[/]",
            alert,
            retrain or "-",
        )
    console.print(table)


@app.command("outliers")
def outliers(
    ref: str = typer.Argument(..., help="The version watched: name@production, name@3."),
    window: str = _WINDOW,
    since: str = _SINCE,
    until: str = _UNTIL,
    current: Path = _CURRENT,
    reference: str = _REFERENCE,
    top: int = typer.Option(20, "--top", min=1, callback=int64, help="How many rows to show."),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="The isolation forest's random seed."
    ),
    trusted: bool = _TRUSTED,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The logged rows least like the training data, strangest first (an isolation
    forest fitted on the reference), with the inputs that stand out. Label them with
    `trenches requests feedback ID --row N --label ...` and make them patterns of a
    problem with `trenches requests to-patterns ID --problem SLUG`.

    Example: `trenches monitor outliers cancer-clf@production --window 7d --top 10`
    """
    with open_store() as store:
        found = store.monitoring.outliers(
            ref,
            window=window,
            since=since,
            until=until,
            current=current,
            reference=reference,
            top=top,
            seed=seed,
            trusted=trusted,
        )
    if as_json:
        print_json(
            [
                {
                    **{k: v for k, v in row.items() if k != "received_at"},
                    "received_at": row["received_at"].isoformat()
                    if row["received_at"] is not None
                    else None,
                }
                for row in found.to_dict(orient="records")
            ]
        )
        return
    if not len(found):
        err_console.print("no requests in that window")
        return
    table = Table("request", "row", "score", "what stands out", title=f"{len(found)} least usual")
    for row in found.itertuples():
        table.add_row(
            str(row.request_id) if row.request_id is not None else "-",
            str(row.row),
            f"{row.score:.3f}",
            escape(row.unusual),
        )
    console.print(table)
