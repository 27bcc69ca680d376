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
    """The table the graph draws: :meth:`trenches.Problems.history`."""
    return store.problems.history(dataset)


def write_problem_graph(store: Store, out: str | Path, dataset: str | None = None) -> Path:
    """Draw each problem's score across model versions (of ``dataset``, when given) to
    ``out``: ``.png``, or ``.html`` where clicking a point lists its patterns
    (``trenches report problems``). Returns the path written."""
    path = Path(out)
    table = history(store, dataset)
    if table.empty:
        raise InvalidInput("there is nothing to draw: no problem has a scored model version")
    if path.suffix.lower() == ".png":
        _png(table, path)
    elif path.suffix.lower() in (".html", ".htm"):
        _html(table, path, drill_rows(store, table))
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
        at = [x[v] for v in rows["version"]]
        (line,) = ax.plot(at, rows["held_out_score"], marker="o", label=f"{slug} (held out)")
        ax.plot(
            at,
            rows["score"],
            marker="o",
            fillstyle="none",
            linestyle=":",
            color=line.get_color(),
            label=f"{slug} (all)",
        )
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


def drill_rows(store: Store, table: pd.DataFrame) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """What a click on a point of the graph shows: for each (problem, version) of
    ``table`` (from :func:`history`), one row per pattern of the problem with its
    polarity, its label, the version's prediction, whether it was right, and whether
    the version trained on it."""
    from trenches.patterns import inputs as inp
    from trenches.patterns.frames import read_patterns

    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if table.empty:
        return out
    found_by_ref: dict[str, store_of.Predictions] = {}
    for slug, rows in table.groupby("problem", sort=False):
        problem = store.problems.get(str(slug))
        ds = store.datasets.get(problem.dataset)
        ids = list(problem.patterns())
        frame, _ = read_patterns(ds, ids=ids, full_info=False, with_inputs=False)
        truth = inp.label_to_text(frame[ds.label_column].to_numpy(), ds.label_type or "string")
        labels = dict(zip(frame.index.tolist(), truth, strict=True))
        polarity = {i: "positive" for i in problem.positive} | {
            i: "negative" for i in problem.negative
        }
        for record in rows.itertuples():
            ref = str(record.version)
            if ref not in found_by_ref:
                predictor = store.predictors.resolve(ref)
                with read(store.engine) as conn:
                    found_by_ref[ref] = store_of.read(conn, predictor.id)
            found = found_by_ref[ref]
            right, wrong = set(record.right), set(record.wrong)
            trained = set(record.trained)
            at = np.searchsorted(found.pattern_ids, ids)
            predicted_labels = found.labels
            drill = []
            for pid, i in zip(ids, at, strict=True):
                row: dict[str, Any] = {
                    "id": pid,
                    "polarity": polarity[pid],
                    "label": labels.get(pid),
                    "predicted": None,
                    "probability": None,
                    "right": True if pid in right else (False if pid in wrong else None),
                    "trained": pid in trained,
                }
                if i < len(found.pattern_ids) and found.pattern_ids[i] == pid:
                    if predicted_labels is not None and found.label_index is not None:
                        row["predicted"] = str(predicted_labels[i])
                        if found.scores is not None and not np.isnan(found.scores[i]).any():
                            row["probability"] = float(found.scores[i][found.label_index[i]])
                    elif found.values is not None:
                        row["predicted"] = f"{float(found.values[i]):.6g}"
                drill.append(row)
            out[(str(slug), ref)] = drill
    return out


