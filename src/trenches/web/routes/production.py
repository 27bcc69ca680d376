"""The production pages: each served model at a glance (``/production``), and one model
(``/production/{model}``): its drift reports over time, one report column by column,
request volume and latency from the log, and the retraining passes with why each
candidate was or was not promoted. The unusual rows of the newest window
(``/production/{model}/outliers``) come as a fragment the page asks for once shown:
they take an isolation forest fitted on the reference, too slow to hold the page up.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from trenches.api.access import Allow, Caller, path
from trenches.errors import InvalidInput, NotFound
from trenches.names import INT64_MAX
from trenches.report.production import drift_figure
from trenches.web import render

if TYPE_CHECKING:
    import pandas as pd

    from trenches.monitoring.reports import Monitored

router = APIRouter(include_in_schema=False)

Reading = Annotated[Caller, Depends(Allow("monitoring.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("monitoring.read", path("model")))]
#: Drift reports (and retraining passes) shown for a model, newest first.
REPORTS = 30
#: Unusual rows listed.
OUTLIERS = 10
#: How far back the traffic chart reaches, as the page offers it.
SPANS = {"24h": "the last day", "7d": "the last week", "30d": "the last 30 days", "all": "all"}
Span = Literal["24h", "7d", "30d", "all"]


@router.get("/production")
def production(request: Request, caller: Reading) -> HTMLResponse:
    """Each model the viewer may watch: its production version, newest drift report,
    and retraining passes."""
    store = caller.store
    found = []
    for name in store.models.names():
        if not caller.may("monitoring.read", name):
            continue
        reports = store.monitoring.history(name, limit=1)
        versions = store.models.versions(name)
        found.append(
            {
                "name": name,
                "production": next((v for v in versions if "production" in v.aliases), None),
                "newest": reports[0] if reports else None,
                "passes": store.retrains.history(name)[:1],
            }
        )
    return render.html(request, caller, "production.html", models=found)


@router.get("/production/{model}")
def production_model(
    request: Request,
    model: str,
    caller: ReadingOne,
    report: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    span: Span = "30d",
) -> HTMLResponse:
    """One model in production."""
    store = caller.store
    reports = store.monitoring.history(model, limit=REPORTS)
    chosen = _chosen(caller, model, reports, report)
    traffic = store.requests.traffic(version=model, since=None if span == "all" else span)
    passes = store.retrains.history(model)[:REPORTS]
    return render.html(
        request,
        caller,
        "production_model.html",
        name=model,
        reports=reports,
        chosen=chosen,
        columns=_columns(chosen),
        over_time=_over_time(model, reports),
        drift=None if chosen is None else _plain(drift_figure(chosen)),
        traffic=_traffic_figure(traffic),
        volume=_volume(traffic),
        span=span,
        spans=SPANS,
        passes=passes,
    )


def _chosen(
    caller: Caller, model: str, reports: list[Monitored], wanted: int | None
) -> Monitored | None:
    """The report shown column by column: ``wanted`` (of this model), else the newest."""
    if wanted is None:
        return reports[0] if reports else None
    found = next((m for m in reports if m.id == wanted), None)
    if found is None:
        found = caller.store.monitoring.get(wanted)
    if found.version.split("@")[0] != model:
        raise NotFound(f"no drift report {wanted} of {model}")
    return found


def _columns(m: Monitored | None) -> list[Any]:
    """The report's columns, the drifted first, then the predictions."""
    if m is None:
        return []
    columns = sorted(m.report.columns, key=lambda c: not c.drifted)
    return [*columns, *([m.report.prediction] if m.report.prediction is not None else [])]


def _plain(figure: Any) -> dict[str, Any] | None:
    return None if figure is None else dict(figure.to_plotly_json())


def _minus_log10(p: float | None) -> float | None:
    if p is None or not math.isfinite(p):
        return None
    return -math.log10(min(max(p, 1e-300), 1.0))


