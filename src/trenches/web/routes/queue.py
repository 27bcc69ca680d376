"""The labelling queue: ``/queue``, what waits for a label, one item at a time.

Items are production rows whose feedback has a label (those disagreeing with the
answer first), rows the production monitor flags as outliers, and the findings of a
data check of each dataset's newest snapshot (likely label errors, conflicting
labels). On each, a labeller keeps the label, relabels it (with a reason), or a
tester sends it to a problem; each decision is a review (``store.reviews``), which
takes the item off the queue, and is recorded in the audit log as the caller's. A
production row becomes a pattern (``store.requests.to_patterns``) when relabelled
or sent to a problem.

The findings and the outliers take seconds to compute (a model is fitted), so the
page asks for them with htmx, a dataset or model at a time.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse

from trenches.api.access import Allow, Caller, path, pattern_dataset
from trenches.api.routes.requests import request_model
from trenches.errors import NotFound, TrenchesError
from trenches.names import INT64_MAX
from trenches.requests.reviews import pattern_subject, row_subject
from trenches.web import render
from trenches.web.routes.quality import report_of

if TYPE_CHECKING:
    from trenches.models.versions import ModelVersion
    from trenches.patterns.quality import QualityReport
    from trenches.patterns.record import Pattern
    from trenches.requests.reviews import WaitingRow

router = APIRouter(include_in_schema=False)

Queueing = Annotated[Caller, Depends(Allow("patterns.relabel"))]
DatasetQueue = Annotated[Caller, Depends(Allow("patterns.relabel", path("dataset")))]
ModelQueue = Annotated[Caller, Depends(Allow("feedback.add", path("model")))]
OnPattern = Annotated[Caller, Depends(Allow("patterns.relabel", pattern_dataset))]
SendingPattern = Annotated[Caller, Depends(Allow("problems.add", pattern_dataset))]
OnRow = Annotated[Caller, Depends(Allow("feedback.add", request_model))]
SendingRow = Annotated[Caller, Depends(Allow("problems.add", request_model))]

PatternId = Annotated[int, Path(ge=1, le=INT64_MAX)]
RequestId = Annotated[str, Path(min_length=1, max_length=64)]
Row = Annotated[int, Path(ge=0, le=INT64_MAX)]
Label = Annotated[str, Form(min_length=1, max_length=1000)]
Reason = Annotated[str, Form(min_length=1, max_length=10_000)]
ProblemSlug = Annotated[str, Form(min_length=1, max_length=200)]
Polarity = Annotated[str, Form(pattern="^(positive|negative)$")]

#: Production rows shown at once.
ROWS_SHOWN = 50
#: Findings shown at once per dataset.
FINDINGS_SHOWN = 20
#: Outliers looked at per model, and the window of traffic they are looked for in.
OUTLIERS = 10
OUTLIER_WINDOW = "7d"
#: Inputs shown before the rest fold away.
INPUTS_SHOWN = 6


def item_id(subject: str) -> str:
    """The id of a queue item's element on the page."""
    return "item-" + re.sub(r"[^A-Za-z0-9_-]", "-", subject)


# --- the page and its lazy parts -----------------------------------------------------


@router.get("/queue")
def queue(request: Request, caller: Queueing) -> HTMLResponse:
    """The labelling queue: production rows with feedback at once, then the findings
    of each dataset's newest snapshot and the outliers of each served model."""
    rights = render.Rights(caller)
    store = caller.store
    waiting = [
        w
        for w in store.reviews.waiting_rows(limit=ROWS_SHOWN)
        if rights.may("feedback.add", _model(w.version))
    ]
    versions: dict[str, ModelVersion] = {}
    items = [_row_item(caller, w, "feedback", versions) for w in waiting]
    datasets = [
        ds.name
        for ds in store.datasets.list()
        if rights.may("patterns.relabel", ds.name) and ds.snapshots()
    ]
    models = [
        name
        for name in store.models.names()
        if rights.may("feedback.add", name)
        and any("production" in v.aliases for v in store.models.versions(name))
    ]
    return render.html(
        request,
        caller,
        "queue.html",
        items=items,
        waiting=store.reviews.count_waiting_rows(),
        datasets=datasets,
        models=models,
        problems=_problems(caller, rights),
    )


