"""The out-of-fold probabilities behind the label-error check, fitted a fold at a time:
in this process, or elsewhere (a Dask cluster, which the store hands the check as an
:class:`Elsewhere`), with the same folds, the same probe model and the same seed, so
that both give the same probabilities. Elsewhere, a fold is sent as a
:class:`FoldPlan` and its number: the worker reads the patterns' inputs and labels
from the store itself."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from trenches.errors import Conflict
from trenches.patterns.frames import read_patterns

if TYPE_CHECKING:
    from trenches.patterns.datasets import Dataset
    from trenches.patterns.file_imports import Steps

#: The folds' shuffle seed: the same folds on every run and wherever they are fitted.
SEED = 0


# eq=False: arrays have no single truth value to compare or hash by.
@dataclass(frozen=True, eq=False)
class FoldPlan:
    """What fitting a fold needs besides its number, small enough to send to a worker:
    the dataset, the ids of the patterns checked (in the check's order), the classes
    (a label's index among them is its code) and how many folds."""

    dataset_id: int
    pattern_ids: np.ndarray
    classes: tuple[str, ...]
    folds: int


@dataclass(frozen=True, eq=False)
class Fold:
    """The probabilities fold ``k``'s model gives its held-out rows: ``test`` (their
    positions in the plan), a column per class of the plan."""

    k: int
    test: np.ndarray
    probabilities: np.ndarray


class Elsewhere(Protocol):
    """Where a dataset's heavy work can run instead of this process (a Dask cluster:
    :class:`trenches.compute.Cluster`): the folds of a label-error check, the files of
    an import."""

    def out_of_fold(
        self, plan: FoldPlan, *, progress: Callable[[int], None] | None
    ) -> Sequence[Fold]:
        """Every fold of ``plan``, fitted; ``progress(k)`` hears of each as it is done."""
        ...

    def import_steps(self) -> Steps:
        """Where the steps of one import of several files run."""
        ...


#: Opens where one job's work runs (None in it: this process).
Opener = Callable[[], AbstractContextManager[Elsewhere | None]]


def out_of_fold(
    dataset: Dataset,
    inputs: pd.DataFrame,
    y: np.ndarray,
    plan: FoldPlan,
    *,
    elsewhere: Opener | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The out-of-fold probabilities of the probe model on ``inputs`` (the plan's
    patterns' inputs, as read) and ``y`` (their labels' codes): a row per pattern, a
    column per class. Fitted where ``elsewhere`` opens, when it opens somewhere (which
    reads the inputs itself), else here; ``progress(done, folds)`` hears of each fold."""
    done: list[int] = []

    def heard(k: int) -> None:
        done.append(k)
        if progress is not None:
            progress(len(done), plan.folds)

    folds: Sequence[Fold] | None = None
    if elsewhere is not None:
        with elsewhere() as there:
            if there is not None:
                folds = there.out_of_fold(plan, progress=heard)
    if folds is None:
        model = probe_model(dataset)
        X = probe_frame(dataset, inputs)
        folds = []
        for k in range(plan.folds):
            folds.append(fit_fold(model, X, y, plan, k))
            heard(k)
    probs = np.full((len(y), len(plan.classes)), np.nan)
    for fold in folds:
        probs[fold.test] = fold.probabilities
    if sorted(f.k for f in folds) != list(range(plan.folds)) or np.isnan(probs).any():
        raise RuntimeError(f"the folds fitted do not cover the {plan.folds} folds of the check")
    return probs


def fit_fold(model: Any, X: pd.DataFrame, y: np.ndarray, plan: FoldPlan, k: int) -> Fold:
    """Fold ``k`` of ``plan``: a copy of ``model`` fitted on the other folds' rows of
    ``X`` and ``y``, and its probabilities for this fold's, as scikit-learn's
    ``cross_val_predict`` gives them (a class the fold's training rows lack is 0)."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    splits = StratifiedKFold(plan.folds, shuffle=True, random_state=SEED).split(X, y)
    train, test = next(s for i, s in enumerate(splits) if i == k)
    fitted = clone(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted.fit(X.iloc[train], y[train])
        given = fitted.predict_proba(X.iloc[test])
    if given.shape[1] == len(plan.classes):
        return Fold(k, test, given)
    probs = np.zeros((len(test), len(plan.classes)), dtype=given.dtype)
    probs[:, fitted.classes_] = given
    return Fold(k, test, probs)


def fit_fold_of(dataset: Dataset, plan: FoldPlan, k: int) -> Fold:
    """Fold ``k`` of ``plan``, its patterns' inputs and labels read from ``dataset``'s
    store (a worker's part of a check)."""
    frame, _ = read_patterns(dataset, ids=plan.pattern_ids, full_info=False)
    missing = np.setdiff1d(plan.pattern_ids, frame.index.to_numpy())
    if len(missing):
        raise Conflict(
            f"{len(missing)} of the patterns checked are no longer in dataset "
            f"{dataset.name!r} (pattern {int(missing[0])}): check it again"
        )
    frame = frame.loc[plan.pattern_ids]
    labels = np.asarray(frame[dataset.label_column].astype(str).to_numpy(), dtype=str)
    classes = np.asarray(plan.classes, dtype=str)
    y = np.searchsorted(classes, labels)
    if not np.array_equal(classes[np.minimum(y, len(classes) - 1)], labels):
        raise Conflict(f"the labels of dataset {dataset.name!r} changed: check it again")
    X = probe_frame(dataset, frame.drop(columns=[dataset.label_column]))
    return fit_fold(probe_model(dataset), X, y, plan, k)


def probe_frame(dataset: Dataset, inputs: pd.DataFrame) -> pd.DataFrame:
    """Inputs in the types the probe model takes: floats, and text without missing values."""
    assert dataset.schema is not None
    X = inputs.copy()
    for c in dataset.schema.columns:
        if c.type in ("number", "integer", "boolean"):
            X[c.name] = X[c.name].astype("float64")
        elif c.type == "text":
            X[c.name] = X[c.name].fillna("").astype(str)
        else:
            X[c.name] = X[c.name].astype(object).where(X[c.name].notna(), "(missing)")
    return X


def probe_model(dataset: Dataset) -> Any:
    """A quick, general model for out-of-fold probabilities."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    assert dataset.schema is not None
    parts: list[Any] = []
    numeric = [c.name for c in dataset.schema.numeric]
    if numeric:
        parts.append(("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric))
    cats = [c.name for c in dataset.schema.columns if c.type == "string"]
    if cats:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", max_categories=50), cats))
    for c in (c.name for c in dataset.schema.columns if c.type == "text"):
        parts.append((f"text_{c}", TfidfVectorizer(min_df=1, max_features=20_000), c))
    return make_pipeline(ColumnTransformer(parts), LogisticRegression(max_iter=2000))