def _over_time(model: str, reports: list[Monitored]) -> dict[str, Any] | None:
    """Drifted columns per report (bars) and the smallest adjusted p-value of any
    column (as −log10, a line), oldest first; a point opens its report."""
    if not reports:
        return None
    ordered = list(reversed(reports))
    # One place per report, in order: reports come at uneven times, and a time axis
    # would draw two of them as a wall of a bar.
    x = [f"#{m.id} {m.created_at:%m-%d %H:%M}" for m in ordered]
    links = [[f"/production/{model}?report={m.id}"] for m in ordered]
    smallest = [
        _minus_log10(
            min((c.p_adjusted for c in m.report.columns if c.p_adjusted is not None), default=None)
        )
        for m in ordered
    ]
    return {
        "data": [
            {
                "type": "bar",
                "name": "drifted columns",
                "x": x,
                "y": [len(m.report.drifted_columns) for m in ordered],
                "customdata": links,
                "text": [f"#{m.id} {m.version}" for m in ordered],
                "hovertemplate": "%{text}: %{y} drifted columns<extra></extra>",
                "marker": {"color": "#a40e26"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "−log10 smallest adjusted p",
                "x": x,
                "y": smallest,
                "yaxis": "y2",
                "customdata": links,
                "hovertemplate": "−log10 p %{y:.3g}<extra></extra>",
                "marker": {"color": "#0b57b3"},
            },
        ],
        "layout": {
            "title": {"text": f"Drift of {model}'s production inputs, report by report"},
            "xaxis": {"type": "category", "title": {"text": "report"}},
            "yaxis": {"title": {"text": "drifted columns"}, "rangemode": "tozero"},
            "yaxis2": {
                "title": {"text": "−log10 smallest adjusted p"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
            },
            "height": 380,
            "margin": {"t": 60},
            "legend": {"orientation": "h", "y": -0.2},
        },
    }


def _traffic_figure(traffic: pd.DataFrame) -> dict[str, Any] | None:
    """Requests per bucket (bars) and their mean and worst latency (lines)."""
    if traffic.empty:
        return None
    x = [t.isoformat() for t in traffic["start"]]
    return {
        "data": [
            {
                "type": "bar",
                "name": "requests",
                "x": x,
                "y": traffic["requests"].tolist(),
                "marker": {"color": "#8c959f"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "mean latency (ms)",
                "x": x,
                "y": traffic["latency_ms_mean"].tolist(),
                "yaxis": "y2",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "worst latency (ms)",
                "x": x,
                "y": traffic["latency_ms_max"].tolist(),
                "yaxis": "y2",
                "line": {"dash": "dot"},
            },
        ],
        "layout": {
            "title": {"text": "Requests and latency from the request log"},
            "yaxis": {"title": {"text": "requests"}, "rangemode": "tozero"},
            "yaxis2": {
                "title": {"text": "latency (ms)"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
            },
            "height": 360,
            "margin": {"t": 60},
            "legend": {"orientation": "h", "y": -0.2},
        },
    }


def _volume(traffic: pd.DataFrame) -> dict[str, Any]:
    """Totals of the span: requests, rows, mean and worst latency."""
    if traffic.empty:
        return {"requests": 0, "rows": 0, "mean": None, "worst": None}
    requests = int(traffic["requests"].sum())
    weighted = float((traffic["latency_ms_mean"] * traffic["requests"]).sum()) / requests
    return {
        "requests": requests,
        "rows": int(traffic["rows"].sum()),
        "mean": weighted,
        "worst": float(traffic["latency_ms_max"].max()),
    }


@router.get("/production/{model}/outliers")
def outliers(request: Request, model: str, caller: ReadingOne) -> HTMLResponse:
    """The rows of the newest report's window least like the reference (a fragment)."""
    store = caller.store
    reports = store.monitoring.history(model, limit=1)
    found = None
    refused = None
    newest = reports[0] if reports else None
    if newest is not None:
        try:
            found = store.monitoring.outliers(
                newest.version, since=newest.since, until=newest.until, top=OUTLIERS
            ).to_dict(orient="records")
        except InvalidInput as e:
            refused = str(e)
    return render.html(
        request,
        caller,
        "_production_outliers.html",
        name=model,
        newest=newest,
        rows=found,
        refused=refused,
    )
