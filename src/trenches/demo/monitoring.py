"""Monitoring: the quiet window, then a new device's drifted traffic; the drift is
found, its rows labelled, and the loop retrains and lets the gates decide."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import trenches
from trenches.demo.narration import say
from trenches.demo.serving import serving

MONITOR = """
# Drift monitoring (see docs/monitoring.md): the defaults, written out.
[monitor]
alpha = 0.05        # false discovery rate of the p-value tests, over all columns
wasserstein = 0.1   # normalised Wasserstein distance (large samples)
psi = 0.25

# The continuous-training loop (see docs/retraining.md).
[retrain.cancer-clf]
train = "retrain_cancer:fit"
weighting = "exponential"
half-life-days = 90
"""

TRAINING_MODULE = '''\
"""The demo's training function: trenches retrain calls it with a snapshot's training
data (X, y, sample_weight with recency weights, pattern_ids)."""

from sklearn.ensemble import RandomForestClassifier


def fit(data):
    model = RandomForestClassifier(n_estimators=200, random_state=0)
    return model.fit(data.X, data.y, sample_weight=data.sample_weight)
'''

#: A new imaging device reads textures a third higher than the old one did.
DRIFTED = ("mean_texture", "texture_error", "worst_texture")


def monitor(store: trenches.Store, ds: trenches.Dataset, folder: Path, console: Console) -> None:
    """Monitor the quiet window; send drifted traffic; find the drift; label it; retrain
    with recency weights and let the gates decide."""
    import logging

    # The demo prints the alert itself; `trenches monitor` also logs it to stderr.
    logging.getLogger("trenches.monitoring").addHandler(logging.NullHandler())

    say(
        console,
        "Is production drifting? The requests so far against the training data of the "
        "version that answered them:",
    )
    toml = (folder / "trenches.toml").resolve()
    with toml.open("a", encoding="utf-8") as f:
        f.write(MONITOR)
    (folder / "retrain_cancer.py").write_text(TRAINING_MODULE, encoding="utf-8")
    _show_quiet(store.monitoring.run("cancer-clf@production", path=toml), console)

    say(
        console,
        "A new imaging device goes live: it reads textures a third higher. Its traffic, "
        "and the biopsy results a week later:",
    )
    since, sent, rows = _send_drifted(store, ds)
    console.print(f"  {len(sent)} requests, {rows} rows, each with its biopsy result")
    found = store.monitoring.run("cancer-clf@production", since=since, path=toml)
    _show_drift(found, console)
    unusual = store.monitoring.outliers("cancer-clf@production", since=since, top=3)
    console.print("  the three least usual rows (trenches monitor outliers):")
    for r in unusual.itertuples():
        console.print(f"    {r.request_id} row {r.row}: {escape(r.unusual)}")

    say(
        console,
        "The labelled drifted rows become patterns (source production); the loop retrains "
        "with recency weights (half-life 90 days), checks the gates and compares with "
        "production:",
    )
    made = store.requests.to_patterns(sent)
    console.print(f"  {len(made.created)} new production patterns in dataset cancer")
    import os

    home = Path.cwd()
    repo = folder / "training-code"
    try:
        # The run records (and tags) the training code's repository, not the folder the
        # demo was started from.
        if (repo / ".git").exists():
            os.chdir(repo)
        result = store.retrains.run("cancer-clf", report_id=found.id, path=toml)
    finally:
        os.chdir(home)
    _show_retrain(result, found.id, console)
    if result.candidate is not None and result.production is not None:
        _after_retrain(store, result.production, result.candidate, console)


def _show_quiet(quiet: trenches.Monitored, console: Console) -> None:
    console.print(
        f"  report #{quiet.id}: {quiet.current}; "
        + (
            "[green]no drift[/] in "
            f"{len(quiet.report.columns)} columns (tests: "
            + ", ".join(sorted({c.test for c in quiet.report.columns}))
            + ")"
            if not quiet.drifted
            else f"[red]drift in {', '.join(quiet.report.drifted_columns)}[/]"
        )
    )


def _send_drifted(store: trenches.Store, ds: trenches.Dataset) -> tuple[datetime, list[str], int]:
    """Serve the validation and test patterns with the textures drifted, each request
    followed by its rows' labels as feedback: when the traffic began, the request ids,
    and how many rows they held."""
    import httpx

    ids = ds.pattern_ids("validation")
    frame = ds.patterns(ids=ids.tolist()).sample(frac=1.0, random_state=3)
    more = ds.pattern_ids("test")
    frame = pd.concat([frame, ds.patterns(ids=more.tolist())]).reset_index(drop=True)
    truth = frame.pop("diagnosis")
    for column in DRIFTED:
        frame[column] = frame[column] * 1.35
    since = datetime.now(UTC)
    sent: list[str] = []
    with serving(store) as url, httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, len(frame), 10):
            part = frame.iloc[start : start + 10]
            answer = client.post("/predict", json=part.to_dict(orient="records")).json()
            sent.append(answer["request_id"])
            for row, label in enumerate(truth.iloc[start : start + 10]):
                client.post(
                    "/feedback",
                    json={"request_id": answer["request_id"], "row": row, "label": label},
                )
    return since, sent, len(frame)


def _show_drift(found: trenches.Monitored, console: Console) -> None:
    """The drifted columns, the predictions, the real accuracy and the alert."""
    report = found.report
    table = Table(
        "column",
        "test",
        "statistic",
        "bound",
        "PSI",
        title=f"report #{found.id}: drifted columns of {len(report.columns)}",
        title_justify="left",
    )
    for c in report.columns:
        if c.drifted:
            table.add_row(
                c.name,
                c.test,
                f"{c.statistic:.3g}"
                + (f" (p adj {c.p_adjusted:.2g})" if c.p_adjusted is not None else ""),
                f"p < {report.settings.alpha:g}" if c.p_value is not None else f"{c.threshold:g}",
                f"{c.psi:.3f}" if c.psi is not None else "-",
            )
    console.print(table)
    console.print(f"  {escape(report.columns[0].why)}")
    pred = report.prediction
    if pred is not None:
        console.print(
            f"  predictions: {'[red]drifted[/]' if pred.drifted else 'no drift'} "
            f"({pred.test} {pred.statistic:.3g})"
        )
    if found.metrics:
        window = found.metrics["window"]
        ref = found.metrics.get("reference") or {}
        on_train = ref.get("accuracy", float("nan"))
        console.print(
            f"  accuracy on the {window['labelled']} rows with biopsy results: "
            f"{window['accuracy']:.3f} (on its training data: {on_train:.3f})"
        )
    if found.alert is not None:
        console.print(f"  alert: {escape(found.alert.message)}")


def _show_retrain(result: trenches.Retrain, report_id: int | None, console: Console) -> None:
    """The candidate, its snapshot, each gate, and whether it was promoted."""
    held = (result.details.get("snapshot") or {}).get("held_out", 0)
    console.print(
        f"  retrain #{result.id} (set off by report #{report_id}): candidate "
        f"{result.candidate}, trained on snapshot {result.snapshot_id}"
        + (f", which holds out the {held} patterns of open problems" if held else "")
    )
    for g in result.gates:
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "skip": "[yellow]skip[/]"}
        console.print(f"    {mark[g.status]} {escape(g.gate)}: {escape(g.detail)}")
    if result.figures is not None:
        console.print(f"  {escape(result.figures.why)}")
    if result.promoted:
        console.print(f"  [green]{result.candidate} passed and is better: it is production now[/]")
    else:
        console.print(
            f"  [yellow]{result.candidate} stays a candidate:[/] {escape(result.reason or '')}"
        )


def _after_retrain(
    store: trenches.Store, production: str, candidate: str, console: Console
) -> None:
    """What changed in the data between production's snapshot and the candidate's, and
    which flipped problem patterns it explains."""
    result = store.compare(production, candidate)
    data = result.data
    if data is None:
        return
    say(
        console,
        f"What changed in the data between {production}'s snapshot and {candidate}'s? "
        f"(`trenches data diff {data.a.id} {data.b.id}`)",
    )
    counts = (
        data.summary().groupby(["change", "source", "labelled_by"], dropna=False)["patterns"].sum()
    )
    for (change, source, who), n in counts.items():
        by = f" by {who}" if isinstance(who, str) else ""
        console.print(f"  {n} {change} ({source}{by})")
    for r in data.relabelled.itertuples():
        console.print(
            f"    pattern {r.old_id} -> {r.new_id}: {r.old_label} -> {r.new_label} "
            f"({r.labelled_by}: {r.reason})"
        )
    console.print(
        f"  {len(data.b.held_out)} patterns of open problems are held out of {candidate}'s "
        f"training data ({len(data.a.held_out)} of {production}'s)"
    )
    say(
        console,
        f"`trenches compare {production} {candidate}`: the flips of each problem, and which "
        "of them the data changes explain:",
    )
    for slug, flips in result.problems.items():
        notes = [flips.training_note(production, candidate), flips.change_note()]
        said = "; ".join(n for n in notes if n)
        console.print(
            f"  {slug}: {len(flips.fixed)} fixed, {len(flips.broken)} broken"
            + (f" ({escape(said)})" if said else "")
        )
