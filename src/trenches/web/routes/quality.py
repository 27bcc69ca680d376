"""The data quality pages: ``/quality`` lists the snapshots the viewer may read, and
``/quality/{snapshot_id}`` shows a snapshot's data quality report (duplicates,
conflicting labels, likely label errors, near-copies across splits, class balance),
each finding linking to its patterns.

Checking a snapshot fits a model (for likely label errors), which takes seconds: the
page asks for the report with htmx and says it is being computed. A snapshot's data
never changes, so its report is computed once per server and kept (a few of them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from trenches.api.access import Allow, Caller, snapshot_dataset
from trenches.web import render

if TYPE_CHECKING:
    from trenches.patterns.quality import QualityReport
    from trenches.patterns.snapshots import Snapshot

router = APIRouter(include_in_schema=False)

Listing = Annotated[Caller, Depends(Allow("snapshots.read"))]
Reading = Annotated[Caller, Depends(Allow("snapshots.read", snapshot_dataset))]

#: Reports kept in memory (each a few kB of pattern ids).
KEPT_REPORTS = 32
#: Pattern ids shown per finding before "and N more".
SHOWN_IDS = 60
#: What each kind of finding is called on the page.
TITLES = {
    "duplicates": "Exact duplicates",
    "conflicting-labels": "Conflicting labels",
    "leakage": "Near-copies across splits",
    "missing-values": "Missing values",
    "class-imbalance": "Class balance",
    "label-errors": "Likely label errors",
    "source-mix": "Label sources",
}

_kept: OrderedDict[tuple[str, int, str], QualityReport] = OrderedDict()
_lock = threading.Lock()


def kept_report(store_url: str, snapshot: Snapshot) -> QualityReport | None:
    """The report of ``snapshot`` if this server has computed it already."""
    with _lock:
        return _kept.get((store_url, snapshot.id, snapshot.digest))


def report_of(caller: Caller, snapshot: Snapshot) -> QualityReport:
    """The data quality report of ``snapshot``: kept, or computed now (seconds)."""
    key = (caller.store.url, snapshot.id, snapshot.digest)
    with _lock:
        found = _kept.get(key)
    if found is not None:
        return found
    report = caller.store.datasets.get(snapshot.dataset).check(snapshot=snapshot.id)
    with _lock:
        _kept[key] = report
        while len(_kept) > KEPT_REPORTS:
            _kept.popitem(last=False)
    return report


@router.get("/quality")
def snapshots(request: Request, caller: Listing) -> HTMLResponse:
    """Every snapshot the viewer may read, by dataset, newest first."""
    rights = render.Rights(caller)
    datasets = [
        {"dataset": ds, "snapshots": list(reversed(ds.snapshots()))}
        for ds in caller.store.datasets.list()
        if rights.may("snapshots.read", ds.name)
    ]
    return render.html(request, caller, "quality.html", datasets=datasets)


@router.get("/quality/{snapshot_id}")
def snapshot_quality(request: Request, snapshot_id: int, caller: Reading) -> HTMLResponse:
    """A snapshot's data quality report: shown at once when kept, else asked for."""
    snap = caller.store.snapshots.get(snapshot_id)
    report = kept_report(caller.store.url, snap)
    return render.html(
        request, caller, "quality_snapshot.html", snapshot=snap, **_shown(snap, report)
    )


@router.get("/quality/{snapshot_id}/report")
def snapshot_report(request: Request, snapshot_id: int, caller: Reading) -> HTMLResponse:
    """The report of a snapshot, as a fragment (computed if need be)."""
    snap = caller.store.snapshots.get(snapshot_id)
    return render.html(
        request,
        caller,
        "_quality_report.html",
        snapshot=snap,
        **_shown(snap, report_of(caller, snap)),
    )


def _shown(snap: Snapshot, report: QualityReport | None) -> dict[str, Any]:
    """What the templates show of ``report`` (None: not computed yet)."""
    if report is None:
        return {"report": None, "findings": [], "balance": None, "counts": []}
    findings = [
        {
            "finding": f,
            "title": TITLES.get(f.kind, f.kind),
            "groups": [list(g) for g in f.groups[:SHOWN_IDS]],
            "ids": list(f.pattern_ids[:SHOWN_IDS]),
            "more": max(0, len(f.groups or f.pattern_ids) - SHOWN_IDS),
            "details": f.details.get("groups", []),
            "top": f.details.get("top", {}),
        }
        for f in report.findings
    ]
    counts = report.finding("class-imbalance").details.get("counts") or {}
    return {
        "report": report,
        "findings": findings,
        "balance": _balance(report),
        "counts": [f"{label}: {n}" for label, n in counts.items()],
    }


def _balance(report: QualityReport) -> dict[str, Any] | None:
    """A bar chart of the patterns per class (classification only)."""
    counts = report.finding("class-imbalance").details.get("counts")
    if not counts:
        return None
    names = list(counts)
    return {
        "data": [
            {
                "type": "bar",
                "x": names,
                "y": [counts[n] for n in names],
                "marker": {"color": "#0b57b3"},
                "hovertemplate": "%{x}: %{y} patterns<extra></extra>",
            }
        ],
        "layout": {
            "height": 260,
            "margin": {"l": 50, "r": 10, "t": 10, "b": 40},
            "yaxis": {"title": {"text": "patterns"}},
            "xaxis": {"title": {"text": "label"}},
        },
    }
