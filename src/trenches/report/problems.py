"""The problem graph: each problem's score across model versions, in creation order.

PNG through matplotlib; HTML through Plotly with its JavaScript embedded (it opens
offline), where clicking a point lists the patterns that version got right and wrong.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from trenches import predictions as store_of
from trenches.db.engine import read
from trenches.errors import InvalidInput

if TYPE_CHECKING:
    from trenches.store import Store


def history(store: Store, dataset: str | None = None) -> pd.DataFrame:
    """One row per (problem, model version): scores, counts, the patterns right and wrong,
    and the version's validation accuracy when it has predicted the whole split."""
    from trenches.evaluation import evaluate, resolve_predictor, split_set

    records: list[dict[str, Any]] = []
    problems = store.problems.list(dataset=dataset)
    accuracy: dict[str, float] = {}
    for problem in problems:
        ds = store.datasets.get(problem.dataset)
        pos = np.array(problem.positive, dtype=np.int64)
        neg = np.array(problem.negative, dtype=np.int64)
        for ref, created in store.problems._version_refs(ds.id):
            predictor = resolve_predictor(store, ref)
            with read(store.engine) as conn:
                found = store_of.read(conn, predictor.id)
            if ref not in accuracy:
                name, ids = split_set(ds, "validation")
                try:
                    accuracy[ref] = evaluate(store, ref, ids, name).metrics.get(
                        "accuracy", float("nan")
                    )
                except InvalidInput:
                    accuracy[ref] = float("nan")  # not evaluated on validation (yet)
            right_ids: list[int] = []
            wrong_ids: list[int] = []
            counts = []
            for ids in (pos, neg):
                have = ids[np.isin(ids, found.pattern_ids)]
                ok = (
                    found.correct[np.searchsorted(found.pattern_ids, have)]
                    if found.correct is not None
                    else np.zeros(len(have), dtype=bool)
                )
                right_ids += have[ok].tolist()
                wrong_ids += have[~ok].tolist()
                counts.append((int(ok.sum()), len(have)))
            total = counts[0][1] + counts[1][1]
            records.append(
                {
                    "problem": problem.slug,
                    "title": problem.title,
                    "status": problem.status,
                    "version": ref,
                    "created_at": pd.Timestamp(created),
                    "score": (counts[0][0] + counts[1][0]) / total if total else np.nan,
                    "positive_score": counts[0][0] / counts[0][1] if counts[0][1] else np.nan,
                    "negative_score": counts[1][0] / counts[1][1] if counts[1][1] else np.nan,
                    "patterns": len(pos) + len(neg),
                    "predicted": total,
                    "right": sorted(right_ids),
                    "wrong": sorted(wrong_ids),
                    "validation_accuracy": accuracy[ref],
                }
            )
    columns = [
        "problem",
        "title",
        "status",
        "version",
        "created_at",
        "score",
        "positive_score",
        "negative_score",
        "patterns",
        "predicted",
        "right",
        "wrong",
        "validation_accuracy",
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def write_graph(store: Store, out: str | Path, dataset: str | None = None) -> Path:
    """Write the graph to ``out`` (``.png`` or ``.html``)."""
    path = Path(out)
    table = history(store, dataset)
    if table.empty:
        raise InvalidInput("there is nothing to draw: no problem has a scored model version")
    if path.suffix.lower() == ".png":
        _png(table, path)
    elif path.suffix.lower() in (".html", ".htm"):
        _html(table, path)
    else:
        raise InvalidInput(f"{path}: the graph is written as .png or .html")
    return path


def _order(table: pd.DataFrame) -> list[str]:
    firsts = table.groupby("version")["created_at"].min().sort_values()
    return list(firsts.index)


def _png(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions = _order(table)
    x = {v: i for i, v in enumerate(versions)}
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(versions) + 3), 4.5))
    for slug, rows in table.groupby("problem", sort=False):
        rows = rows.sort_values("created_at")
        ax.plot([x[v] for v in rows["version"]], rows["score"], marker="o", label=slug)
    acc = table.drop_duplicates("version").set_index("version")["validation_accuracy"]
    if acc.notna().any():
        ax.plot(
            [x[v] for v in versions],
            [acc.get(v) for v in versions],
            "k--",
            marker="s",
            label="validation accuracy",
        )
    ax.set_xticks(range(len(versions)), versions, rotation=30, ha="right")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("share of the problem's patterns right")
    ax.set_title("Problems across model versions")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _html(table: pd.DataFrame, path: Path) -> None:
    import plotly.graph_objects as go

    versions = _order(table)
    fig = go.Figure()
    for slug, rows in table.groupby("problem", sort=False):
        rows = rows.sort_values("created_at")
        fig.add_trace(
            go.Scatter(
                x=list(rows["version"]),
                y=list(rows["score"]),
                mode="lines+markers",
                name=str(slug),
                customdata=[
                    [str(slug), v, orjson.dumps(r).decode(), orjson.dumps(w).decode()]
                    for v, r, w in zip(rows["version"], rows["right"], rows["wrong"], strict=True)
                ],
                hovertemplate="%{customdata[0]} on %{x}: %{y:.0%}<extra></extra>",
            )
        )
    acc = table.drop_duplicates("version").set_index("version")["validation_accuracy"]
    if acc.notna().any():
        fig.add_trace(
            go.Scatter(
                x=versions,
                y=[acc.get(v) for v in versions],
                mode="lines+markers",
                name="validation accuracy",
                line={"dash": "dash", "color": "black"},
            )
        )
    fig.update_layout(
        title="Problems across model versions (click a point for its patterns)",
        yaxis={"range": [-0.02, 1.02], "title": "share of the problem's patterns right"},
        xaxis={"categoryorder": "array", "categoryarray": versions, "title": "model version"},
    )
    script = """
var plot = document.getElementsByClassName('plotly-graph-div')[0];
plot.on('plotly_click', function(data) {
  var d = data.points[0].customdata;
  if (!d) { return; }
  var right = JSON.parse(d[2]), wrong = JSON.parse(d[3]);
  document.getElementById('drill').innerHTML =
    '<h3>' + d[0] + ' on ' + d[1] + '</h3>' +
    '<p><b>right (' + right.length + '):</b> ' + right.join(' ') + '</p>' +
    '<p><b>wrong (' + wrong.length + '):</b> ' + wrong.join(' ') + '</p>';
});
"""
    body = fig.to_html(include_plotlyjs=True, full_html=False, post_script=script)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<title>trenches: problems across model versions</title></head><body>"
        f"{body}<div id='drill'><p>{html.escape('Click a point to see the patterns.')}</p>"
        "</div></body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