def figure(
    table: pd.DataFrame, rows: dict[tuple[str, str], list[dict[str, Any]]] | None = None
) -> Any:
    """The graph as a Plotly figure: one line per problem (and the validation accuracy).

    Each problem point carries ``customdata`` = [problem, version, right ids (JSON),
    wrong ids (JSON), drill-down rows (JSON, from :func:`drill_rows`, or ``null``)],
    which :data:`DRILL_SCRIPT` shows on a click.
    """
    import plotly.colors
    import plotly.graph_objects as go

    versions = _order(table)
    fig = go.Figure()
    palette = plotly.colors.qualitative.Plotly
    for k, (slug, group) in enumerate(table.groupby("problem", sort=False)):
        group = group.sort_values("created_at")
        custom = [
            [
                str(slug),
                v,
                orjson.dumps(r).decode(),
                orjson.dumps(w).decode(),
                orjson.dumps(None if rows is None else rows.get((str(slug), v))).decode(),
                _point_text(record),
            ]
            for v, r, w, record in zip(
                group["version"],
                group["right"],
                group["wrong"],
                group.itertuples(),
                strict=True,
            )
        ]
        colour = palette[k % len(palette)]
        # Held out: the patterns each version did not train on, its skill; all: every
        # pattern, memory included. Every version has a point on the "all" line; a
        # version that trained on all of a problem's patterns has none held out.
        for which, column, dash in (
            ("held out", "held_out_score", "solid"),
            ("all", "score", "dot"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=list(group["version"]),
                    y=[None if y != y else y for y in group[column]],
                    mode="lines+markers",
                    name=f"{slug} ({which})",
                    legendgroup=str(slug),
                    line={"color": colour, "dash": dash},
                    marker={"symbol": "circle" if which == "held out" else "circle-open"},
                    customdata=custom,
                    hovertemplate=f"%{{customdata[0]}} on %{{x}}, {which}: %{{y:.0%}}"
                    "<br>%{customdata[5]}<extra></extra>",
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
        # A click on a legend entry hides that line alone, not its problem's pair.
        legend={"groupclick": "toggleitem"},
        title="Problems across model versions: held out (solid) and all patterns (dotted); "
        "click a point for its patterns",
        yaxis={"range": [-0.02, 1.02], "title": "share of the problem's patterns right"},
        xaxis={"categoryorder": "array", "categoryarray": versions, "title": "model version"},
    )
    return fig


def _point_text(record: Any) -> str:
    """What a point's hover says beyond its score: the counts behind it."""
    if record.undefined:
        return str(record.undefined)
    trained = (
        "trained on: unknown (no snapshot)"
        if record.trained_on is None or record.trained_on != record.trained_on
        else f"trained on {int(record.trained_on)} of {record.patterns}"
    )
    text = f"{len(record.right)} of {record.predicted} right; {trained}; {record.held_out} held out"
    if record.tolerance:
        text += f"; right within {record.tolerance}"
    return text


#: Plotly ``post_script`` of the graph (``{plot_id}`` is its div's id): a click on a
#: point fills the element ``{plot_id}-drill`` with the patterns of that problem and
#: version. Text goes in through ``textContent``, never as HTML.
DRILL_SCRIPT = """
var plot = document.getElementById('{plot_id}');
function el(parent, tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) { e.textContent = text; }
  if (cls) { e.className = cls; }
  parent.appendChild(e);
  return e;
}
plot.on('plotly_click', function(data) {
  // Looked up on click: the element may come after the graph in the page, and the
  // graph's script runs before the parser reaches it.
  var drill = document.getElementById('{plot_id}-drill');
  var d = data.points[0].customdata;
  if (!d || !drill) { return; }
  var right = JSON.parse(d[2]), wrong = JSON.parse(d[3]);
  var rows = d.length > 4 ? JSON.parse(d[4]) : null;
  drill.textContent = '';
  el(drill, 'h3', d[0] + ' on ' + d[1] + ': ' + right.length + ' right, ' +
     wrong.length + ' wrong');
  if (!rows) {
    el(drill, 'p', 'right (' + right.length + '): ' + right.join(' '));
    el(drill, 'p', 'wrong (' + wrong.length + '): ' + wrong.join(' '));
    return;
  }
  var explained = rows.some(function(r) { return r.explained; });
  var table = el(drill, 'table');
  var head = el(table, 'tr');
  ['pattern', 'polarity', 'label', 'predicted', 'probability', 'verdict', 'trained on']
    .concat(explained ? ['explanation'] : [])
    .forEach(function(h) { el(head, 'th', h); });
  rows.forEach(function(r) {
    var verdict = r.predicted === null ? 'not predicted' :
      (r.right === null ? '' : (r.right ? 'right' : 'wrong'));
    var tr = el(table, 'tr', null, r.right === false ? 'wrong' : '');
    el(tr, 'td', String(r.id));
    el(tr, 'td', r.polarity);
    el(tr, 'td', r.label);
    el(tr, 'td', r.predicted);
    el(tr, 'td', r.probability === null ? '' : r.probability.toFixed(3));
    el(tr, 'td', verdict);
    el(tr, 'td', r.trained ? 'yes' : '');
    if (!explained) { return; }
    var cell = el(tr, 'td');
    if (r.explained) {
      var a = el(cell, 'a', 'see below');
      a.href = '#' + r.explained;
    }
  });
});
"""


def _html(
    table: pd.DataFrame, path: Path, rows: dict[tuple[str, str], list[dict[str, Any]]]
) -> None:
    body = figure(table, rows).to_html(
        include_plotlyjs=True,
        include_mathjax=False,
        full_html=False,
        div_id="problems",
        post_script=DRILL_SCRIPT,
        config={"displaylogo": False},
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<title>trenches: problems across model versions</title>"
        "<style>body{font-family:system-ui,sans-serif} td,th{padding:2px 8px;text-align:left}"
        " tr.wrong{background:#fde8e8}</style></head><body>"
        f"{body}<div id='problems-drill'><p>{html.escape('Click a point to see the patterns.')}"
        "</p></div></body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
