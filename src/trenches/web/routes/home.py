"""The home page: each model with its production and candidate versions and their
latest checks, the open problems by severity, the newest drift reports, and what waits
for a label; each a link to its own page. The viewer sees what their grants let them
read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from trenches.api.access import Allow, Caller
from trenches.problems import SEVERITIES
from trenches.web import render

router = APIRouter(include_in_schema=False)

SignedIn = Annotated[Caller, Depends(Allow.signed_in())]
#: Drift reports shown on the home page.
NEWEST_REPORTS = 5


@router.get("/")
def home(request: Request, caller: SignedIn) -> HTMLResponse:
    """What a team member looks at first."""
    rights = render.Rights(caller)
    return render.html(
        request,
        caller,
        "home.html",
        models=_models(caller, rights),
        problems=_open_problems(caller, rights),
        reports=_drift(caller, rights),
        waiting=caller.store.reviews.count_waiting_rows()
        if rights.anywhere("patterns.relabel")
        else None,
    )


def _models(caller: Caller, rights: render.Rights) -> list[dict[str, Any]]:
    out = []
    for name in caller.store.models.names():
        if not rights.may("models.read", name):
            continue
        versions = caller.store.models.versions(name)
        released = [
            {
                "alias": alias,
                "version": v,
                "check": caller.store.gates.latest(v.ref)
                if rights.may("checks.read", name)
                else None,
            }
            for v in versions
            for alias in v.aliases
        ]
        out.append({"name": name, "versions": len(versions), "released": released})
    return out


def _open_problems(caller: Caller, rights: render.Rights) -> list[dict[str, Any]]:
    found = [
        p
        for p in caller.store.problems.list(status="open")
        if rights.may("problems.read", p.dataset)
    ]
    order = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    found.sort(key=lambda p: (order.get(p.severity, 99), p.slug))
    return [{"problem": p, "size": len(p.positive) + len(p.negative)} for p in found]


def _drift(caller: Caller, rights: render.Rights) -> list[Any]:
    if not rights.anywhere("monitoring.read"):
        return []
    reports = caller.store.monitoring.history(limit=4 * NEWEST_REPORTS)
    readable = [m for m in reports if rights.may("monitoring.read", m.version.split("@")[0])]
    return readable[:NEWEST_REPORTS]