@router.get("/queue/findings/{dataset}")
def findings(request: Request, dataset: str, caller: DatasetQueue) -> HTMLResponse:
    """The likely label errors and conflicting labels of the dataset's newest
    snapshot that no one has reviewed, as queue items."""
    snaps = caller.store.datasets.get(dataset).snapshots()
    items: list[dict[str, Any]] = []
    snapshot = snaps[-1] if snaps else None
    if snapshot is not None:
        report = report_of(caller, snapshot)
        items = _finding_items(caller, report)
    return render.html(
        request,
        caller,
        "_queue_items.html",
        items=items,
        source=f"snapshot {snapshot.id} of {dataset}" if snapshot else dataset,
        problems=_problems(caller, render.Rights(caller)),
        note=None,
    )


@router.get("/queue/outliers/{model}")
def outliers(request: Request, model: str, caller: ModelQueue) -> HTMLResponse:
    """The production rows of the last week least like the training data that have
    no label and no review, as queue items."""
    note = None
    items: list[dict[str, Any]] = []
    try:
        found = caller.store.monitoring.outliers(
            f"{model}@production", since=OUTLIER_WINDOW, top=OUTLIERS
        )
    except TrenchesError as e:
        note = f"No outliers of {model}: {e}"
    else:
        keys = [(str(r), int(n)) for r, n in zip(found["request_id"], found["row"], strict=True)]
        why = {k: u for k, u in zip(keys, found["unusual"], strict=True)}
        reviewed = caller.store.reviews.reviewed(row_subject(*k) for k in keys)
        rows = [w for w in caller.store.reviews.rows(keys) if w.subject not in reviewed]
        versions: dict[str, ModelVersion] = {}
        for w in rows:
            if w.label is None:  # a labelled row waits among the feedback
                item = _row_item(caller, w, "outlier", versions)
                item["note"] = f"Unusual: {why[(w.request_id, w.row)]}"
                items.append(item)
    return render.html(
        request,
        caller,
        "_queue_items.html",
        items=items,
        source=f"outliers of {model}@production",
        problems=_problems(caller, render.Rights(caller)),
        note=note,
    )


# --- decisions on a pattern (a data-check finding) ------------------------------------


@router.post("/queue/patterns/{pattern_id}/accept")
def accept_pattern(request: Request, pattern_id: PatternId, caller: OnPattern) -> HTMLResponse:
    """The label stands: the finding leaves the queue."""
    subject = pattern_subject(pattern_id)
    pattern = caller.store.patterns.get(pattern_id)
    with caller.changing("patterns.review", f"pattern:{pattern_id}", {"decision": "kept"}):
        caller.store.reviews.record(subject, "kept", label=pattern.label, pattern_id=pattern_id)
    return _decided(request, caller, subject, f"Kept the label {pattern.label!s}", pattern_id)


@router.post("/queue/patterns/{pattern_id}/relabel")
def relabel_pattern(
    request: Request, pattern_id: PatternId, caller: OnPattern, label: Label, reason: Reason
) -> HTMLResponse:
    """A new label, and why: the pattern is replaced by one with that label."""
    subject = pattern_subject(pattern_id)
    detail = {"label": label, "reason": reason, "via": "queue"}
    with caller.changing("patterns.relabel", f"pattern:{pattern_id}", detail):
        new = caller.store.patterns.relabel(
            pattern_id, label, source="expert", reason=reason, labelled_by=caller.user.name
        )
        caller.store.reviews.record(
            subject, "relabelled", label=new.label, reason=reason, pattern_id=new.id
        )
    return _decided(request, caller, subject, f"Relabelled as {new.label!s}", new.id)


@router.post("/queue/patterns/{pattern_id}/send")
def send_pattern(
    request: Request,
    pattern_id: PatternId,
    caller: SendingPattern,
    problem: ProblemSlug,
    polarity: Polarity,
) -> HTMLResponse:
    """The pattern joins a problem (as a positive or negative pattern)."""
    subject = pattern_subject(pattern_id)
    with caller.changing("problems.add", f"problem:{problem}", {polarity: [pattern_id]}):
        caller.store.problems.add(
            problem,
            positive=[pattern_id] if polarity == "positive" else (),
            negative=[pattern_id] if polarity == "negative" else (),
        )
        caller.store.reviews.record(subject, "sent", problem=problem, pattern_id=pattern_id)
    return _decided(
        request, caller, subject, f"Sent to {problem} as a {polarity} pattern", pattern_id
    )


