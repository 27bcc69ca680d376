"""The report: one self-contained HTML file with the state of a store's models.

Sections: the metric of each version over time, the per-problem graph with its
drill-down to patterns, the latest gate check of each version, a comparison of the
two newest versions of each model, the explanations stored for problem patterns,
the data quality of each dataset's newest snapshot, and production: the drift
reports of each model, the one that found drift column by column, and the
retraining passes.

The file opens offline: Plotly's JavaScript is embedded once, the CSS is inline,
nothing refers to anything outside the file, and a Content-Security-Policy forbids
the page every network request, should a figure or a stored string ever try one.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from trenches.errors import InvalidInput

if TYPE_CHECKING:
    from trenches.explain import Explanation
    from trenches.models.registry import ModelVersion
    from trenches.monitoring.drift import ColumnDrift
    from trenches.monitoring.monitor import Alert, Monitored
    from trenches.patterns.datasets import Dataset
    from trenches.retrain.record import Retrain
    from trenches.store import Store

#: Nothing but the page itself: inline scripts and styles, data: and blob: images
#: (Plotly's "download as PNG" draws through them). No fetch, font, frame or image
#: from anywhere else.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'"
)
#: Plotly's configuration for every figure: no logo linking to plotly.com, no cloud.
PLOTLY_CONFIG = {"displaylogo": False, "showSendToCloud": False}
#: Explanations drawn in the bar chart of a dataset (newest first); all are listed.
MAX_EXPLANATIONS_DRAWN = 60
#: Drift reports (and retraining passes) listed for a model, newest first.
MAX_DRIFT_REPORTS = 30
#: The smallest statistic / bound drawn: the drift chart's axis is logarithmic.
_DRIFT_FLOOR = 0.01

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1f2328; background: #fff; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem;
     margin-top: 2.4rem; } h3 { margin-bottom: .4rem; }
nav ol { columns: 2; } code, .ids { font-family: ui-monospace, Menlo, Consolas, monospace;
     font-size: .9em; } .ids { word-break: break-word; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.skip, .muted { color: #656d76; } tr.wrong { background: #fff0f0; }
.found { color: #9a6700; font-weight: 600; } .empty { color: #656d76; font-style: italic; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
details { margin: .4rem 0; } summary { cursor: pointer; }
.plot { margin: .5rem 0 1rem; }
"""


@dataclass(frozen=True)
class _Scope:
    """What the report covers: datasets, and each model's versions (oldest first)."""

    datasets: list[Dataset]
    models: dict[str, list[ModelVersion]]

    @property
    def refs(self) -> set[str]:
        return {v.ref for versions in self.models.values() for v in versions}


class _Raw(str):
    """A table cell that is HTML already."""


class _Change(float):
    """A table cell that is a difference, shown with its sign."""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, _Raw):
        return f"<td>{value}</td>"
    if isinstance(value, _Change):
        return f"<td class='num'>{value:+.4g}</td>"
    if isinstance(value, float):
        return f"<td class='num'>{_num(value)}</td>"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<td class='num'>{value}</td>"
    return f"<td>{_e('' if value is None else value)}</td>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:.{digits}g}"


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _empty(text: str) -> str:
    """A section (or part) with nothing to show says so, and what would fill it."""
    return f"<p class='empty'>{text}</p>"


def _code(text: str) -> str:
    return f"<code>{_e(text)}</code>"


def _ids(ids: Iterable[int]) -> str:
    shown = list(ids)
    return f"<span class='ids'>{_e(' '.join(map(str, shown)))}</span>" if shown else "none"


