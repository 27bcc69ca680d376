"""Problems: known failure modes go into the problem database and every version is
backfilled on them; the expert later corrects crowd labels production learnt, and they
make a trainable problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import trenches
from trenches.demo.narration import say


def problems(store: trenches.Store, ds: trenches.Dataset, folder: Path, console: Console) -> None:
    """Three known failure modes, backfilled over every version; the per-problem table,
    a comparison of the last two versions, and the graph."""
    say(
        console,
        "Known failure modes go into the problem database; every version is "
        "backfilled on their patterns.",
    )
    frame = ds.patterns()
    label = frame["diagnosis"]
    radius, texture = frame["mean_radius"], frame["worst_texture"]
    plans = [
        (
            "small-malignant",
            "Misses small malignant tumours",
            "high",
            frame.index[(label == "malignant") & (radius < 13.5)][:8],
            frame.index[(label == "benign") & (radius < 13.5)][:5],
        ),
        (
            "large-benign",
            "Calls large benign tumours malignant",
            "medium",
            frame.index[(label == "benign") & (radius > 15)][:8],
            frame.index[(label == "malignant") & (radius > 15)][:5],
        ),
        (
            "rough-texture",
            "Unsure on very rough textures",
            "low",
            frame.index[texture > texture.quantile(0.9)][:12],
            frame.index[:0],
        ),
    ]
    for slug, title, severity, positive, negative in plans:
        store.problems.create(slug, dataset="cancer", title=title, severity=severity)
        result = store.problems.add(slug, positive=list(positive), negative=list(negative))
        console.print(
            f"  {slug}: {len(positive)} positive and {len(negative)} negative patterns; "
            f"{result.predicted} predictions from {result.versions} versions"
        )
    done = store.backfill(dataset="cancer")
    console.print(
        f"  and on the validation and test splits: {done.computed} more predictions by "
        f"{done.versions} versions (`trenches backfill`), so every version stands on the "
        "same patterns"
    )
    validation = ds.pattern_ids("validation")
    table = store.problems.history("cancer")
    versions = list(dict.fromkeys(table.sort_values("created_at")["version"]))
    shown = Table(
        "problem",
        *versions,
        title="each problem's patterns right: all of them · held out (not trained on)",
        title_justify="left",
    )
    for slug, rows in table.groupby("problem", sort=False):
        by = {r.version: r for r in rows.itertuples()}
        shown.add_row(str(slug), *(_score_cell(by[v]) for v in versions))
    accuracy = table.drop_duplicates("version").set_index("version")["validation_accuracy"]
    shown.add_row(
        f"[dim]accuracy on cancer:validation ({len(validation)})[/]",
        *(f"{accuracy[v]:.1%}" for v in versions),
    )
    console.print(shown)
    newest = table[(table["version"] == versions[-1]) & (table["problem"] == "small-malignant")]
    row = newest.iloc[0]
    console.print(
        f"  {versions[-1]} trained on {int(row.trained_on)} of the {row.patterns} small-malignant "
        f"patterns: its {row.score:.0%} over all of them is partly memory. Gates measure the "
        "held-out ones, and new snapshots hold the open problems' patterns out of training, "
        "so the next model is scored on what it did not see."
    )
    versions = [v.ref for v in store.models.versions("cancer-clf")]
    diff = store.compare(versions[-2], versions[-1])
    console.print(
        f"  {versions[-2]} -> {versions[-1]} on {diff.overall.size} shared patterns: "
        f"{len(diff.fixed)} fixed, {len(diff.broken)} broken "
        f"(McNemar p = {diff.overall.p_value:.2g}); accuracy "
        f"{diff.deltas.get('accuracy', float('nan')):+.3f}"
    )
    for slug, flips in diff.problems.items():
        if flips.fixed or flips.broken:
            console.print(f"    {slug}: fixed {list(flips.fixed)}, broken {list(flips.broken)}")
    html = trenches.write_problem_graph(store, folder / "problems.html", "cancer")
    png = trenches.write_problem_graph(store, folder / "problems.png", "cancer")
    console.print(f"  the graph: {html.resolve()} (click a point) and {png.name}")


def _score_cell(row: Any) -> str:
    """``100% · 1/1``: the share right over all of a problem's patterns, and right of
    those held out (not trained on) by the version."""
    return f"{row.score:.0%} · {row.held_out_right}/{row.held_out}"


def review(
    store: trenches.Store, ds: trenches.Dataset, crowd_flipped: list[int], console: Console
) -> None:
    """The expert reviews crowd labels that production learnt wrong; the corrected
    patterns make a trainable problem, so the next model may learn them."""
    say(
        console,
        "The expert reviews crowd labels in the training data that production learnt "
        "as the crowd gave them:",
    )
    production = store.models.get("cancer-clf@production")
    info = ds.pattern_info()
    in_problems = {i for p in store.problems.list() for i in p.patterns()}
    candidates = [
        i
        for i in crowd_flipped
        if i in info.index and info.loc[i, "split"] == "train" and i not in in_problems
    ]
    frame = ds.patterns(ids=candidates)
    said = store.models.load(production.ref).predict(frame.drop(columns="diagnosis"))
    learnt = frame.index[said == frame["diagnosis"].to_numpy()][:3].tolist()
    corrected = []
    for pid in learnt:
        wrong = frame.loc[pid, "diagnosis"]
        right = "benign" if wrong == "malignant" else "malignant"
        new = store.patterns.relabel(
            pid, right, source="expert", labelled_by="dr.house", reason="biopsy review"
        )
        corrected.append(new.id)
        console.print(
            f"  pattern {pid}: the crowd said {wrong}, the biopsy {right}; {production.ref} "
            f"learnt {wrong}. Relabelled as pattern {new.id}"
        )
    if not corrected:
        console.print("  production learnt none of the crowd's wrong labels")
        return
    store.problems.create(
        "crowd-mistakes",
        dataset="cancer",
        title="Crowd labels the expert corrected",
        severity="medium",
        trainable=True,
    )
    store.problems.add("crowd-mistakes", positive=corrected)
    console.print(
        f"  they make problem crowd-mistakes, marked trainable: unlike the other open "
        f"problems, new snapshots keep its {len(corrected)} patterns in the training data, "
        "so the next model can learn the right labels"
    )
