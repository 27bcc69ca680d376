"""The patterns pages: a table over millions of patterns, filtered in the query string
and paged by key (``after``, the last id shown), from which testers pick patterns for a
problem; and a pattern's page: its history chain, every version's prediction on it, its
problems and explanations, where labellers relabel it and maintainers deactivate it.

Nothing here reads a whole dataset or prediction set: a page reads its rows, and each
version's predictions on those rows alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from trenches import verdicts as verdict
from trenches.api.access import Allow, Caller, pattern_dataset
from trenches.errors import InvalidInput, NotFound
from trenches.names import INT64_MAX, SPLITS
from trenches.patterns.selection import PatternQuery
from trenches.problems import POLARITIES, SEVERITIES
from trenches.web import render

if TYPE_CHECKING:
    from trenches.models.versions import ModelVersion
    from trenches.store import Store

router = APIRouter(include_in_schema=False)

#: Rows on a page of patterns.
PAGE = 50
#: Input values shown in a table cell before "...".
SHOWN_INPUTS = 4

Reading = Annotated[Caller, Depends(Allow("patterns.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("patterns.read", pattern_dataset))]
Relabelling = Annotated[Caller, Depends(Allow("patterns.relabel", pattern_dataset))]
Deactivating = Annotated[Caller, Depends(Allow("patterns.deactivate", pattern_dataset))]
# The version is named in the form: the route checks predictions.create on its model.
Explaining = Annotated[Caller, Depends(Allow("predictions.read", pattern_dataset))]
PatternId = Annotated[int, Path(ge=1, le=INT64_MAX)]
Text = Annotated[str | None, Query(max_length=200)]


def versions_of(store: Store, dataset: str) -> list[str]:
    """The references of the dataset's model versions, oldest first."""
    return list(_versions(store, dataset))


def _versions(store: Store, dataset: str) -> dict[str, ModelVersion]:
    found = [
        v
        for name in store.models.names()
        for v in store.models.versions(name)
        if v.dataset == dataset
    ]
    found.sort(key=lambda v: (v.created_at, v.id))
    return {v.ref: v for v in found}


def predictions_by_version(
    store: Store, refs: Sequence[str | ModelVersion], ids: Sequence[int]
) -> dict[str, dict[int, str]]:
    """Each version's predicted label (or value) on each of ``ids``, as text."""
    out: dict[str, dict[int, str]] = {}
    for version in refs:
        ref = version if isinstance(version, str) else version.ref
        found = (
            store.predictors.predictions_of(version, ids, columns=("label_index", "value"))
            if ids
            else None
        )
        shown: dict[int, str] = {}
        if found is not None and len(found):
            labels = found.labels
            values = labels if labels is not None else found.values
            if values is not None:
                shown = {
                    int(i): (str(v) if labels is not None else f"{float(v):.4g}")
                    for i, v in zip(found.pattern_ids, values, strict=True)
                }
        out[ref] = shown
    return out


def show_inputs(inputs: dict[str, Any]) -> str:
    """A pattern's inputs in a table cell: the first few ``name=value``."""
    parts = [f"{k}={_short(v)}" for k, v in list(inputs.items())[:SHOWN_INPUTS]]
    if len(inputs) > SHOWN_INPUTS:
        parts.append("…")
    return ", ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


