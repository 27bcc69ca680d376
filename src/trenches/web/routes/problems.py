"""The problems board: every problem's score across every model version (held out and
all), a problem's patterns with each version's prediction on them, right or wrong, and
one version's verdicts; testers create problems, add patterns (picked in the patterns
list, by id, or from a file) and close problems with a reason.

A change answers a message to swap in; creating a problem sends the browser to its page,
where the backfilled graph shows a point per version.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import pandas as pd
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from trenches.api.access import Allow, Caller, problem_dataset
from trenches.errors import InvalidInput, NotFound
from trenches.names import INT64_MAX
from trenches.patterns.selection import PatternQuery
from trenches.problems import POLARITIES, SEVERITIES
from trenches.web import render
from trenches.web.routes.patterns import PAGE, predictions_by_version, show_inputs

router = APIRouter(include_in_schema=False)

Reading = Annotated[Caller, Depends(Allow("problems.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("problems.read", problem_dataset))]
# The dataset (or problem) is named in the form: the route checks the grant there too.
Creating = Annotated[Caller, Depends(Allow("problems.create"))]
Adding = Annotated[Caller, Depends(Allow("problems.add"))]
AddingTo = Annotated[Caller, Depends(Allow("problems.add", problem_dataset))]
Closing = Annotated[Caller, Depends(Allow("problems.close", problem_dataset))]
After = Annotated[int, Query(ge=0, le=INT64_MAX)]
#: Uploads a tester may give: the formats ``store.problems.add_from_file`` reads.
UPLOADS = (".csv", ".parquet", ".jsonl", ".json")
#: Line colours of the graphs (Plotly's default qualitative palette).
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692")


def version_link(slug: str, ref: str) -> str:
    """The page of one version's verdicts on a problem (where a graph's point leads)."""
    return f"/problems/{quote(slug)}/versions/{quote(ref, safe='@')}"


@router.get("/problems")
def board(
    request: Request,
    caller: Reading,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[Literal["open", "closed", ""] | None, Query()] = None,
) -> HTMLResponse:
    """Every problem the viewer may read, and the graph of their scores."""
    rights = render.Rights(caller)
    names = [d.name for d in caller.store.datasets.list() if rights.may("problems.read", d.name)]
    chosen = [dataset] if dataset else names
    problems = [
        p
        for name in chosen
        if name in names
        for p in caller.store.problems.list(dataset=name, status=status or None)
    ]
    slugs = {p.slug for p in problems}
    rows: list[dict[str, Any]] = []
    table: pd.DataFrame | None = None
    for name in chosen:
        if name not in names:
            continue
        part = caller.store.problems.history(name, with_accuracy=False)
        part = part[part["problem"].isin(slugs)]
        table = part if table is None else pd.concat([table, part], ignore_index=True)
    latest: dict[str, Any] = {}
    if table is not None and not table.empty:
        for slug, group in table.groupby("problem", sort=False):
            latest[str(slug)] = group.sort_values("created_at").iloc[-1]
    for p in problems:
        rows.append({"problem": p, "size": len(p.patterns()), "latest": latest.get(p.slug)})
    creatable = [n for n in names if rights.may("problems.create", n)]
    return render.html(
        request,
        caller,
        "problems.html",
        rows=rows,
        datasets=names,
        dataset=dataset or "",
        wanted_status=status or "",
        figure=_board_figure(table) if table is not None and not table.empty else None,
        creatable=creatable,
        severities=SEVERITIES,
        polarities=POLARITIES,
    )


def _board_figure(table: Any) -> dict[str, Any]:
    """Each problem's score per version, held out (solid) and all (dotted); a point
    leads to that version's verdicts on the problem."""
    versions = list(dict.fromkeys(table.sort_values("created_at")["version"]))
    data = []
    for k, (slug, group) in enumerate(table.groupby("problem", sort=False)):
        group = group.sort_values("created_at")
        links = [[version_link(str(slug), str(v))] for v in group["version"]]
        colour = PALETTE[k % len(PALETTE)]
        for which, column, dash in (
            ("held out", "held_out_score", "solid"),
            ("all", "score", "dot"),
        ):
            data.append(
                _trace(
                    f"{slug} ({which})",
                    list(group["version"]),
                    list(group[column]),
                    links,
                    colour,
                    dash,
                    str(slug),
                )
            )
    return _layout(data, versions, "Problems across model versions")


def _trace(
    name: str,
    x: list[Any],
    y: list[Any],
    links: list[list[str]],
    colour: str,
    dash: str,
    group: str,
) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines+markers",
        "name": name,
        "legendgroup": group,
        "x": x,
        "y": [None if v is None or v != v else float(v) for v in y],
        "customdata": links,
        "line": {"color": colour, "dash": dash},
        "marker": {"size": 9, "symbol": "circle" if dash == "solid" else "circle-open"},
        "hovertemplate": "%{x}: %{y:.0%}<extra>%{fullData.name}</extra>",
    }