# --- decisions on a production row ----------------------------------------------------


@router.post("/queue/requests/{request_id}/{row}/accept")
def accept_row(request: Request, request_id: RequestId, row: Row, caller: OnRow) -> HTMLResponse:
    """The answer (or the feedback's label) stands: the row leaves the queue."""
    subject = row_subject(request_id, row)
    shown = _production_row(caller, request_id, row)
    kept = shown.label if shown.label is not None else shown.predicted
    with caller.changing("patterns.review", f"request:{request_id}", {"row": row}):
        caller.store.reviews.record(subject, "kept", label=kept)
    return _decided(request, caller, subject, f"Kept the label {kept!s}", None)


@router.post("/queue/requests/{request_id}/{row}/relabel")
def relabel_row(
    request: Request,
    request_id: RequestId,
    row: Row,
    caller: OnRow,
    label: Label,
    reason: Reason,
) -> HTMLResponse:
    """A label for the row, and why: it is given as feedback, and the row becomes a
    production pattern with it."""
    subject = row_subject(request_id, row)
    _production_row(caller, request_id, row)
    detail = {"row": row, "label": label, "reason": reason, "via": "queue"}
    with caller.changing("patterns.relabel", f"request:{request_id}", detail):
        pid, given = _as_pattern(caller, request_id, row, label, reason, None, "positive")
        caller.store.reviews.record(
            subject, "relabelled", label=given, reason=reason, pattern_id=pid
        )
    return _decided(request, caller, subject, f"Labelled {given!s}", pid)


@router.post("/queue/requests/{request_id}/{row}/send")
def send_row(
    request: Request,
    request_id: RequestId,
    row: Row,
    caller: SendingRow,
    problem: ProblemSlug,
    polarity: Polarity,
    label: Label,
) -> HTMLResponse:
    """The row, with its label, becomes a pattern of a problem."""
    subject = row_subject(request_id, row)
    _production_row(caller, request_id, row)
    detail = {"row": row, "label": label, "polarity": polarity, "via": "queue"}
    with caller.changing("problems.add", f"problem:{problem}", detail):
        pid, given = _as_pattern(
            caller, request_id, row, label, f"sent to {problem}", problem, polarity
        )
        caller.store.reviews.record(subject, "sent", label=given, problem=problem, pattern_id=pid)
    return _decided(request, caller, subject, f"Sent to {problem} as a {polarity} pattern", pid)


# --- helpers ---------------------------------------------------------------------------


def _model(version: str) -> str:
    return version.rpartition("@")[0]


def _production_row(caller: Caller, request_id: str, row: int) -> WaitingRow:
    found = caller.store.reviews.rows([(request_id, row)])
    if not found:
        raise NotFound(f"no request {request_id} in the log")
    if not found[0].inputs:
        raise NotFound(f"request {request_id} has no row {row} with logged inputs")
    return found[0]


def _as_pattern(
    caller: Caller,
    request_id: str,
    row: int,
    label: str,
    reason: str,
    problem: str | None,
    polarity: str,
) -> tuple[int, Any]:
    """Give the row ``label`` as feedback (unless its newest label is that already),
    make it a production pattern, or relabel the pattern it became before, and add
    that to ``problem``: the pattern's id and the label as stored."""
    store = caller.store
    version = store.models.get(store.requests.served_by(request_id))
    if version.dataset is not None:
        store.grants.require(caller.user, "patterns.add", version.dataset)
    current = _production_row(caller, request_id, row).label
    given = current
    if current is None or str(current) != label:
        given = store.requests.feedback(request_id, row=row, label=label, comment=reason).label
    made = store.requests.to_patterns([request_id], labelled_by=caller.user.name)
    found = next(p for p in made.patterns if p.row == row)
    pid = found.pattern_id
    if not found.new:  # a pattern already, perhaps relabelled since: its newest version
        latest = store.patterns.history(pid).current
        pid = latest.id
        if str(latest.label) != str(given):
            pid = store.patterns.relabel(
                pid, given, source="production", reason=reason, labelled_by=caller.user.name
            ).id
    if problem is not None:
        store.problems.add(
            problem,
            positive=[pid] if polarity == "positive" else (),
            negative=[pid] if polarity == "negative" else (),
        )
    return pid, given


