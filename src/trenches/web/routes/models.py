"""The models pages: every model the viewer may read (``/models``); one model's versions,
metrics over time and alias history (``/models/{model}``); one version's lineage, metrics
and gate checks, with the promotion form (``/models/{model}/{version}``); and any two
versions compared (``/models/{model}/compare?a=V&b=W``).

A promotion goes through ``store.models.promote``, whose guard refuses a version whose
latest check failed, as the command line does; the refusal is shown on the page (409).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from trenches.api.access import Allow, Caller, path
from trenches.api.routes.models import Promoting, forced
from trenches.errors import InvalidInput
from trenches.names import INT64_MAX
from trenches.web import render

if TYPE_CHECKING:
    from trenches.models.versions import ModelVersion

router = APIRouter(include_in_schema=False)

Reading = Annotated[Caller, Depends(Allow("models.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("models.read", path("model")))]
Version = Annotated[int, PathParam(ge=1, le=INT64_MAX)]
#: One side of a comparison: a version number, or ``name@V``.
Side = Annotated[str | None, Query(max_length=300)]
#: The aliases the version page offers to move, each with its button's words.
OFFERED = (("candidate", "Make candidate"), ("production", "Promote to production"))
#: Flipped pattern ids listed on the comparison page (the rest are counted).
SHOWN_IDS = 60


@router.get("/models")
def models(request: Request, caller: Reading) -> HTMLResponse:
    """Every model the viewer may read, with its versions and aliases."""
    found = []
    for name in caller.store.models.names():
        if not caller.may("models.read", name):
            continue
        versions = caller.store.models.versions(name)
        found.append(
            {
                "name": name,
                "versions": versions,
                "aliases": [(a, v) for v in versions for a in v.aliases],
            }
        )
    return render.html(request, caller, "models.html", models=found)


@router.get("/models/{model}")
def model(request: Request, model: str, caller: ReadingOne) -> HTMLResponse:
    """One model: its versions with their aliases and latest checks, the metrics of
    each version's run over time, and who moved which alias, when and why."""
    store = caller.store
    versions = store.models.versions(model)
    checks = render.Rights(caller).may("checks.read", model)
    rows = [
        {"version": v, "check": store.gates.latest(v.ref) if checks else None}
        for v in reversed(versions)
    ]
    metrics = _run_metrics(caller, versions)
    return render.html(
        request,
        caller,
        "models_model.html",
        name=model,
        rows=rows,
        figure=_metric_figure(model, versions, metrics),
        history=list(reversed(store.models.alias_history(model))),
        versions=versions,
    )


def _run_metrics(caller: Caller, versions: list[ModelVersion]) -> dict[int, dict[str, float]]:
    """The metrics each version's run logged (the last value of each), by version."""
    found: dict[int, dict[str, float]] = {}
    for v in versions:
        if v.run_id is None:
            continue
        run = caller.store.runs.get(v.run_id)
        found[v.version] = {
            k: float(x) for k, x in run.metrics.items() if x is not None and math.isfinite(x)
        }
    return found


def _metric_figure(
    model: str, versions: list[ModelVersion], metrics: dict[int, dict[str, float]]
) -> dict[str, Any] | None:
    """A line per metric the runs logged, by when each version was made; a point links
    to its version's page."""
    keys = sorted({k for m in metrics.values() for k in m})
    if not keys:
        return None
    traces = []
    for key in keys:
        mine = [v for v in versions if key in metrics.get(v.version, {})]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": key,
                "x": [v.created_at.isoformat() for v in mine],
                "y": [metrics[v.version][key] for v in mine],
                "text": [f"@{v.version}" for v in mine],
                "customdata": [[f"/models/{model}/{v.version}"] for v in mine],
                "hovertemplate": f"%{{text}}: {key} %{{y:.4g}}<extra></extra>",
                # Counts (patterns trained on) are not on a metric's scale.
                "yaxis": "y2" if any(metrics[v.version][key] > 1 for v in mine) else "y",
            }
        )
    layout = {
        "title": {"text": f"What each run of {model} logged, by when its version was made"},
        "xaxis": {"title": {"text": "version made"}},
        "yaxis": {"title": {"text": "metric"}},
        "yaxis2": {"title": {"text": "count"}, "overlaying": "y", "side": "right"},
        "height": 420,
        "margin": {"t": 60},
        "legend": {"orientation": "h", "y": -0.25},
    }
    return {"data": traces, "layout": layout}