def _layout(data: list[dict[str, Any]], versions: list[str], title: str) -> dict[str, Any]:
    return {
        "data": data,
        "layout": {
            "title": {
                "text": title + ": held out (solid), all (dotted); a point opens its patterns"
            },
            "yaxis": {
                "range": [-0.02, 1.02],
                "title": {"text": "share right"},
                "tickformat": ".0%",
            },
            "xaxis": {"type": "category", "categoryorder": "array", "categoryarray": versions},
            "legend": {"groupclick": "toggleitem"},
            "margin": {"t": 50, "r": 10},
        },
    }


@router.get("/problems/{slug}")
def problem_page(request: Request, slug: str, caller: ReadingOne, after: After = 0) -> HTMLResponse:
    """A problem: its graph, and its patterns with every version's verdict on them."""
    store = caller.store
    problem = store.problems.get(slug)
    scores = store.problems.scores(slug)
    refs = [s.predictor for s in scores]
    data = []
    for which, attr, dash in (("held out", "held_out_score", "solid"), ("all", "score", "dot")):
        ys = [getattr(s, attr) for s in scores]
        links = [[version_link(slug, r)] for r in refs]
        data.append(_trace(which, refs, ys, links, PALETTE[0], dash, slug))
    figure = _layout(data, refs, problem.title) if scores else None
    found = store.patterns.find(PatternQuery(problem=slug), after=after, limit=PAGE)
    ids = [p.id for p in found.patterns]
    verdicts = {s.predictor: (set(s.right_ids), set(s.wrong_ids)) for s in scores}
    predicted = predictions_by_version(store, refs, ids)
    polarity = {i: "positive" for i in problem.positive} | {i: "negative" for i in problem.negative}
    rows = [
        {
            "pattern": p,
            "inputs": show_inputs(p.inputs),
            "polarity": polarity.get(p.id, ""),
            "cells": [_cell(verdicts[r], predicted[r], p.id) for r in refs],
        }
        for p in found.patterns
    ]
    return render.html(
        request,
        caller,
        "problem.html",
        problem=problem,
        figure=figure,
        refs=refs,
        links=[version_link(slug, r) for r in refs],
        rows=rows,
        next_url=_next(f"/problems/{quote(slug)}", found.next_after),
        polarities=POLARITIES,
    )


def _cell(
    verdict: tuple[set[int], set[int]], predicted: dict[int, str], pid: int
) -> dict[str, Any]:
    right, wrong = verdict
    return {
        "predicted": predicted.get(pid),
        "right": True if pid in right else (False if pid in wrong else None),
    }


def _next(path: str, after: int | None, **query: str) -> str | None:
    if after is None:
        return None
    return f"{path}?{urlencode({**query, 'after': after})}"


@router.get("/problems/{slug}/versions/{ref}")
def version_page(
    request: Request,
    slug: str,
    ref: str,
    caller: ReadingOne,
    after: After = 0,
    only: Annotated[Literal["wrong", "right", ""] | None, Query()] = None,
) -> HTMLResponse:
    """One version's verdict on each of the problem's patterns."""
    store = caller.store
    problem = store.problems.get(slug)
    score = next((s for s in store.problems.scores(slug) if s.predictor == ref), None)
    if score is None:
        raise NotFound(f"{ref} is not a version of {problem.dataset}'s models")
    picked = {"wrong": score.wrong_ids, "right": score.right_ids}.get(only or "")
    query = PatternQuery(problem=slug, within=picked)
    found = store.patterns.find(query, after=after, limit=PAGE)
    ids = [p.id for p in found.patterns]
    predicted = predictions_by_version(store, [ref], ids)[ref]
    verdict = (set(score.right_ids), set(score.wrong_ids))
    polarity = {i: "positive" for i in problem.positive} | {i: "negative" for i in problem.negative}
    trained = set(score.trained_ids or ())
    rows = [
        {
            "pattern": p,
            "inputs": show_inputs(p.inputs),
            "polarity": polarity.get(p.id, ""),
            "cell": _cell(verdict, predicted, p.id),
            "trained": p.id in trained,
        }
        for p in found.patterns
    ]
    here = version_link(slug, ref)
    return render.html(
        request,
        caller,
        "problem_version.html",
        problem=problem,
        ref=ref,
        score=score,
        rows=rows,
        only=only or "",
        here=here,
        next_url=_next(here, found.next_after, only=only or ""),
    )


def _ids(values: list[str]) -> list[int]:
    out = []
    for value in values:
        for part in value.replace(",", " ").split():
            if not part.isdigit() or not 1 <= int(part) <= INT64_MAX:
                raise InvalidInput(f"{part!r} is not a pattern id", field="patterns")
            out.append(int(part))
    return out


