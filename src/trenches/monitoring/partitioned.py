"""Drift of a window of the request log larger than memory: read part by part, each
part summed up in small sketches (:mod:`.sketches`), the sketches merged, and the
merged sketches judged by the same code as a sample held whole (:mod:`.figures`).

A window of :data:`SKETCH_FROM` rows or more (as its requests counted them) is
compared this way; a smaller one is read whole. The parts (the files of the tables of
logged input rows, :data:`PART_ROWS` rows at most each, read :data:`BATCH_ROWS` at a
time) are sketched on the workers of the Dask cluster of ``[compute] scheduler`` when
one is set, each worker reading its files itself, else one after the other in this
process; the requests still staged in the database are sketched here. Either way the
sketches are merged in the order of the window, so the report is the same, bit for
bit, wherever the parts were sketched; how near it is to the report of the window
read whole is stated in :mod:`.sketches`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches.monitoring.drift import TextReference, columns_compared, word_counts, words
from trenches.monitoring.figures import (
    Compared,
    Counts,
    Figures,
    Sample,
    categorical_figures,
    floats,
    numeric_figures,
    report,
)
from trenches.monitoring.sketches import (
    CountSketch,
    Grid,
    NumericSketch,
    Sketched,
    TextSketch,
    against,
    merge_categories,
    merge_numbers,
    sketch_categories,
    sketch_numbers,
)
from trenches.monitoring.window import typed_as

if TYPE_CHECKING:
    import pandas as pd

    from trenches.compute import Cluster
    from trenches.config import Location
    from trenches.monitoring.results import DriftReport
    from trenches.requests.log import Requests
    from trenches.requests.window import RequestWindow, WindowLabels, WindowPart, WindowParts
    from trenches.settings.monitor import DriftSettings

#: Windows of at least this many rows are compared part by part, by their sketches.
SKETCH_FROM = 5_000_000
#: The rows of one part (a task on a cluster) at most: a file is not cut.
PART_ROWS = 1_000_000
#: The rows a part is read at a time.
BATCH_ROWS = 250_000

Sketch = NumericSketch | CountSketch | TextSketch


@dataclass(frozen=True)
class ColumnPlan:
    """How one column is sketched: its kind, the grid of a numeric column (of a text
    column's word counts), the vocabulary of a text column."""

    name: str
    kind: str
    grid: Grid | None = None
    vocabulary: pd.Index | None = None


@dataclass(frozen=True)
class Plan:
    """What every part is sketched by, fixed from the reference before any is read."""

    columns: tuple[ColumnPlan, ...]
    #: The predictions' plan: the answers of ``version_id``.
    prediction: ColumnPlan | None
    version_id: int
    #: The dataset's column types, which the window's values are read as.
    types: dict[str, str] | None
    feedback: WindowLabels


@dataclass(frozen=True)
class PartSketch:
    """The sketches of some rows of a window: their number, how many the version
    answered, each column's sketch and the answers', and the answers and labels of
    the rows the version answered that feedback labelled (a few: people label them)."""

    rows: int
    served: int
    columns: dict[str, Sketch]
    prediction: Sketch | None
    answers: np.ndarray
    labels: np.ndarray


# --- the sketches of a part ----------------------------------------------------------


def _sketch(plan: ColumnPlan, series: pd.Series | None, rows: int) -> Sketch:
    """One column of some rows (None: the rows lack it: all missing)."""
    import pandas as pd

    if plan.kind == "categorical":
        if series is None:
            return CountSketch(rows, rows, (), np.zeros(0, dtype=np.int64))
        return sketch_categories(series)
    assert plan.grid is not None
    if plan.kind == "numeric":
        x = floats(series) if series is not None else np.full(rows, np.nan)
        return sketch_numbers(x, plan.grid)
    texts = series if series is not None else pd.Series([None] * rows, dtype=object)
    found = words(texts)
    tokens = found.dropna().explode().dropna()
    unknown = int((~tokens.isin(plan.vocabulary)).sum()) if len(tokens) else 0
    return TextSketch(sketch_numbers(word_counts(found), plan.grid), len(tokens), unknown)


def sketch_sample(window: RequestWindow, plan: Plan) -> PartSketch:
    """The sketches of some rows of a window (a sample for distributions)."""
    import pandas as pd

    frame = typed_as(plan.types, window.inputs.reset_index(drop=True))
    n = len(frame)
    columns = {
        c.name: _sketch(c, frame[c.name] if c.name in frame.columns else None, n)
        for c in plan.columns
    }
    keep = (window.version_id == plan.version_id) & (window.answer != None)  # noqa: E711
    answers = window.answer[keep]
    prediction = None
    if plan.prediction is not None:
        prediction = _sketch(plan.prediction, pd.Series(answers, dtype=object), len(answers))
    labelled = keep & np.asarray(pd.notna(window.label), dtype=bool)
    return PartSketch(
        n, int(keep.sum()), columns, prediction, window.answer[labelled], window.label[labelled]
    )


def _merge(a: Sketch, b: Sketch, plan: ColumnPlan) -> Sketch:
    if isinstance(a, CountSketch) and isinstance(b, CountSketch):
        return merge_categories(a, b)
    assert plan.grid is not None
    if isinstance(a, TextSketch) and isinstance(b, TextSketch):
        lengths = merge_numbers(a.lengths, b.lengths, plan.grid)
        return TextSketch(lengths, a.words + b.words, a.unknown + b.unknown)
    assert isinstance(a, NumericSketch) and isinstance(b, NumericSketch)
    return merge_numbers(a, b, plan.grid)


def merge(a: PartSketch, b: PartSketch, plan: Plan) -> PartSketch:
    """The sketches of the rows of ``a`` and then ``b``."""
    prediction = a.prediction
    if plan.prediction is not None and a.prediction is not None and b.prediction is not None:
        prediction = _merge(a.prediction, b.prediction, plan.prediction)
    return PartSketch(
        a.rows + b.rows,
        a.served + b.served,
        {c.name: _merge(a.columns[c.name], b.columns[c.name], c) for c in plan.columns},
        prediction,
        np.concatenate([a.answers, b.answers]),
        np.concatenate([a.labels, b.labels]),
    )


def merged(sketches: Iterable[PartSketch], plan: Plan) -> PartSketch | None:
    """The sketches merged in their order (None: there were none)."""
    found = None
    for sketch in sketches:
        found = sketch if found is None else merge(found, sketch, plan)
    return found


def sketch_part(requests: Requests, part: WindowPart, plan: Plan) -> PartSketch | None:
    """The sketches of one part of a window, read a batch at a time."""
    return merged(
        (
            sketch_sample(w, plan)
            for w in requests.part_windows(part, plan.feedback, rows=BATCH_ROWS)
        ),
        plan,
    )


def drift_part(
    opened: Callable[[Location], Any], location: Location, part: WindowPart, plan: Plan
) -> PartSketch | None:
    """On a worker: the sketches of one part of a window of the store at
    ``location``, which ``opened`` opens (once per worker process)."""
    return sketch_part(opened(location).requests, part, plan)


def sketch_window(
    requests: Requests, parts: WindowParts, plan: Plan, cluster: Cluster | None
) -> PartSketch | None:
    """The sketches of a whole window: its parts of files on the cluster's workers
    (or here, one after the other), its staged rows here; merged in the window's order."""
    from trenches.requests.window import WindowPart

    files = [p for p in parts.pieces if isinstance(p, WindowPart)]
    if cluster is not None and files:
        done = iter(cluster.each(drift_part, files, plan, name="trenches-drift"))
    else:
        done = (sketch_part(requests, p, plan) for p in files)
    found = (
        next(done) if isinstance(p, WindowPart) else sketch_sample(p, plan) for p in parts.pieces
    )
    return merged((s for s in found if s is not None), plan)


# --- planning, and the report ------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The reference of a sketched comparison, and the plan its columns give."""

    frame: pd.DataFrame
    plan: Plan
    #: Per compared column: its numbers sorted, its text figures, or its values.
    sides: dict[str, Sample | TextReference | pd.Series]
    prediction: Sample | pd.Series | None
    ignored: tuple[str, ...]


def _side(
    name: str, kind: str, values: pd.Series, small: int
) -> tuple[ColumnPlan, Sample | TextReference | pd.Series]:
    if kind == "numeric":
        sample = Sample.of(floats(values))
        return ColumnPlan(name, kind, Grid.of(sample.values, small)), sample
    if kind == "text":
        text = TextReference.of(values)
        grid = Grid.of(Sample.of(text.lengths).values, small)
        return ColumnPlan(name, kind, grid, text.vocabulary), text
    return ColumnPlan(name, "categorical"), values


def plan(
    reference: pd.DataFrame,
    settings: DriftSettings,
    kinds: Mapping[str, str],
    prediction: tuple[np.ndarray, str] | None,
    version_id: int,
    types: dict[str, str] | None,
    feedback: WindowLabels,
) -> Reference:
    """The plan of a sketched comparison with ``reference`` (and the reference's
    predictions, of their kind), the columns' kinds chosen as :func:`drift` does."""
    import pandas as pd

    compared, ignored = columns_compared(reference, settings, kinds)
    columns, sides = [], {}
    for column, name, kind in compared:
        made, sides[name] = _side(name, kind, reference[column], settings.small)
        columns.append(made)
    pred_plan = pred_side = None
    if prediction is not None:
        values, kind = prediction
        series = pd.Series(values, dtype=object if values.dtype == object else None)
        pred_plan, side = _side("prediction", kind, series, settings.small)
        assert not isinstance(side, TextReference)
        pred_side = side
    the_plan = Plan(tuple(columns), pred_plan, version_id, types, feedback)
    return Reference(reference, the_plan, sides, pred_side, tuple(ignored))


def _figures(
    plan: ColumnPlan,
    side: Sample | TextReference | pd.Series,
    sketch: Sketch,
    settings: DriftSettings,
) -> Figures:
    if isinstance(side, Sample) and isinstance(sketch, NumericSketch):
        assert plan.grid is not None
        return numeric_figures(plan.name, plan.kind, side, Sketched(sketch, plan.grid), settings)
    if isinstance(side, TextReference) and isinstance(sketch, TextSketch):
        assert plan.grid is not None
        lengths = Sample.of(side.lengths)
        raw = numeric_figures(
            plan.name, "text", lengths, Sketched(sketch.lengths, plan.grid), settings
        )
        raw.oov_reference = side.oov
        raw.oov_current = sketch.out_of_vocabulary() if side.split else None
        return raw
    assert isinstance(sketch, CountSketch) and not isinstance(side, Sample | TextReference)
    names, ref_counts, cur_counts = against(side, sketch)
    return categorical_figures(
        plan.name,
        names,
        Counts(ref_counts, len(side), len(side) - int(ref_counts.sum())),
        Counts(cur_counts, sketch.rows, sketch.missing),
        settings,
    )


def drift_of(
    reference: Reference, found: PartSketch, apart: frozenset[str], settings: DriftSettings
) -> DriftReport:
    """The report of a window's merged sketches against the reference: what
    :func:`~trenches.monitoring.drift` reports of the window read whole, the exact
    figures equal, the others as near as :mod:`.sketches` says."""
    raws = []
    plan = reference.plan
    with_prediction = (
        plan.prediction is not None
        and reference.prediction is not None
        and found.prediction is not None
        and found.served > 0
    )
    if with_prediction:
        assert plan.prediction is not None and reference.prediction is not None
        assert found.prediction is not None
        raws.append(_figures(plan.prediction, reference.prediction, found.prediction, settings))
    for c in plan.columns:
        raws.append(_figures(c, reference.sides[c.name], found.columns[c.name], settings))
    extra = tuple(sorted(c for c in apart if c not in reference.frame.columns))
    compared = Compared(len(reference.frame), found.rows, reference.ignored, extra)
    return report(raws, with_prediction, compared, settings)