def _anchor(*parts: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", "-".join(str(p) for p in parts))


def _plot(fig: Any, div_id: str, post_script: str | None = None) -> str:
    """A figure as a div and its script; Plotly's JavaScript is in the page's head."""
    body = fig.to_html(
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        div_id=div_id,
        config=PLOTLY_CONFIG,
        post_script=post_script,
    )
    return f"<div class='plot'>{body}</div>"


# --- scope -----------------------------------------------------------------------


def _scope(store: Store, dataset: str | None, model: str | None) -> _Scope:
    names = [model] if model is not None else store.models.names()
    models: dict[str, list[ModelVersion]] = {}
    for name in names:
        versions = store.models.versions(name)
        if dataset is not None:
            versions = [v for v in versions if v.dataset == dataset]
        if versions or model is not None:
            models[name] = versions
    if dataset is not None:
        datasets = [store.datasets.get(dataset)]
    elif model is not None:
        used = sorted({v.dataset for v in models[model] if v.dataset is not None})
        datasets = [store.datasets.get(d) for d in used]
    else:
        datasets = store.datasets.list()
    return _Scope(datasets, models)


# --- sections --------------------------------------------------------------------


def _header(store: Store, scope: _Scope, sections: list[tuple[str, str]]) -> str:
    from trenches import __version__

    models = []
    for name, versions in scope.models.items():
        if not versions:
            models.append(f"{_e(name)}: no version")
            continue
        aliases = [f"{a} → @{v.version}" for v in versions for a in v.aliases]
        models.append(
            f"{_e(name)}: {len(versions)} version{'s' if len(versions) != 1 else ''} "
            f"(@{versions[0].version}–@{versions[-1].version})"
            + (f", {_e(', '.join(aliases))}" if aliases else "")
        )
    datasets = []
    for ds in scope.datasets:
        summary = ds.summary()
        datasets.append(f"{_e(ds.name)}: {_e(ds.task)}, {summary.active} active patterns")
    toc = "".join(f"<li><a href='#{sid}'>{_e(title)}</a></li>" for sid, title in sections)
    return (
        "<header><h1>trenches report</h1><dl class='meta'>"
        f"<dt>store</dt><dd><code>{_e(store.url)}</code></dd>"
        f"<dt>written</dt><dd>{_when(datetime.now(UTC))} by trenches {_e(__version__)}</dd>"
        f"<dt>models</dt><dd>{'<br>'.join(models) or 'none'}</dd>"
        f"<dt>datasets</dt><dd>{'<br>'.join(datasets) or 'none'}</dd>"
        f"</dl><nav><ol>{toc}</ol></nav></header>"
    )


_CLASSIFICATION_COLUMNS = ("accuracy", "f1_macro", "roc_auc", "log_loss")
_REGRESSION_COLUMNS = ("rmse", "mae", "r2")


def _metrics(store: Store, scope: _Scope) -> str:
    from trenches.evaluation import evaluate, split_set

    parts: list[str] = []
    for index, ds in enumerate(scope.datasets, 1):
        versions = [v for vs in scope.models.values() for v in vs if v.dataset == ds.name]
        parts.append(f"<h3>{_e(ds.name)}</h3>")
        if not versions:
            parts.append(_empty(f"no model version of {_e(ds.name)} yet"))
            continue
        set_name, ids = split_set(ds, "validation")
        if len(ids) == 0:
            parts.append(_empty(f"{_e(ds.name)} has no validation pattern to measure on"))
            continue
        parts.append(
            f"<p>Every version over the same patterns: {_code(set_name)}, the current "
            f"validation split ({len(ids)} patterns), from the predictions stored.</p>"
        )
        rows: list[dict[str, Any]] = []
        missing: list[str] = []
        for v in versions:
            try:
                found = evaluate(store, v.ref, ids, set_name)
            except InvalidInput as e:
                missing.append(f"<li>{_e(v.ref)}: {_e(e)}</li>")
                continue
            rows.append(
                {"model": v.model, "ref": v.ref, "at": v.created_at, "v": v} | found.metrics
            )
        if rows:
            columns = _REGRESSION_COLUMNS if ds.task == "regression" else _CLASSIFICATION_COLUMNS
            parts.append(
                _plot(_metric_figure(rows, ds.task, set_name, len(ids)), f"metric-{index}")
            )
            parts.append(
                _table(
                    ["version", "made", "aliases", *columns],
                    [
                        [
                            r["ref"],
                            _when(r["at"]),
                            ", ".join(r["v"].aliases),
                            *(float(r.get(c, float("nan"))) for c in columns),
                        ]
                        for r in rows
                    ],
                )
            )
        else:
            parts.append(_empty(f"no version has predicted all of {_e(set_name)} yet"))
        if missing:
            parts.append(
                f"<p>Not measured (they have not predicted the whole set):</p><ul>"
                f"{''.join(missing)}</ul>"
            )
    return "".join(parts) or _empty("no dataset in the store yet")


def _metric_figure(rows: list[dict[str, Any]], task: str, set_name: str, size: int) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = ["rmse", "r2"] if task == "regression" else ["accuracy"]
    fig = make_subplots(rows=len(metrics), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for row, metric in enumerate(metrics, 1):
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["model"] == model]
            fig.add_trace(
                go.Scatter(
                    x=[r["at"] for r in mine],
                    y=[r.get(metric) for r in mine],
                    text=[r["ref"] for r in mine],
                    mode="lines+markers+text",
                    textposition="top center",
                    cliponaxis=False,
                    texttemplate="@%{customdata}",
                    customdata=[r["v"].version for r in mine],
                    name=f"{model} {metric}" if len(metrics) > 1 else model,
                    hovertemplate=(
                        f"%{{text}}<br>made %{{x|%Y-%m-%d %H:%M}}<br>{metric} %{{y:.4f}}"
                        "<extra></extra>"
                    ),
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(title_text=metric, row=row, col=1)
    fig.update_xaxes(title_text="version made", row=len(metrics), col=1)
    fig.update_layout(
        title=f"{' and '.join(metrics)} on {set_name} ({size} patterns), by when each "
        "version was made",
        height=380 * len(metrics),
        margin={"t": 60},
    )
    return fig


def _problems(store: Store, scope: _Scope, explained: set[tuple[str, int]]) -> str:
    from trenches.report.problems import DRILL_SCRIPT, drill_rows, figure, history

    parts: list[str] = []
    refs = scope.refs
    for index, ds in enumerate(scope.datasets, 1):
        problems = store.problems.list(dataset=ds.name)
        parts.append(f"<h3>{_e(ds.name)}</h3>")
        if not problems:
            parts.append(
                _empty(
                    f"no problem recorded for {_e(ds.name)}: "
                    f"{_code(f'trenches problems create SLUG --dataset {ds.name}')}"
                )
            )
            continue
        parts.append(
            _table(
                ["problem", "title", "severity", "status", "positive", "negative"],
                [
                    [p.slug, p.title, p.severity, p.status, len(p.positive), len(p.negative)]
                    for p in problems
                ],
            )
        )
        table = history(store, ds.name)
        table = table[table["version"].isin(refs)]
        if table.empty:
            parts.append(_empty("no model version of the report has been scored on them yet"))
            continue
        rows = drill_rows(store, table)
        for (_slug, ref), drill in rows.items():
            for r in drill:
                if (ref, r["id"]) in explained:
                    r["explained"] = _anchor("expl", r["id"], ref)
        div = f"problem-graph-{index}"
        parts.append(_plot(figure(table, rows), div, DRILL_SCRIPT))
        parts.append(
            f"<div id='{div}-drill' class='drill'><p class='muted'>Click a point of the "
            "graph to list the problem's patterns: their label, what that version "
            "predicted, and whether it was right.</p></div>"
        )
    return "".join(parts) or _empty("no dataset in the store yet")


def _gates(store: Store, scope: _Scope) -> str:
    parts: list[str] = []
    for name, versions in scope.models.items():
        parts.append(f"<h3>{_e(name)}</h3>")
        if not versions:
            parts.append(_empty(f"{_e(name)} has no version"))
            continue
        overview = []
        details: list[str] = []
        for v in reversed(versions):
            check = store.gates.latest(v.ref)
            if check is None:
                overview.append(
                    [
                        v.ref,
                        _Raw(_empty(f"no gate check yet: run {_code(f'trenches check {v.ref}')}")),
                        "",
                        "",
                        "",
                    ]
                )
                continue
            counts = {
                s: sum(r.status == s for r in check.results) for s in ("pass", "fail", "skip")
            }
            verdict = _Raw(
                "<span class='pass'>passed</span>"
                if check.passed
                else "<span class='fail'>failed</span>"
            )
            overview.append(
                [
                    v.ref,
                    verdict,
                    _when(check.created_at),
                    ", ".join(f"{n} {s}" for s, n in counts.items() if n),
                    _Raw(_code(check.criteria_digest[:12])),
                ]
            )
            table = _table(
                ["gate", "kind", "figure", "bound", "status", "detail"],
                [
                    [
                        r.gate,
                        r.kind,
                        r.figure,
                        r.bound,
                        _Raw(f"<span class='{_e(r.status)}'>{_e(r.status)}</span>"),
                        r.detail,
                    ]
                    for r in check.results
                ],
            )
            opened = " open" if not details else ""
            details.append(
                f"<details{opened}><summary>{_e(v.ref)}: check {check.id} of "
                f"{_when(check.created_at)}, {'passed' if check.passed else 'failed'}"
                f"</summary>{table}</details>"
            )
        if not details:
            newest = versions[-1].ref
            parts.append(
                _empty(
                    f"no gate check of a version of {_e(name)} yet: run "
                    f"{_code(f'trenches check {newest}')} (the gates are in trenches.toml)"
                )
            )
            continue
        parts.append(
            _table(["version", "latest check", "when", "gates", "criteria digest"], overview)
        )
        parts.extend(details)
    return "".join(parts) or _empty("no model in the store yet")


def _comparison(store: Store, scope: _Scope) -> str:
    from trenches.comparison import compare

    parts: list[str] = []
    for name, versions in scope.models.items():
        parts.append(f"<h3>{_e(name)}</h3>")
        if len(versions) < 2:
            parts.append(_empty(f"{_e(name)} has {len(versions)} version: a comparison needs two"))
            continue
        a, b = versions[-2].ref, versions[-1].ref
        try:
            diff = compare(store, a, b)
        except InvalidInput as e:
            parts.append(
                _empty(
                    f"{_e(a)} and {_e(b)} are not compared pattern by pattern: {_e(e)}; "
                    "<a href='#metrics'>the first section</a> has both over the same "
                    "validation patterns"
                )
            )
            continue
        overall = diff.overall
        parts.append(
            f"<p>{_e(a)} → {_e(b)} over {_code(overall.pattern_set)} "
            f"({overall.size} patterns): {len(diff.fixed)} fixed (wrong before, right now), "
            f"{len(diff.broken)} broken (right before, wrong now); exact McNemar "
            f"p = {_num(overall.p_value, 3)}.</p>"
        )
        parts.append(
            _table(
                ["metric", a, b, "change"],
                [
                    [
                        k,
                        diff.a_metrics.metrics[k],
                        diff.b_metrics.metrics[k],
                        _Change(delta),
                    ]
                    for k, delta in diff.deltas.items()
                ],
            )
        )
        parts.append(
            f"<p><b>fixed:</b> {_ids(diff.fixed)}<br><b>broken:</b> {_ids(diff.broken)}</p>"
        )
        if diff.problems:
            parts.append(
                _table(
                    ["problem", "patterns", "fixed", "broken", "McNemar p"],
                    [
                        [slug, f.size, _Raw(_ids(f.fixed)), _Raw(_ids(f.broken)), f.p_value]
                        for slug, f in diff.problems.items()
                    ],
                )
            )
        else:
            parts.append(_empty("no problem has been predicted by both versions"))
    return "".join(parts) or _empty("no model in the store yet")


def _problem_explanations(store: Store, scope: _Scope) -> dict[str, list[Explanation]]:
    """The explanations stored for the problem patterns of each dataset, newest first,
    by the versions in the report."""
    refs = scope.refs
    out: dict[str, list[Explanation]] = {}
    for ds in scope.datasets:
        ids = sorted({i for p in store.problems.list(dataset=ds.name) for i in p.patterns()})
        if not ids:
            continue
        found = store.explanations.list(pattern_ids=ids, dataset=ds.name)
        out[ds.name] = sorted(
            (e for e in found if e.version in refs), key=lambda e: e.created_at, reverse=True
        )
    return out


def _weights(items: Iterable[Sequence[Any]], n: int = 3) -> str:
    shown = []
    for item in list(items)[:n]:
        feature, condition, weight = item[0], item[1], item[2]
        shown.append(f"{condition or feature} ({weight:+.3f})")
    return "; ".join(shown)


def _explanations(store: Store, scope: _Scope, found: dict[str, list[Explanation]]) -> str:
    parts: list[str] = []
    for index, ds in enumerate(scope.datasets, 1):
        problems = store.problems.list(dataset=ds.name)
        parts.append(f"<h3>{_e(ds.name)}</h3>")
        if not problems:
            parts.append(_empty(f"no problem recorded for {_e(ds.name)}, so no problem pattern"))
            continue
        mine = found.get(ds.name, [])
        if not mine:
            newest = [
                vs[-1].ref for vs in scope.models.values() if vs and vs[-1].dataset == ds.name
            ]
            ref = newest[0] if newest else "NAME@V"
            parts.append(
                _empty(
                    "no explanation stored for a problem pattern yet: run "
                    f"{_code(f'trenches explain {ref} --problem {problems[0].slug}')}"
                )
            )
            continue
        member: dict[int, list[str]] = {}
        for p in problems:
            for i in p.positive:
                member.setdefault(i, []).append(f"{p.slug} (positive)")
            for i in p.negative:
                member.setdefault(i, []).append(f"{p.slug} (negative)")
        parts.append(
            f"<p>{len(mine)} explanation{'s' if len(mine) != 1 else ''} of "
            f"{len({e.pattern_id for e in mine})} problem patterns. A weight is how much "
            "the condition moves the local model toward (+) or against (−) the label "
            "explained (for regression: the value up or down); the fit is the local "
            "model's R² on its neighbourhood.</p>"
        )
        parts.append(
            _plot(_explanation_figure(mine[:MAX_EXPLANATIONS_DRAWN]), f"explanations-{index}")
        )
        if len(mine) > MAX_EXPLANATIONS_DRAWN:
            parts.append(
                f"<p class='muted'>The chart holds the newest {MAX_EXPLANATIONS_DRAWN}; "
                "the table holds them all.</p>"
            )
        rows = []
        seen: set[str] = set()
        for e in sorted(mine, key=lambda e: (e.pattern_id, e.version, e.method)):
            anchor = _anchor("expl", e.pattern_id, e.version)
            pid = _Raw(
                f"<span id='{anchor}'>{e.pattern_id}</span>"
                if anchor not in seen
                else str(e.pattern_id)
            )
            seen.add(anchor)
            probability = "" if e.probability is None else f" ({e.probability:.3f})"
            prediction = _num(e.prediction) if isinstance(e.prediction, float) else e.prediction
            rows.append(
                [
                    pid,
                    ", ".join(member.get(e.pattern_id, [])),
                    e.version,
                    e.method,
                    "" if e.label is None else e.label,
                    f"{prediction}{probability}",
                    e.score,
                    _weights(e.toward()),
                    _weights(e.against()),
                    _when(e.created_at),
                ]
            )
        parts.append(
            _table(
                [
                    "pattern",
                    "problems",
                    "version",
                    "method",
                    "label explained",
                    "prediction",
                    "fit",
                    "toward",
                    "against",
                    "when",
                ],
                rows,
            )
        )
    return "".join(parts) or _empty("no dataset in the store yet")


def _explanation_figure(explanations: list[Explanation]) -> Any:
    """One bar chart, a dropdown choosing which explanation it shows."""
    import plotly.graph_objects as go

    fig = go.Figure()
    titles = []
    for i, e in enumerate(explanations):
        weights = list(e.weights)[::-1]  # the largest on top
        fig.add_trace(
            go.Bar(
                x=[w[2] for w in weights],
                y=[w[1] or w[0] for w in weights],
                orientation="h",
                marker={"color": ["#1a7f37" if w[2] > 0 else "#cf222e" for w in weights]},
                visible=i == 0,
                name=f"pattern {e.pattern_id}",
                hovertemplate="%{y}: %{x:+.4f}<extra></extra>",
            )
        )
        label = "" if e.label is None else f", label {e.label}"
        titles.append(f"pattern {e.pattern_id} by {e.version} ({e.method}{label})")
    buttons = [
        {
            "label": title,
            "method": "update",
            "args": [
                {"visible": [j == i for j in range(len(explanations))]},
                {"title": {"text": title}},
            ],
        }
        for i, title in enumerate(titles)
    ]
    fig.update_layout(
        title={"text": titles[0]},
        updatemenus=[{"buttons": buttons, "x": 0, "xanchor": "left", "y": 1.18, "yanchor": "top"}]
        if len(buttons) > 1
        else [],
        xaxis={"title": "weight toward the label explained", "zeroline": True},
        yaxis={"automargin": True},
        height=460,
        margin={"t": 110},
        showlegend=False,
    )
    return fig


def _quality(scope: _Scope) -> str:
    parts: list[str] = []
    for index, ds in enumerate(scope.datasets, 1):
        parts.append(f"<h3>{_e(ds.name)}</h3>")
        snapshots = ds.snapshots()
        if not snapshots:
            parts.append(
                _empty(
                    f"no snapshot of {_e(ds.name)} yet: "
                    f"{_code(f'trenches data snapshot {ds.name}')}"
                )
            )
            continue
        snap = snapshots[-1]
        report = ds.check(snapshot=snap.id)
        parts.append(
            f"<p>Snapshot {snap.id} (the newest of {len(snapshots)}): {snap.patterns} patterns "
            f"as of {_when(snap.as_of)}"
            + (f" from {_e(', '.join(snap.sources))}" if snap.sources else "")
            + (f", “{_e(snap.note)}”" if snap.note else "")
            + f", digest {_code(snap.digest[:16])}…</p>"
        )
        rows = []
        for f in report.findings:
            status = (
                _Raw("<span class='found'>found</span>")
                if f.found
                else _Raw("<span class='muted'>summary</span>")
                if f.kind == "source-mix"
                else _Raw("<span class='pass'>ok</span>")
            )
            ids = list(f.pattern_ids)
            shown = (
                _Raw(
                    f"<details><summary>{len(ids)}</summary>{_ids(ids[:200])}"
                    + (" …" if len(ids) > 200 else "")
                    + "</details>"
                )
                if ids
                else 0
            )
            rows.append([f.kind, status, f.summary, shown])
        parts.append(_table(["check", "result", "summary", "patterns"], rows))
        counts = snap.counts()
        if not counts.empty and ds.task == "classification":
            parts.append(_plot(_balance_figure(counts, snap.id), f"balance-{index}"))
    return "".join(parts) or _empty("no dataset in the store yet")


def _balance_figure(counts: pd.DataFrame, snapshot_id: int) -> Any:
    import plotly.graph_objects as go

    by = counts.groupby(["split", "label"], observed=True)["patterns"].sum().unstack(fill_value=0)
    fig = go.Figure(
        [go.Bar(x=list(by.index), y=list(by[label]), name=str(label)) for label in by.columns]
    )
    fig.update_layout(
        barmode="stack",
        title=f"Snapshot {snapshot_id}: patterns by split and label",
        yaxis={"title": "patterns"},
        height=340,
    )
    return fig


def _production(store: Store, scope: _Scope) -> str:
    parts: list[str] = []
    for index, (name, versions) in enumerate(scope.models.items(), 1):
        parts.append(f"<h3>{_e(name)}</h3>")
        if not versions:
            parts.append(_empty(f"{_e(name)} has no version"))
            continue
        refs = {v.ref for v in versions}
        found = store.monitoring.history(name, limit=MAX_DRIFT_REPORTS + 1)
        more = len(found) > MAX_DRIFT_REPORTS
        reports = [m for m in found[:MAX_DRIFT_REPORTS] if m.version in refs]
        passes = store.retrains.history(name)
        if not reports:
            production = [v for v in versions if "production" in v.aliases]
            ref = f"{name}@production" if production else versions[-1].ref
            parts.append(
                _empty(
                    f"no drift report of {_e(name)} yet: "
                    f"{_code(f'trenches monitor {ref} --window 24h')} has not been run"
                )
            )
        else:
            by_id = {r.id: r for r in passes}
            parts.append(
                (
                    f"<p>The newest {len(reports)} drift reports (older ones: "
                    f"{_code(f'trenches monitor history {name} --limit 100')})"
                    if more
                    else f"<p>{len(reports)} drift report{'s' if len(reports) != 1 else ''}"
                )
                + ", newest first: the production window of each against its version's "
                "reference, what drifted, the real metrics where feedback gave labels, the "
                "alert, and the retraining pass it set off.</p>"
            )
            parts.append(
                _table(
                    [
                        "report",
                        "when",
                        "version",
                        "rows",
                        "drifted columns",
                        "predictions drifted",
                        "metrics with feedback",
                        "alert",
                        "retraining",
                    ],
                    [
                        [
                            _Raw(f"<span id='{_anchor('drift-report', m.id)}'>#{m.id}</span>"),
                            _when(m.created_at),
                            m.version,
                            _Raw(f"<span title='{_e(m.current)}'>{m.report.current_rows:,}</span>"),
                            _Raw(
                                f"<span class='fail'>{_e(', '.join(m.report.drifted_columns))}"
                                "</span>"
                                if m.report.drifted_columns
                                else "none"
                            ),
                            _Raw(
                                "–"
                                if m.report.prediction is None
                                else "<span class='fail'>yes</span>"
                                if m.report.prediction.drifted
                                else "no"
                            ),
                            _feedback(m.metrics),
                            _Raw(_alert_state(m.alert)),
                            _Raw("<br>".join(_set_off(x, by_id.get(x["id"])) for x in m.retrains)),
                        ]
                        for m in reports
                    ],
                )
            )
            focus = next((m for m in reports if m.drifted), reports[0])
            parts.append(_drift_detail(focus, f"drift-chart-{index}"))
        parts.append(_retrains(name, passes, {m.id for m in reports}))
    return "".join(parts) or _empty("no model in the store yet")


def _feedback(metrics: dict[str, Any] | None) -> str:
    """``accuracy 0.94 on 181 labelled vs 0.99 reference``; empty without feedback."""
    if not metrics or not metrics.get("window"):
        return ""
    window, reference = metrics["window"], metrics.get("reference") or {}
    names = [k for k in ("accuracy", "rmse", "mae") if window.get(k) is not None]
    figures = ", ".join(f"{k} {_num(window[k], 3)}" for k in names)
    text = f"{figures} on {window.get('labelled', 0):,} labelled"
    against = ", ".join(
        f"{_num(reference[k], 3)}" if len(names) == 1 else f"{k} {_num(reference[k], 3)}"
        for k in names
        if reference.get(k) is not None
    )
    return f"{text} vs {against} reference" if against else text


def _alert_state(alert: Alert | None) -> str:
    """How the alert of a report went: none, logged, posted, or not delivered."""
    if alert is None:
        return "<span class='muted'>none</span>"
    if alert.webhook is None:
        return "logged"
    tries = f"{alert.attempts} attempt{'s' if alert.attempts != 1 else ''}"
    if alert.delivered:
        return f"<span class='pass'>posted</span> ({tries})"
    if alert.delivered is None:
        return "logged; the webhook post was not recorded"
    return f"<span class='fail'>not delivered</span> after {tries}: {_e(alert.error or '')}"


def _set_off(brief: dict[str, Any], found: Retrain | None) -> str:
    """``#1 candidate @5: failed 4 of 11 gates``: a pass a report set off, and its end."""
    status = str(brief.get("status"))
    version = brief.get("version")
    text = f"<a href='#{_anchor('retrain', brief['id'])}'>#{_e(brief['id'])}</a> " + (
        f"<span class='{_STATUS_CLASS.get(status, 'muted')}'>{_e(status)}</span>"
    )
    if version is not None:
        text += f" @{_e(version)}"
    if found is not None and found.gates:
        failed = sum(g.status == "fail" for g in found.gates)
        text += (
            f": failed {failed} of {len(found.gates)} gates"
            if failed
            else f": passed {len(found.gates)} gates"
        )
    elif status == "failed" and brief.get("reason"):
        text += f": {_e(_first_line(str(brief['reason'])))}"
    return text


_STATUS_CLASS = {"promoted": "pass", "failed": "fail", "candidate": "found", "running": "muted"}


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _drift_columns(m: Monitored) -> list[tuple[str, ColumnDrift]]:
    """(label, drift) of every column, the drifted first, then the predictions."""
    columns = [(c.name, c) for c in m.report.columns]
    ordered = [x for x in columns if x[1].drifted] + [x for x in columns if not x[1].drifted]
    if m.report.prediction is not None:
        ordered.append(("(predictions)", m.report.prediction))
    return ordered


def _drift_detail(m: Monitored, div_id: str) -> str:
    from trenches.monitoring.drift import P_VALUE_TESTS

    report = m.report
    drifted = report.drifted_columns
    what = (
        f"{len(drifted)} of {len(report.columns)} columns drifted ({_e(', '.join(drifted))})"
        if drifted
        else f"no column of {len(report.columns)} drifted"
    )
    if report.prediction is not None:
        what += (
            "; the predictions drifted"
            if report.prediction.drifted
            else "; the predictions did not"
        )
    if m.alert is not None:
        what += f"; alert: {_alert_state(m.alert)}"
    kind = "the newest report that found drift" if m.drifted else "the newest report (no drift)"
    parts = [
        f"<p><b>Report #{m.id}</b>, {kind}, of {_when(m.created_at)}: {_e(m.version)} on "
        f"{_e(m.current)} against the {_e(m.reference)}: {what}.</p>"
    ]
    rows = []
    for label, c in _drift_columns(m):
        p_test = c.test in P_VALUE_TESTS
        statistic = _num(c.statistic)
        if p_test and c.p_adjusted is not None:
            statistic += f" (p adjusted {_num(c.p_adjusted, 3)})"
        bound = (
            "–"
            if c.test == "none"
            else f"p < {_num(c.threshold)}"
            if p_test
            else f"≥ {_num(c.threshold)}"
        )
        name = (
            _Raw(f"<span class='fail'>{_e(label)}</span>")
            if c.drifted
            else _Raw(f"<span class='muted'>{_e(label)}</span>")
            if label == "(predictions)"
            else label
        )
        rows.append(
            [
                name,
                _Raw(
                    "<span class='fail'>drifted</span>"
                    if c.drifted
                    else "<span class='pass'>ok</span>"
                ),
                c.kind,
                _Raw(f"<span title='{_e(c.why)}'>{_e(c.test)}</span>"),
                statistic,
                bound,
                c.psi,
                f"{c.missing_reference:.1%} → {c.missing_current:.1%}",
                "; ".join(c.reasons),
            ]
        )
    parts.append(
        _table(
            [
                "column",
                "verdict",
                "kind",
                "test",
                "statistic",
                "bound",
                "PSI",
                "missing (reference → current)",
                "reasons",
            ],
            rows,
        )
    )
    if report.ignored or report.extra:
        parts.append(
            "<p class='muted'>"
            + (
                f"Ignored (trenches.toml): {_e(', '.join(report.ignored))}. "
                if report.ignored
                else ""
            )
            + (
                f"In production but not in the reference: {_e(', '.join(report.extra))}."
                if report.extra
                else ""
            )
            + "</p>"
        )
    figure = _drift_figure(m)
    if figure is not None:
        parts.append(
            "<p class='muted'>Each column's statistic over its bound, on a log scale: 1 is the "
            "bound, beyond it the test finds drift. A distance test's bar is the statistic "
            "over its threshold; a p-value test's is −log10 of the adjusted p over −log10 α. "
            "Red bars drifted (a column can also drift by its PSI, missing rate or unseen "
            "values with its bar below 1).</p>"
        )
        parts.append(_plot(figure, div_id))
    return "".join(parts)


def _drift_ratio(c: ColumnDrift) -> float | None:
    """A column's statistic over its bound (1: at the bound; above: past it), or None
    when there is none: statistic / threshold for distances, and
    -log10(adjusted p) / -log10(alpha) for p-value tests."""
    from trenches.monitoring.drift import P_VALUE_TESTS

    if c.test in P_VALUE_TESTS:
        if c.p_adjusted is None or not 0 < c.threshold < 1:
            return None
        return _minus_log10(c.p_adjusted) / _minus_log10(c.threshold)
    if c.test == "none" or c.statistic is None or not math.isfinite(c.statistic):
        return None
    return c.statistic / c.threshold if c.threshold > 0 else None


def _minus_log10(p: float | None) -> float:
    """−log10 p, with p = 0 (a p-value below the smallest float) taken as 1e-300."""
    return -math.log10(min(max(p if p is not None else 1.0, 1e-300), 1.0))


def _drift_figure(m: Monitored) -> Any:
    """A bar for each column: its statistic relative to its bound, on a log scale so
    that a column ten times past the bound does not flatten the others; the drifted in
    red."""
    import plotly.graph_objects as go

    from trenches.monitoring.drift import P_VALUE_TESTS

    shown: list[tuple[str, ColumnDrift, float]] = []
    for label, c in _drift_columns(m):
        ratio = _drift_ratio(c)
        if ratio is not None:
            shown.append((label, c, ratio))
    if not shown:
        return None
    floor = _DRIFT_FLOOR
    fig = go.Figure(
        go.Bar(
            x=[max(r, floor) for _, _, r in shown],
            y=[label for label, _, _ in shown],
            orientation="h",
            marker={
                "color": ["#cf222e" if c.drifted else "#8c959f" for _, c, _ in shown],
                "line": {
                    "color": ["#82071e" if c.drifted else "#8c959f" for _, c, _ in shown],
                    "width": 1,
                },
            },
            text=[f"×{r:.2g}" + (" drifted" if c.drifted else "") for _, c, r in shown],
            textposition="outside",
            cliponaxis=False,
            customdata=[
                [
                    c.test,
                    (
                        f"−log10 p adjusted {_minus_log10(c.p_adjusted):.3g} "
                        f"vs −log10 α {_minus_log10(c.threshold):.3g}"
                    )
                    if c.test in P_VALUE_TESTS
                    else f"statistic {_num(c.statistic)} vs bound {_num(c.threshold)}",
                    "; ".join(c.reasons) or "no drift",
                ]
                for _, c, _ in shown
            ],
            hovertemplate=(
                "%{y} (%{customdata[0]}): %{customdata[1]}<br>%{customdata[2]}<extra></extra>"
            ),
            name="statistic / bound",
        )
    )
    top = max(max(r for _, _, r in shown), 1.0)
    fig.add_shape(
        type="line",
        x0=1,
        x1=1,
        xref="x",
        y0=0,
        y1=1,
        yref="paper",
        line={"color": "#cf222e", "dash": "dash", "width": 1.5},
    )
    fig.update_layout(
        title=f"Report #{m.id}: statistic / bound of each column (red: drifted)",
        xaxis={
            "type": "log",
            "title": "statistic / bound (log scale)",
            "range": [math.log10(floor), math.log10(top) + 0.4],
        },
        yaxis={"autorange": "reversed", "automargin": True},
        height=min(140 + 26 * len(shown), 1400),
        margin={"t": 70},
        showlegend=False,
    )
    return fig


def _retrains(name: str, passes: list[Retrain], reports: set[int | None]) -> str:
    if not passes:
        return _empty(
            f"no retraining pass of {_e(name)} yet: {_code(f'trenches retrain {name}')}, or "
            f"{_code('trenches monitor ... --retrain')} to start one when drift is found"
        )
    rows = []
    for r in passes[:MAX_DRIFT_REPORTS]:
        trigger: str
        if r.report_id is None:
            trigger = "by hand"
        elif r.report_id in reports:
            trigger = _Raw(
                f"<a href='#{_anchor('drift-report', r.report_id)}'>report #{r.report_id}</a>"
            )
        else:
            trigger = f"report #{r.report_id}"
        rows.append(
            [
                _Raw(f"<span id='{_anchor('retrain', r.id)}'>#{r.id}</span>"),
                _when(r.started_at),
                trigger,
                r.candidate or "",
                _Raw(f"<span class='{_STATUS_CLASS.get(r.status, 'muted')}'>{_e(r.status)}</span>"),
                r.figures.why if r.figures is not None else "",
                r.reason or "",
            ]
        )
    more = (
        f" (the newest {MAX_DRIFT_REPORTS} of {len(passes)})"
        if len(passes) > MAX_DRIFT_REPORTS
        else ""
    )
    return f"<p>Retraining passes of {_e(name)}, newest first{more}:</p>" + _table(
        ["pass", "started", "trigger", "candidate", "status", "comparison", "reason"], rows
    )


# --- the page ----------------------------------------------------------------------


def write_report(
    store: Store,
    out: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    model: str | None = None,
) -> Path:
    """Write the report on ``store`` (only ``dataset``'s, or only ``model``'s, when given)
    to the HTML file ``out``; it opens offline. Returns the path written."""
    from plotly.offline import get_plotlyjs

    path = Path(out)
    if path.suffix.lower() not in (".html", ".htm"):
        raise InvalidInput(f"{path}: the report is an HTML file; name it FILE.html")
    scope = _scope(store, dataset, model)
    explanations = _problem_explanations(store, scope)
    explained = {(e.version, e.pattern_id) for es in explanations.values() for e in es}
    sections = [
        ("metrics", "Metric of each version over time", _metrics(store, scope)),
        ("problems", "Problems across versions", _problems(store, scope, explained)),
        ("gates", "Latest gate checks", _gates(store, scope)),
        ("comparison", "The two newest versions compared", _comparison(store, scope)),
        (
            "explanations",
            "Explanations of problem patterns",
            _explanations(store, scope, explanations),
        ),
        ("quality", "Data quality of the newest snapshot", _quality(scope)),
        ("production", "Production: drift and retraining", _production(store, scope)),
    ]
    header = _header(store, scope, [(sid, title) for sid, title, _ in sections])
    body = "".join(
        f"<section id='{sid}'><h2>{_e(title)}</h2>{content}</section>"
        for sid, title, content in sections
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta name='generator' content='trenches'>"
        f"<title>trenches report: {_e(store.url)}</title><style>{_CSS}</style>"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
        f"<script charset='utf-8'>{get_plotlyjs()}</script>"
        f"</head><body><main>{header}{body}</main></body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)
    return path
