"""Each problem's score for every model version, as one table: what the problem graph
draws (``trenches report problems``) and ``store.problems.history()`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from trenches.errors import InvalidInput
from trenches.evaluation import evaluate
from trenches.patterns.sets import PatternSet, split

if TYPE_CHECKING:
    from trenches.patterns.datasets import Datasets
    from trenches.predictors import Predictors
    from trenches.problems import Problems
    from trenches.problems.scores import Scorer


def history(
    problems: Problems,
    datasets: Datasets,
    predictors: Predictors,
    scorer: Scorer,
    dataset: str | None = None,
    *,
    with_accuracy: bool = True,
) -> pd.DataFrame:
    """One row per (problem, model version): scores over all the problem's patterns and
    over those the version did not train on (held out), counts, the patterns right,
    wrong and trained on, and the version's validation accuracy when it has predicted
    the whole split (``with_accuracy=False``: NaN, and no split is read)."""
    records: list[dict[str, Any]] = []
    accuracy: dict[str, float] = {}
    validation: dict[str, PatternSet] = {}
    for problem in problems.list(dataset=dataset):
        ds = datasets.get(problem.dataset)
        for entry in scorer.entries(ds, baselines=False):
            ref = entry.ref
            if ref not in accuracy and not with_accuracy:
                accuracy[ref] = float("nan")
            if ref not in accuracy:
                if ds.name not in validation:
                    validation[ds.name] = split(ds, "validation")
                try:
                    accuracy[ref] = evaluate(
                        scorer.engine, predictors.resolve(ref), validation[ds.name]
                    ).metrics.get("accuracy", float("nan"))
                except InvalidInput:
                    accuracy[ref] = float("nan")  # not evaluated on validation (yet)
            s = scorer.score(problem, ds, entry)
            records.append(
                {
                    "problem": problem.slug,
                    "title": problem.title,
                    "status": problem.status,
                    "version": ref,
                    "created_at": pd.Timestamp(entry.created_at),
                    "score": s.score,
                    "positive_score": s.positive_score,
                    "negative_score": s.negative_score,
                    "held_out_score": s.held_out_score,
                    "patterns": len(problem.patterns()),
                    "predicted": s.total,
                    "held_out": s.held_out_total,
                    "held_out_right": s.held_out_right,
                    "trained_on": s.trained_on,
                    "right": list(s.right_ids),
                    "wrong": list(s.wrong_ids),
                    "trained": list(s.trained_ids or ()),
                    "tolerance": None if s.tolerance is None else str(s.tolerance),
                    "undefined": s.undefined,
                    "validation_accuracy": accuracy[ref],
                }
            )
    columns = [
        "problem",
        "title",
        "status",
        "version",
        "created_at",
        "score",
        "positive_score",
        "negative_score",
        "held_out_score",
        "patterns",
        "predicted",
        "held_out",
        "held_out_right",
        "trained_on",
        "right",
        "wrong",
        "trained",
        "tolerance",
        "undefined",
        "validation_accuracy",
    ]
    return pd.DataFrame.from_records(records, columns=columns)
