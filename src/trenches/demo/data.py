"""The data: patterns arrive over four months from an expert and a noisy crowd; a few
duplicates, conflicting labels and near-copies across splits are planted; the expert
relabels one crowd label; snapshots freeze the data, and the quality report finds what
was planted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import trenches
from trenches.demo.narration import say

MONTHS = ["2026-01-15", "2026-02-15", "2026-03-15", "2026-04-15"]


def cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"])
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame


@dataclass(frozen=True)
class Data:
    """What the data chapter leaves for the later ones."""

    dataset: trenches.Dataset
    #: The crowd labels flipped on purpose.
    crowd_flipped: list[int]
    #: The pattern the expert's relabel made.
    relabelled: int


def grow(store: trenches.Store, console: Console) -> Data:
    """The dataset grows over four months, with mistakes planted; a relabel, snapshots
    and the quality report."""
    rng = np.random.default_rng(7)
    frame = cancer()
    order = rng.permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)

    say(console, f"A store in {store.location.sqlite_path}: SQLite, WAL, with Alembic migrations.")
    # A fixed salt, so that the demo tells the same story (the same splits) every time.
    ds = store.datasets.create(
        "cancer", task="classification", label="diagnosis", salt="7472656e636865732d64656d6f2d3031"
    )
    console.print(
        "Created dataset [bold]cancer[/]: 30 numeric inputs, label 'diagnosis' "
        "(malignant / benign); the schema is inferred from the first import."
    )

    say(console, "Patterns arrive over four months: most from an expert, some from a noisy crowd.")
    crowd_flipped = _arrive(ds, frame, rng, console)

    say(console, "Some mistakes creep in, as they do: we plant them to see them found.")
    _plant_mistakes(ds, frame, console)

    say(
        console,
        "The expert reviews one crowd label; patterns are immutable, so the old "
        "one is kept and the new one points back to it.",
    )
    info = ds.pattern_info()
    crowd_ids = info.index[info["source"] == "crowd"].to_numpy()
    pid = int(crowd_ids[0])
    old = store.patterns.get(pid)
    new_label = "benign" if old.label == "malignant" else "malignant"
    new = store.patterns.relabel(
        pid, new_label, source="expert", labelled_by="dr.house", reason="second opinion"
    )
    history = store.patterns.history(new.id)
    for p in history.patterns:
        state = "active" if p.active else f"deactivated {p.deactivated_at:%Y-%m-%d}"
        console.print(f"  pattern {p.id}: {p.label} by {p.source} ({state})")

    say(console, "Snapshots freeze what a model trains on, with a content digest.")
    snap_all = ds.snapshot(note="all sources")
    snap_march = ds.snapshot(as_of="2026-03-31", sources=["expert"], note="expert, Q1")
    rebuilt = snap_march.verify()
    for s in (snap_all, snap_march):
        console.print(
            f"  snapshot {s.id}: {s.patterns} patterns as of {s.as_of:%Y-%m-%d}"
            f"{' from ' + ', '.join(s.sources) if s.sources else ''}, digest {s.digest[:16]}..."
        )
    console.print(
        f"  rebuilt from timestamps alone, snapshot {snap_march.id} gives the same "
        f"digest: {rebuilt}"
    )
    X, _y, w, ids = snap_all.training_data("train", weighting="exponential", half_life_days=60)
    months = ds.pattern_info().loc[ids, "created_at"].dt.strftime("%Y-%m").to_numpy()
    by_month = pd.Series(w).groupby(months).mean()
    console.print(
        f"  training data: X {X.shape[0]}x{X.shape[1]}; recency weights (half-life 60 days) "
        "by month of arrival: " + ", ".join(f"{m} {v:.2f}" for m, v in by_month.items())
    )

    summary = ds.summary()
    table = Table("split", "patterns", title="cancer, active patterns", title_justify="left")
    for k, v in summary.by_split.items():
        table.add_row(k, str(v))
    console.print(table)

    say(console, f"The quality report on snapshot {snap_all.id} finds what was planted.")
    report = ds.check(snapshot=snap_all.id)
    console.print(_quality_table(report))
    label_errors = set(report.finding("label-errors").pattern_ids)
    caught = len(label_errors & set(crowd_flipped))
    console.print(
        f"  confident learning caught {caught} of the {len(crowd_flipped)} labels the crowd "
        f"got wrong on purpose; {len(label_errors) - caught} more are worth a look"
    )
    return Data(ds, crowd_flipped, new.id)


def _arrive(
    ds: trenches.Dataset, frame: pd.DataFrame, rng: np.random.Generator, console: Console
) -> list[int]:
    """Import ``frame`` month by month, a quarter from the crowd with about one label in
    eight flipped: the ids of the flipped ones."""
    batches = np.array_split(np.arange(len(frame)), len(MONTHS))
    crowd_flipped: list[int] = []
    for month, rows in zip(MONTHS, batches, strict=True):
        part = frame.iloc[rows]
        n_crowd = len(part) // 4
        expert, crowd = part.iloc[n_crowd:], part.iloc[:n_crowd].copy()
        # The crowd gets about one label in eight wrong.
        flip = rng.random(len(crowd)) < 0.12
        crowd.loc[flip, "diagnosis"] = crowd.loc[flip, "diagnosis"].map(
            {"malignant": "benign", "benign": "malignant"}
        )
        when = datetime.fromisoformat(month).replace(tzinfo=UTC)
        r1 = ds.add(expert, source="expert", labelled_by="dr.house", created_at=when)
        r2 = ds.add(crowd, source="crowd", labelled_by="crowd-vendor", created_at=when)
        crowd_flipped += [r2.pattern_ids[int(i)] for i in np.flatnonzero(flip)]
        console.print(
            f"  {month}: {r1.rows} expert + {r2.rows} crowd patterns "
            f"(ids {r1.first_id}-{r2.last_id})"
        )
    return crowd_flipped


def _plant_mistakes(ds: trenches.Dataset, frame: pd.DataFrame, console: Console) -> None:
    """Exact duplicates, conflicting labels and near-copies across splits."""
    planted_at = datetime.fromisoformat("2026-05-15").replace(tzinfo=UTC)
    # Rows 200-260 came from the expert in February (the crowd's share comes first).
    dupes = frame.iloc[200:204]
    conflicts = frame.iloc[210:213].copy()
    conflicts["diagnosis"] = conflicts["diagnosis"].map(
        {"malignant": "benign", "benign": "malignant"}
    )
    # Near-copies (the 9th significant digit differs) that the split hash sends to another
    # split than their original: leakage a plain duplicate check would miss.
    near = _near_copies_in_other_splits(ds, frame.iloc[220:400], want=3)
    ds.add(
        dupes,
        source="expert",
        labelled_by="dr.house",
        created_at=planted_at,
        note="re-sent by the hospital",
    )
    ds.add(conflicts, source="crowd", labelled_by="crowd-vendor", created_at=planted_at)
    ds.add(
        near, source="crowd", labelled_by="crowd-vendor", created_at=planted_at, note="re-measured"
    )
    console.print(
        f"  {len(dupes)} exact duplicates, {len(conflicts)} inputs with a conflicting label, "
        f"{len(near)} near-copies in another split"
    )


def _near_copies_in_other_splits(
    ds: trenches.Dataset, candidates: pd.DataFrame, want: int
) -> pd.DataFrame:
    """Copies of candidates nudged in the 9th digit that the split hash puts elsewhere."""
    out = []
    for i in range(len(candidates)):
        row = candidates.iloc[[i]]
        copy = row.copy()
        copy["mean_radius"] = copy["mean_radius"] * (1 + 1e-8)
        a, b = ds.split_of(pd.concat([row, copy]))
        if a != b:
            out.append(copy)
        if len(out) == want:
            break
    return pd.concat(out) if out else candidates.iloc[:0]


def _quality_table(report: trenches.QualityReport) -> Table:
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
