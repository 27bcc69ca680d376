"""The report's production section: drift reports over time, the newest drift
column by column with a chart, and the retraining passes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trenches.monitoring.drift import ColumnDrift
    from trenches.monitoring.reports import Alert, Monitored
    from trenches.retrain.record import Retrain
    from trenches.store import Store

from trenches.report.parts import (
    _anchor,
    _code,
    _e,
    _empty,
    _num,
    _plot,
    _Raw,
    _Scope,
    _table,
    _when,
)

#: Drift reports (and retraining passes) listed for a model, newest first.
MAX_DRIFT_REPORTS = 30
#: The smallest statistic / bound drawn: the drift chart's axis is logarithmic.
_DRIFT_FLOOR = 0.01


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
    from trenches.monitoring.figures import P_VALUE_TESTS

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
    figure = drift_figure(m)
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
    from trenches.monitoring.figures import P_VALUE_TESTS

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


def drift_figure(m: Monitored) -> Any:
    """A bar for each column: its statistic relative to its bound, on a log scale so
    that a column ten times past the bound does not flatten the others; the drifted in
    red."""
    import plotly.graph_objects as go

    from trenches.monitoring.figures import P_VALUE_TESTS

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


def _replays(store: Store, versions: list[Any]) -> str:
    """The replays of the versions on the request log, newest first: what a gate on
    ``replay-agreement`` reads, shown beside the checks."""
    rows = []
    for v in reversed(versions):
        for r in store.replays.of(v.ref)[:3]:
            rows.append(
                [
                    v.ref,
                    _when(r.created_at) if r.created_at else "",
                    f"{r.requests} requests, {r.rows} rows",
                    _num(r.agreement),
                    f"{_num(r.candidate_accuracy)} vs {_num(r.production_accuracy)} "
                    f"on {r.labelled} labelled"
                    if r.labelled
                    else "",
                    f"{r.fixed_count} fixed, {r.broken_count} broken",
                ]
            )
    if not rows:
        return ""
    headers = ["version", "replayed", "on", "agreement", "accuracy (vs callers')", "flips"]
    return "<h4>Replays on the request log</h4>" + _table(headers, rows)
