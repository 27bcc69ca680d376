"""Data quality checks: duplicates, conflicting labels, leakage across splits, missing
values, class balance, the mix of label sources, and likely label errors."""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from trenches import timestamps
from trenches.json_form import json_shape, to_json
from trenches.names import QUALITY_KINDS
from trenches.patterns.datasets import Dataset
from trenches.patterns.folds import FoldPlan, Opener, out_of_fold, probe_model
from trenches.patterns.frames import read_patterns

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

KINDS = QUALITY_KINDS
#: A class smaller than this share of the largest class is an imbalance.
IMBALANCE_RATIO = 0.2
#: Likely label errors are looked for in at most this many patterns (a fixed sample).
LABEL_ERROR_MAX_ROWS = 100_000


@json_shape(
    computed={"count": lambda f: len(f.pattern_ids)},
    order=("kind", "found", "summary", "count"),
)
@dataclass(frozen=True)
class Finding:
    """One kind of problem in the data, with the patterns involved.

    ``groups`` holds ids that belong together (the copies of one duplicate, the
    patterns of one leaked input); ``pattern_ids`` is every id involved, flat.
    """

    kind: str
    found: bool
    summary: str
    pattern_ids: tuple[int, ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@json_shape(rename={"snapshot_id": "snapshot"})
@dataclass(frozen=True)
class QualityReport:
    """The result of ``Dataset.check()``: one finding per kind."""

    dataset: str
    snapshot_id: int | None
    patterns: int
    findings: tuple[Finding, ...]

    def finding(self, kind: str) -> Finding:
        for f in self.findings:
            if f.kind == kind:
                return f
        raise KeyError(kind)

    def found(self, kinds: list[str] | tuple[str, ...]) -> list[str]:
        """The kinds among ``kinds`` that were found."""
        return [k for k in kinds if self.finding(k).found]

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values: ``trenches.to_json(report)``."""
        return cast(dict[str, Any], to_json(self))


def _groups(keys: np.ndarray, ids: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the rows that share a key, for keys held by two or more rows."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    return [order[s : s + n] for s, n in zip(starts, sizes, strict=True) if n > 1]


def _row_keys(frame: pd.DataFrame) -> np.ndarray:
    if frame.shape[1] == 0:
        return np.zeros(len(frame), dtype=np.uint64)
    return np.asarray(pd.util.hash_pandas_object(frame, index=False).to_numpy())


def _near(frame: pd.DataFrame, dataset: Dataset, precision: int) -> pd.DataFrame:
    """Inputs normalised for near-duplicate search: case, white space, number precision."""
    assert dataset.schema is not None
    out = {}
    for col in dataset.schema.columns:
        values = frame[col.name]
        if col.type in ("number", "integer"):
            x = values.to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                mag = np.floor(np.log10(np.abs(x)))
                factor = np.power(10.0, precision - 1 - np.where(np.isfinite(mag), mag, 0))
                rounded = np.round(x * factor) / factor
            out[col.name] = np.where(np.isfinite(x) & (x != 0), rounded, x) + 0.0
        elif col.type in ("string", "text"):
            out[col.name] = [
                None
                if v is None or v is pd.NA
                else " ".join(unicodedata.normalize("NFKC", str(v)).casefold().split())
                for v in values
            ]
        else:
            out[col.name] = values
    return pd.DataFrame(out)


def check_dataset(
    engine: Engine,
    dataset: Dataset,
    *,
    snapshot_id: int | None = None,
    precision: int = 4,
    elsewhere: Opener | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> QualityReport:
    """Check the active patterns of ``dataset`` (or those of a snapshot). The folds of
    the label-error check are fitted where ``elsewhere`` opens (see
    :mod:`trenches.patterns.folds`), else here; ``progress(done, folds)`` hears of each."""
    if not 1 <= precision <= 17:
        from trenches.errors import InvalidInput

        raise InvalidInput(
            f"precision {precision} must be from 1 to 17 significant digits (a float holds 17)"
        )
    if snapshot_id is not None:
        from trenches.patterns.snapshots import snapshot_by_id

        snap = snapshot_by_id(engine, snapshot_id)
        if snap.dataset_id != dataset.id:
            from trenches.errors import InvalidInput

            raise InvalidInput(
                f"snapshot {snapshot_id} belongs to dataset {snap.dataset!r}, not {dataset.name!r}"
            )
        frame, info = snap.data()
    else:
        frame, info = read_patterns(dataset)
    ids = frame.index.to_numpy()
    label = dataset.label_column
    inputs = frame.drop(columns=[label])
    labels = frame[label]
    findings = []

    # Exact duplicates and conflicting labels: identical inputs.
    input_keys = _row_keys(inputs)
    dup_groups, conflict_groups = [], []
    label_keys = _row_keys(frame[[label]])
    for g in _groups(input_keys, ids):
        distinct = len(np.unique(label_keys[g]))
        if distinct > 1:
            conflict_groups.append(g)
        # Copies with the same label within the group are duplicates.
        for sub in _groups(label_keys[g], ids[g]):
            dup_groups.append(g[sub])
    findings.append(
        _grouped(
            "duplicates",
            ids,
            dup_groups,
            lambda n, k: f"{n} patterns are exact copies (same inputs and label), in {k} groups",
            "no exact duplicates",
        )
    )
    findings.append(
        _grouped(
            "conflicting-labels",
            ids,
            conflict_groups,
            lambda n, k: f"{k} inputs appear with different labels ({n} patterns)",
            "no identical inputs with different labels",
            details_of=lambda g: {"labels": [_plain(labels.iloc[i]) for i in g]},
        )
    )

    # Leakage: the same or a near-same input in two splits.
    near = _row_keys(_near(inputs, dataset, precision)) if len(inputs) else input_keys
    split_codes = info["split"].cat.codes.to_numpy()
    leak_groups = [g for g in _groups(near, ids) if len(np.unique(split_codes[g])) > 1]
    findings.append(
        _grouped(
            "leakage",
            ids,
            leak_groups,
            lambda n, k: (
                f"{k} inputs (same after normalising case, white space and numbers to "
                f"{precision} significant digits) sit in more than one split ({n} patterns)"
            ),
            "no input sits in two splits",
            details_of=lambda g: {"splits": [str(info["split"].iloc[i]) for i in g]},
            extra={"precision": precision},
        )
    )

    # Missing values per column.
    missing = inputs.isna()
    per_column = {c: int(n) for c, n in missing.sum().items() if n}
    rows_missing = ids[missing.any(axis=1).to_numpy()]
    findings.append(
        Finding(
            "missing-values",
            bool(per_column),
            (
                f"{len(rows_missing)} patterns miss a value: "
                + ", ".join(f"{c} ({n})" for c, n in per_column.items())
                if per_column
                else "no missing values"
            ),
            tuple(int(i) for i in rows_missing),
            details={"per_column": per_column},
        )
    )

    # Class balance (classification) or the label's spread (regression).
    if dataset.task == "classification":
        counts = labels.astype(str).value_counts()
        balance = {str(k): int(v) for k, v in counts.items()}
        ratio = float(counts.min() / counts.max()) if len(counts) else 1.0
        imbalanced = len(counts) > 1 and ratio < IMBALANCE_RATIO
        smallest = str(counts.idxmin()) if len(counts) else None
        findings.append(
            Finding(
                "class-imbalance",
                imbalanced,
                ", ".join(f"{k}: {v}" for k, v in balance.items())
                + (
                    f"; the smallest class {smallest!r} is {ratio:.0%} of the largest"
                    if imbalanced
                    else ""
                ),
                tuple(int(i) for i in ids[(labels.astype(str) == smallest).to_numpy()])
                if imbalanced
                else (),
                details={"counts": balance, "ratio_smallest_to_largest": round(ratio, 4)},
            )
        )
    else:
        y = labels.to_numpy(dtype=float)
        findings.append(
            Finding(
                "class-imbalance",
                False,
                f"regression label: mean {y.mean():.4g}, std {y.std():.4g}, "
                f"min {y.min():.4g}, max {y.max():.4g}"
                if len(y)
                else "no patterns",
                details={"mean": float(y.mean()), "std": float(y.std())} if len(y) else {},
            )
        )

    findings.append(_label_errors(dataset, inputs, labels, ids, elsewhere, progress))

    # The mix of label sources, overall and by split.
    mix = pd.crosstab(info["source"], info["split"].astype(str))
    by_source = {str(s): int(n) for s, n in info["source"].value_counts().items()}
    findings.append(
        Finding(
            "source-mix",
            False,
            ", ".join(f"{s}: {n} ({n / max(1, len(ids)):.0%})" for s, n in by_source.items()),
            details={
                "counts": by_source,
                "by_split": {
                    str(s): {str(k): int(v) for k, v in row.items()} for s, row in mix.iterrows()
                },
                "oldest": timestamps.iso(int(info["created_at"].min().value // 1000))
                if len(info)
                else None,
                "newest": timestamps.iso(int(info["created_at"].max().value // 1000))
                if len(info)
                else None,
            },
        )
    )
    order = {k: i for i, k in enumerate(KINDS)}
    findings.sort(key=lambda f: order[f.kind])
    return QualityReport(dataset.name, snapshot_id, len(ids), tuple(findings))


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _grouped(
    kind: str,
    ids: np.ndarray,
    groups: list[np.ndarray],
    found_text: Any,
    none_text: str,
    details_of: Any = None,
    extra: dict[str, Any] | None = None,
) -> Finding:
    id_groups = tuple(tuple(int(i) for i in ids[g]) for g in groups)
    flat = tuple(i for g in id_groups for i in g)
    details: dict[str, Any] = dict(extra or {})
    if details_of is not None:
        details["groups"] = [details_of(g) for g in groups[:100]]
    return Finding(
        kind,
        bool(groups),
        found_text(len(flat), len(groups)) if groups else none_text,
        flat,
        id_groups,
        details,
    )


def _label_errors(
    dataset: Dataset,
    inputs: pd.DataFrame,
    labels: pd.Series,
    ids: np.ndarray,
    elsewhere: Opener | None,
    progress: Callable[[int, int], None] | None,
) -> Finding:
    """Confident learning (cleanlab) on out-of-fold probabilities of a simple model,
    fitted where ``elsewhere`` opens (an earlier release's dataset: here)."""
    if dataset.task != "classification":
        return Finding("label-errors", False, "only looked for in classification datasets")
    y_text = labels.astype(str).to_numpy()
    classes, y = np.unique(y_text, return_inverse=True)
    counts = np.bincount(y)
    if len(classes) < 2 or counts.min() < 3:
        return Finding(
            "label-errors",
            False,
            "not looked for: needs two or more classes with at least 3 patterns each",
        )
    sample_note = {}
    rows = np.arange(len(y))
    if len(y) > LABEL_ERROR_MAX_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(len(y), LABEL_ERROR_MAX_ROWS, replace=False))
        sample_note = {"sampled": int(LABEL_ERROR_MAX_ROWS), "of": len(y)}

    from cleanlab.filter import find_label_issues

    folds = int(min(5, counts.min()))
    plan = FoldPlan(dataset.id, ids[rows], tuple(str(c) for c in classes), folds)
    probs = out_of_fold(
        dataset,
        inputs.iloc[rows],
        y[rows],
        plan,
        elsewhere=elsewhere if dataset.columnar else None,
        progress=progress,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        issues = find_label_issues(
            y[rows], probs, return_indices_ranked_by="self_confidence", n_jobs=1
        )
    found_ids = tuple(int(ids[rows[i]]) for i in issues)
    suggested = {
        int(ids[rows[i]]): {
            "label": str(classes[y[rows[i]]]),
            "suggested": str(classes[int(np.argmax(probs[i]))]),
            "confidence_in_label": round(float(probs[i, y[rows[i]]]), 4),
        }
        for i in issues[:100]
    }
    return Finding(
        "label-errors",
        bool(found_ids),
        (
            f"{len(found_ids)} patterns are likely mislabelled (confident learning on "
            f"{folds}-fold out-of-fold probabilities)"
            if found_ids
            else "no likely label errors"
        ),
        found_ids,
        details={"model": type(probe_model(dataset)[-1]).__name__, "top": suggested, **sample_note},
    )