@router.get("/models/{model}/compare")
def compare(
    request: Request, model: str, caller: ReadingOne, a: Side = None, b: Side = None
) -> HTMLResponse:
    """Two versions compared on the patterns both predicted: the page, which fetches the
    comparison itself (:func:`comparison`) once shown, as it reads every prediction of
    both and can take seconds on a large dataset."""
    versions = caller.store.models.versions(model)
    one, other = _sides(model, versions, a, b)
    return render.html(
        request,
        caller,
        "models_compare.html",
        name=model,
        versions=versions,
        a=one,
        b=other,
    )


@router.get("/models/{model}/compare/result")
def comparison(
    request: Request, model: str, caller: ReadingOne, a: Side = None, b: Side = None
) -> HTMLResponse:
    """The comparison: metric deltas, the paired test, what B fixed and broke (overall
    and per problem), and the data changes between their training snapshots."""
    versions = caller.store.models.versions(model)
    one, other = _sides(model, versions, a, b)
    refused = None
    found = None
    try:
        found = caller.store.compare(f"{model}@{one}", f"{model}@{other}")
    except InvalidInput as e:
        refused = str(e)
    return render.html(
        request,
        caller,
        "_models_comparison.html",
        name=model,
        a=one,
        b=other,
        comparison=found,
        refused=refused,
        shown=SHOWN_IDS,
        data=_data_changes(found),
    )


def _sides(model: str, versions: list[Any], a: str | None, b: str | None) -> tuple[int, int]:
    """The two versions compared: as given, else the newest two."""
    one, other = _side(model, a, "a"), _side(model, b, "b")
    if one is None or other is None:
        one = versions[-2].version if len(versions) > 1 else versions[0].version
        other = versions[-1].version
    return one, other


def _side(model: str, given: str | None, name: str) -> int | None:
    """A side of a comparison as a version number: ``3`` or ``model@3``."""
    if not given:
        return None
    number = given.removeprefix(f"{model}@")
    if not number.isascii() or not number.isdigit() or not 1 <= int(number) <= INT64_MAX:
        raise InvalidInput(f"{name} {given!r} must be a version of {model}: 3 or {model}@3")
    return int(number)


def _data_changes(found: Any) -> list[dict[str, Any]]:
    """The summary of what changed between the two training snapshots, as rows."""
    if found is None or found.data is None:
        return []
    rows: list[dict[str, Any]] = found.data.summary().to_dict(orient="records")
    return rows


@router.get("/models/{model}/{version}")
def version(request: Request, model: str, version: Version, caller: ReadingOne) -> HTMLResponse:
    """One version: what made it (lineage), what its run logged, its gate checks with
    each gate's figure, its replays on the request log, and (for who may) the
    promotion form."""
    store = caller.store
    found = store.models.get(f"{model}@{version}")
    rights = render.Rights(caller)
    checks = store.gates.history(found.ref) if rights.may("checks.read", model) else []
    replays = store.replays.of(found.ref)[:10] if rights.may("requests.read", model) else []
    problems = []
    if found.dataset is not None and rights.may("problems.read", found.dataset):
        problems = store.problems.list(dataset=found.dataset)
    return render.html(
        request,
        caller,
        "models_version.html",
        name=model,
        v=found,
        endpoint=store.models.endpoint(found) if found.flavor == "endpoint" else None,
        lineage=store.lineage(found.ref, data=False).to_json(),
        checks=list(reversed(checks)),
        replays=replays,
        problems=problems,
        offered=OFFERED,
        message=None,
    )


@router.post("/models/{model}/{version}/aliases/{alias}")
def promote(
    request: Request,
    model: str,
    version: Version,
    alias: Annotated[str, PathParam(max_length=100)],
    caller: Promoting,
    reason: Annotated[str, Form(min_length=1, max_length=10_000)],
) -> HTMLResponse:
    """Move ``alias`` to this version, with a reason kept in the alias history; refused
    (409) when the version's latest gate check failed, unless forced (``?force=1``,
    approvers: the force is kept in the alias history with the reason)."""
    ref = f"{model}@{version}"
    force = forced(request)
    detail = {"alias": alias, "version": version, "reason": reason, "force": force}
    with caller.changing("models.promote", f"model:{model}@{alias}", detail):
        moved = caller.store.models.promote(ref, alias, reason=reason, force=force)
    found = caller.store.models.get(ref)
    return render.html(
        request,
        caller,
        "_model_promote.html",
        name=model,
        v=found,
        offered=OFFERED,
        message=(
            f"{moved.alias} now points at {ref}{' (forced)' if moved.forced else ''} "
            f"(moved by {moved.moved_by}: {moved.reason})"
        ),
    )