@router.get("/patterns")
def patterns_page(  # noqa: PLR0913
    request: Request,
    caller: Reading,
    dataset: Text = None,
    split: Annotated[Literal["train", "validation", "test", ""] | None, Query()] = None,
    source: Text = None,
    labelled_by: Text = None,
    label: Text = None,
    since: Text = None,
    until: Text = None,
    problem: Text = None,
    wrong_by: Text = None,
    q: Text = None,
    active: Annotated[Literal["yes", "no", ""] | None, Query()] = None,
    after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> HTMLResponse:
    """The patterns the viewer may read, filtered, a page at a time."""
    rights = render.Rights(caller)
    store = caller.store
    names = [d.name for d in store.datasets.list() if rights.may("patterns.read", d.name)]
    filters = {
        "dataset": dataset or "",
        "split": split or "",
        "source": source or "",
        "labelled_by": labelled_by or "",
        "label": label or "",
        "since": since or "",
        "until": until or "",
        "problem": problem or "",
        "wrong_by": wrong_by or "",
        "q": q or "",
        "active": active or "",
    }
    within = None
    if wrong_by:
        predictor = store.predictors.resolve(wrong_by)
        if predictor.dataset.name not in names:
            raise NotFound(f"no version {wrong_by!r} of a dataset you may read")
        within = store.predictors.wrong(predictor)
    query = PatternQuery(
        datasets=[dataset] if dataset in names else ([] if dataset else names),
        split=split or None,
        source=source or None,
        labelled_by=labelled_by or None,
        label=label or None,
        since=since or None,
        until=until or None,
        problem=problem or None,
        active={"yes": True, "no": False}.get(active or ""),
        search=q or None,
        within=within,
    )
    found = store.patterns.find(query, after=after, limit=PAGE)
    counted = store.patterns.count(query)
    ids = [p.id for p in found.patterns]
    shown = predictions_by_version(store, [wrong_by], ids)[wrong_by] if wrong_by else {}
    kept = {k: v for k, v in filters.items() if v}
    problems = [p for n in names for p in store.problems.list(dataset=n)]
    pickable = [p for p in problems if p.status == "open" and rights.may("problems.add", p.dataset)]
    return render.html(
        request,
        caller,
        "patterns.html",
        rows=[
            {"pattern": p, "inputs": show_inputs(p.inputs), "predicted": shown.get(p.id)}
            for p in found.patterns
        ],
        count=counted,
        filters=filters,
        datasets=names,
        splits=SPLITS,
        problems=problems,
        versions=[r for n in names for r in versions_of(store, n)],
        next_url=f"/patterns?{urlencode({**kept, 'after': found.next_after})}"
        if found.next_after is not None
        else None,
        first_url=f"/patterns?{urlencode(kept)}" if after else None,
        pickable=pickable,
        creatable=[n for n in names if rights.may("problems.create", n)],
        severities=SEVERITIES,
        polarities=POLARITIES,
    )


@router.get("/patterns/{pattern_id}")
def pattern_page(request: Request, pattern_id: PatternId, caller: ReadingOne) -> HTMLResponse:
    """One pattern: what it is, how it came to be, and what every version made of it."""
    store = caller.store
    pattern = store.patterns.get(pattern_id)
    history = store.patterns.history(pattern_id)
    versions = _versions(store, pattern.dataset)
    refs = list(versions)
    ds = store.datasets.get(pattern.dataset)
    predictions = []
    for ref, version in versions.items():
        found = store.predictors.predictions_of(version, [pattern_id])
        predictions.append({"ref": ref, **_prediction(found, ds, pattern_id)})
    problems = [
        {"problem": p, "polarity": "positive" if pattern_id in p.positive else "negative"}
        for p in store.problems.list(dataset=pattern.dataset)
        if pattern_id in p.patterns()
    ]
    explanations = store.explanations.list(pattern_ids=[pattern_id])
    rights = render.Rights(caller)
    explainable = [r for r in refs if rights.may("predictions.create", r.split("@")[0])]
    classes = next((p["classes"] for p in predictions if p["classes"]), ())
    return render.html(
        request,
        caller,
        "pattern.html",
        pattern=pattern,
        history=history,
        predictions=predictions,
        problems=problems,
        explanations=explanations,
        explainable=explainable,
        classes=classes,
    )


def _prediction(found: Any, ds: Any, pattern_id: int) -> dict[str, Any]:
    """A version's prediction on one pattern, as the page shows it."""
    out: dict[str, Any] = {"predicted": None, "right": None, "probability": None}
    out["classes"] = found.classes or ()
    if not len(found):
        return out
    if found.labels is not None:
        out["predicted"] = str(found.labels[0])
        if found.scores is not None and found.label_index is not None:
            p = float(found.scores[0][found.label_index[0]])
            out["probability"] = None if p != p else p
    elif found.values is not None:
        out["predicted"] = f"{float(found.values[0]):.4g}"
    right = verdict.right(found, found.pattern_ids, ds, ds.tolerance)
    out["right"] = None if right is None else bool(right[0])
    return out


@router.post("/patterns/{pattern_id}/relabel")
def relabel(
    request: Request,
    pattern_id: PatternId,
    caller: Relabelling,
    label: Annotated[str, Form(min_length=1, max_length=10_000)],
    reason: Annotated[str, Form(min_length=1, max_length=10_000)],
) -> Response:
    """Relabel the pattern as the caller, and go to its new version."""
    with caller.changing("patterns.relabel", f"pattern:{pattern_id}", {"reason": reason}):
        new = caller.store.patterns.relabel(
            pattern_id, label, source="expert", reason=reason, labelled_by=caller.user.name
        )
    return Response(status_code=204, headers={"HX-Redirect": f"/patterns/{new.id}"})


@router.post("/patterns/{pattern_id}/deactivate")
def deactivate(
    request: Request,
    pattern_id: PatternId,
    caller: Deactivating,
    reason: Annotated[str, Form(min_length=1, max_length=10_000)],
) -> Response:
    """Take the pattern out of every later snapshot, with why."""
    with caller.changing("patterns.deactivate", f"pattern:{pattern_id}", {"reason": reason}):
        caller.store.patterns.deactivate([pattern_id], reason=reason)
    return Response(status_code=204, headers={"HX-Redirect": f"/patterns/{pattern_id}"})


@router.post("/patterns/{pattern_id}/explain")
def explain(
    request: Request,
    pattern_id: PatternId,
    caller: Explaining,
    version: Annotated[str, Form(min_length=3, max_length=300)],
) -> HTMLResponse:
    """Explain a version's prediction on the pattern (LIME; stored, so asked once)."""
    model = version.split("@")[0]
    caller.store.grants.require(caller.user, "predictions.create", model)
    if version not in versions_of(caller.store, caller.store.patterns.get(pattern_id).dataset):
        raise InvalidInput(f"{version} is not a version of this pattern's dataset", field="version")
    with caller.changing("predictions.create", f"model:{version}", {"patterns": [pattern_id]}):
        made = caller.store.explanations.explain(version, [pattern_id])
    return render.html(request, caller, "_pattern_explanation.html", explanations=made)