def _decided(
    request: Request, caller: Caller, subject: str, text: str, pattern_id: int | None
) -> HTMLResponse:
    """The item, decided: a note where it was; the page moves on to the next one."""
    return render.html(
        request,
        caller,
        "_queue_decided.html",
        item_id=item_id(subject),
        text=text,
        pattern_id=pattern_id,
        waiting=caller.store.reviews.count_waiting_rows(),
    )


def _problems(caller: Caller, rights: render.Rights) -> list[Any]:
    """The open problems the caller may add patterns to."""
    return [
        p
        for p in caller.store.problems.list(status="open")
        if rights.may("problems.add", p.dataset)
    ]


def _row_item(
    caller: Caller, w: WaitingRow, kind: str, versions: dict[str, ModelVersion]
) -> dict[str, Any]:
    """A production row as a queue item (``versions``: those read so far, by name)."""
    if w.version not in versions:
        versions[w.version] = caller.store.models.get(w.version)
    version = versions[w.version]
    subject = w.subject
    return {
        "id": item_id(subject),
        "kind": kind,
        "title": f"Request {w.request_id[:12]}, row {w.row}",
        "action": f"/queue/requests/{w.request_id}/{w.row}",
        "pattern_id": None,
        "model": _model(w.version),
        "dataset": version.dataset,
        "where": f"answered by {w.version} on {render.ENV.filters['when'](w.received_at)}",
        "inputs": list(w.inputs.items()),
        "label": None,
        "predicted": w.predicted,
        "feedback": w.label,
        "comment": w.comment,
        "disagrees": w.label is not None and w.disagrees,
        "note": None,
        "classes": list(version.signature.classes or ()),
        "current": w.label if w.label is not None else w.predicted,
    }


def _finding_items(caller: Caller, report: QualityReport) -> list[dict[str, Any]]:
    """The unreviewed, still active patterns of the report's likely label errors and
    conflicting labels, at most :data:`FINDINGS_SHOWN`."""
    errors = report.finding("label-errors")
    top = errors.details.get("top", {})
    conflicts = report.finding("conflicting-labels")
    why: dict[int, str] = {}
    for pid in errors.pattern_ids:
        hint = top.get(pid)
        why[pid] = (
            f"Likely label error: suggested {hint['suggested']} "
            f"(confidence in the label {hint['confidence_in_label']:.2g})"
            if hint
            else "Likely label error"
        )
    for group in conflicts.groups:
        for pid in group:
            others = ", ".join(str(o) for o in group if o != pid)
            why.setdefault(pid, f"Conflicting labels: the same inputs as pattern {others}")
    reviewed = caller.store.reviews.reviewed(pattern_subject(p) for p in why)
    counts = report.finding("class-imbalance").details.get("counts") or {}
    items = []
    for pid, text in why.items():
        if pattern_subject(pid) in reviewed:
            continue
        pattern = caller.store.patterns.get(pid)
        if not pattern.active:
            continue
        items.append(_pattern_item(pattern, text, list(counts)))
        if len(items) >= FINDINGS_SHOWN:
            break
    return items


def _pattern_item(pattern: Pattern, note: str, classes: list[Any]) -> dict[str, Any]:
    subject = pattern_subject(pattern.id)
    return {
        "id": item_id(subject),
        "kind": "label error" if note.startswith("Likely") else "conflict",
        "title": f"Pattern {pattern.id}",
        "action": f"/queue/patterns/{pattern.id}",
        "pattern_id": pattern.id,
        "model": None,
        "dataset": pattern.dataset,
        "where": f"{pattern.dataset}, {pattern.split}, {pattern.source}"
        + (f", labelled by {pattern.labelled_by}" if pattern.labelled_by else ""),
        "inputs": list(pattern.inputs.items()),
        "label": pattern.label,
        "predicted": None,
        "feedback": None,
        "comment": None,
        "disagrees": False,
        "note": note,
        "classes": classes,
        "current": pattern.label,
    }