@router.post("/problems")
def create(  # noqa: PLR0913
    request: Request,
    caller: Creating,
    dataset: Annotated[str, Form(min_length=1, max_length=200)],
    slug: Annotated[str, Form(min_length=1, max_length=100)],
    title: Annotated[str, Form(min_length=1, max_length=300)],
    severity: Annotated[Literal[SEVERITIES], Form()] = "medium",  # type: ignore[valid-type]
    description: Annotated[str, Form(max_length=100_000)] = "",
    polarity: Annotated[Literal[POLARITIES], Form()] = "positive",  # type: ignore[valid-type]
    patterns: Annotated[list[str] | None, Form()] = None,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Create a problem of ``dataset``, with the patterns picked (or a file's rows);
    every version predicts them, and the browser goes to the problem's page."""
    caller.store.grants.require(caller.user, "problems.create", dataset)
    ids = _ids(patterns or [])
    # Checked before the problem is made, so that a refusal leaves no empty problem.
    known, _ = caller.store.patterns.count(PatternQuery(datasets=[dataset], within=ids))
    if known != len(set(ids)):
        raise InvalidInput(f"some of the picked patterns are not of {dataset}", field="patterns")
    upload = _saved(file)
    detail = {"dataset": dataset, "patterns": ids}
    with caller.changing("problems.create", f"problem:{slug}", detail):
        caller.store.problems.create(
            slug, dataset=dataset, title=title, severity=severity, description=description or None
        )
    if ids:
        _add(caller, slug, ids, polarity)
    if upload is not None:
        _add_file(caller, slug, upload, polarity)
    return Response(status_code=204, headers={"HX-Redirect": f"/problems/{quote(slug)}"})


def _saved(file: UploadFile | None) -> Path | None:
    """An uploaded file, kept under its own suffix (what tells its format)."""
    if file is None or not file.filename:
        return None
    suffix = Path(file.filename).suffix.lower()
    if suffix not in UPLOADS:
        raise InvalidInput(f"a file of patterns is one of {', '.join(UPLOADS)}", field="file")
    folder = Path(tempfile.mkdtemp(prefix="trenches-upload-"))
    path = folder / f"patterns{suffix}"
    path.write_bytes(file.file.read())
    return path


def _add(caller: Caller, slug: str, ids: list[int], polarity: str) -> Any:
    side = {"positive": ids} if polarity == "positive" else {"negative": ids}
    with caller.changing("problems.add", f"problem:{slug}", side):
        return caller.store.problems.add(slug, **side)  # type: ignore[arg-type]


def _add_file(caller: Caller, slug: str, path: Path, polarity: str) -> Any:
    try:
        with caller.changing("problems.add", f"problem:{slug}", {"file": path.name}):
            return caller.store.problems.add_from_file(
                slug, path, polarity=polarity, labelled_by=caller.user.name
            )
    finally:
        path.unlink(missing_ok=True)
        path.parent.rmdir()


@router.post("/problems/{slug}/patterns")
def add_patterns(
    request: Request,
    slug: str,
    caller: AddingTo,
    polarity: Annotated[Literal[POLARITIES], Form()] = "positive",  # type: ignore[valid-type]
    patterns: Annotated[list[str] | None, Form()] = None,
    file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """Add patterns (ids, or a file's rows) to the problem; every version predicts them."""
    ids = _ids(patterns or [])
    upload = _saved(file)
    if not ids and upload is None:
        raise InvalidInput("pick patterns, give their ids, or upload a file", field="patterns")
    added = _add(caller, slug, ids, polarity) if ids else None
    from_file = _add_file(caller, slug, upload, polarity) if upload is not None else None
    return _added(request, caller, slug, [a for a in (added, from_file) if a is not None])


@router.post("/problems/add")
def add_picked(
    request: Request,
    caller: Adding,
    problem: Annotated[str, Form(min_length=1, max_length=100)],
    polarity: Annotated[Literal[POLARITIES], Form()] = "positive",  # type: ignore[valid-type]
    patterns: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    """Add the patterns picked in the patterns list to an existing problem."""
    found = caller.store.problems.get(problem)
    caller.store.grants.require(caller.user, "problems.add", found.dataset)
    ids = _ids(patterns or [])
    if not ids:
        raise InvalidInput("pick at least one pattern", field="patterns")
    return _added(request, caller, problem, [_add(caller, problem, ids, polarity)])


def _added(request: Request, caller: Caller, slug: str, results: list[Any]) -> HTMLResponse:
    return render.html(
        request,
        caller,
        "_problem_added.html",
        slug=slug,
        added=sum(r.added for r in results),
        already=sum(r.already for r in results),
        versions=max((r.versions for r in results), default=0),
        skipped=[s for r in results for s in r.skipped],
    )


@router.post("/problems/{slug}/close")
def close(
    request: Request,
    slug: str,
    caller: Closing,
    reason: Annotated[str, Form(min_length=1, max_length=10_000)],
) -> HTMLResponse:
    """Close the problem, with why."""
    with caller.changing("problems.close", f"problem:{slug}", {"reason": reason}):
        closed = caller.store.problems.close(slug, reason=reason)
    return render.html(request, caller, "_problem_status.html", problem=closed)
