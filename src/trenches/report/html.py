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

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from trenches.errors import InvalidInput

if TYPE_CHECKING:
    from trenches.store import Store

from trenches.report.explanations import _explanations, _problem_explanations
from trenches.report.parts import (
    _CSS,
    CSP,
    _anchor,
    _Change,
    _code,
    _e,
    _empty,
    _ids,
    _num,
    _plot,
    _Raw,
    _Scope,
    _scope,
    _table,
    _when,
)
from trenches.report.production import _production, _replays

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
    from trenches.evaluation import evaluate
    from trenches.patterns.sets import split

    parts: list[str] = []
    for index, ds in enumerate(scope.datasets, 1):
        versions = [v for vs in scope.models.values() for v in vs if v.dataset == ds.name]
        parts.append(f"<h3>{_e(ds.name)}</h3>")
        if not versions:
            parts.append(_empty(f"no model version of {_e(ds.name)} yet"))
            continue
        validation = split(ds, "validation")
        set_name, ids = validation.name, validation.ids
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
                found = evaluate(store.engine, store.predictors.resolve(v), validation)
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
        undefined = table["undefined"].dropna()
        if len(undefined):
            parts.append(_empty(_e(str(undefined.iloc[0]))))
        parts.append(_plot(figure(table, rows), div, DRILL_SCRIPT))
        parts.append(
            f"<div id='{div}-drill' class='drill'><p class='muted'>Click a point of the "
            "graph to list the problem's patterns: their label, what that version "
            "predicted, whether it was right, and whether it trained on them.</p></div>"
        )
        parts.append(_score_table(table))
    return "".join(parts) or _empty("no dataset in the store yet")


def _score_table(table: pd.DataFrame) -> str:
    """Each problem's score per version: over the patterns it did not train on, and
    over all of them, with how many it trained on."""
    versions = list(dict.fromkeys(table.sort_values("created_at")["version"]))

    def cell(r: Any) -> str:
        if r.undefined:
            return "–"
        trained = "?" if r.trained_on != r.trained_on or r.trained_on is None else int(r.trained_on)
        return (
            f"{_num(r.held_out_score, 3)} held out ({r.held_out}) · {_num(r.score, 3)} all "
            f"({r.predicted}, {trained} trained on)"
        )

    by = {(r.problem, r.version): r for r in table.itertuples()}
    problems = list(dict.fromkeys(table["problem"]))
    return (
        "<p>Share right per version: over the patterns it did not train on (held out: "
        "its skill), and over all of the problem's patterns (memory included).</p>"
        + _table(
            ["problem", *versions],
            [[p, *(cell(by[(p, v)]) if (p, v) in by else "–" for v in versions)] for p in problems],
        )
    )


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
            parts.append(_replays(store, versions))
            continue
        parts.append(
            _table(["version", "latest check", "when", "gates", "criteria digest"], overview)
        )
        parts.extend(details)
        parts.append(_replays(store, versions))
    return "".join(parts) or _empty("no model in the store yet")


def _comparison(store: Store, scope: _Scope) -> str:
    parts: list[str] = []
    for name, versions in scope.models.items():
        parts.append(f"<h3>{_e(name)}</h3>")
        if len(versions) < 2:
            parts.append(_empty(f"{_e(name)} has {len(versions)} version: a comparison needs two"))
            continue
        a, b = versions[-2].ref, versions[-1].ref
        try:
            diff = store.compare(a, b)
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
