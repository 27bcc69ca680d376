"""``trenches demo``: a small project built from scikit-learn's breast-cancer data.

Patterns arrive over four simulated months from an expert and from a noisy crowd;
a few duplicates, conflicting labels and near-copies across splits are planted;
a snapshot freezes the data, and the quality report finds what was planted. Models
are trained, checked, explained, served, monitored and retrained from there.

The demo is a user of trenches like any other: it imports only ``trenches`` and the
names of ``trenches.__all__`` (a test holds it to that), each chapter a module here.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

import trenches
from trenches.demo.data import grow
from trenches.demo.gates import explain, gates
from trenches.demo.monitoring import monitor
from trenches.demo.narration import say
from trenches.demo.problems import problems, review
from trenches.demo.serving import serve
from trenches.demo.training import train_versions

__all__ = ["run"]


def run(folder: Path, console: Console) -> None:
    """Build the demo project in ``folder`` and tell its story on ``console``."""
    folder.mkdir(parents=True, exist_ok=True)
    store = trenches.open(folder / ".trenches")
    if "cancer" in store.datasets:
        console.print(
            f"a demo project exists in {folder.resolve()} already; run the demo in an empty folder"
        )
        store.close()
        return
    data = grow(store, console)
    ds, crowd_flipped, new_id = data.dataset, data.crowd_flipped, data.relabelled
    train_versions(store, ds, folder, console)
    problems(store, ds, folder, console)
    production = gates(store, folder, console)
    explain(store, console)
    serve(store, ds, folder, console)
    review(store, ds, crowd_flipped, console)
    monitor(store, ds, folder, console)
    _report(store, folder, console)
    say(
        console,
        "Next: `trenches data show cancer`, `trenches data check cancer --json`, "
        f"`trenches data history {new_id}`, `trenches runs list`, `trenches models show "
        f"cancer-clf`, `trenches lineage {production}`, `trenches problems show "
        f"small-malignant`, `trenches check {production} --junit gates.xml`, "
        f"`trenches explain {production} --problem small-malignant`, `trenches serve "
        f"{production.split('@')[0]}@production`, `trenches requests list`, `trenches monitor "
        "history`, `trenches retrain cancer-clf --history`, `trenches compare "
        f"{production} cancer-clf@5`, `trenches predictions export {production} --patterns "
        "validation --out predictions.parquet`, open report.html, "
        f"in {folder.resolve()}. To see it all in a browser: `trenches users add me "
        "--admin`, then `trenches server` and open http://127.0.0.1:8000/ (docs/ui.md).",
    )
    store.close()


def _report(store: trenches.Store, folder: Path, console: Console) -> None:
    """The report: everything above in one HTML file."""
    say(console, "Everything above in one file that opens offline: the report.")
    path = trenches.write_report(store, folder / "report.html")
    console.print(
        f"  {path.resolve()} ({path.stat().st_size / 1e6:.1f} MB, Plotly embedded): metric "
        "over time, problems with drill-down, gate checks, the two newest versions "
        "compared, explanations, data quality"
    )
