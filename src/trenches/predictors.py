"""What makes predictions, resolved once: a model version or a baseline as a typed
:class:`Predictor`, and a named set of patterns as a :class:`PatternSet`.

A reference (``name@production``, a baseline's name) is resolved here, at the edge,
and the result passed down: the rooms below never resolve a string again. A
predictor's row is made when its version or baseline is registered, so resolving one
only reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import select

from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import InvalidInput, NotFound
from trenches.predictions import SPLIT_SETS

if TYPE_CHECKING:
    from trenches.models.registry import ModelVersion
    from trenches.patterns.datasets import Dataset
    from trenches.store import Store


@dataclass(frozen=True)
class Predictor:
    """A model version or a baseline, as the prediction store knows it: its reference,
    the id its predictions are kept under, the dataset they are about, and the class
    order of its stored scores (None for regression)."""

    ref: str
    id: int
    dataset: Dataset
    classes: tuple[str, ...] | None = None
    #: The version, when the predictor is one (None for a baseline).
    version: ModelVersion | None = field(default=None, compare=False, repr=False)

    @property
    def is_baseline(self) -> bool:
        return self.version is None


@dataclass(frozen=True)
class PatternSet:
    """A named set of pattern ids of one dataset, ascending: ``cancer:validation``,
    ``problem:thin-margins``."""

    name: str
    ids: np.ndarray = field(compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)


def split(dataset: Dataset, name: str) -> PatternSet:
    """The active patterns of one split of ``dataset`` (or ``all``)."""
    if name not in SPLIT_SETS:
        raise InvalidInput(f"split {name!r} must be train, validation, test or all")
    return PatternSet(
        f"{dataset.name}:{name}", dataset.pattern_ids(None if name == "all" else name)
    )


def resolve(store: Store, ref: str | ModelVersion | Predictor) -> Predictor:
    """The predictor ``ref`` names: ``name@3`` / ``name@alias`` (or a resolved
    :class:`~trenches.ModelVersion`) is a model version; a bare name is a baseline."""
    from trenches.models.registry import ModelVersion

    if isinstance(ref, Predictor):
        return ref
    if isinstance(ref, ModelVersion):
        return _of_version(store, ref)
    if "@" in ref:
        return _of_version(store, store.models.get(ref))
    baseline = store.baselines.get(ref)
    row = _row(store, t.predictors.c.baseline_id == baseline.id)
    if row is None:
        raise NotFound(f"baseline {ref!r} has no predictions")
    return Predictor(
        baseline.name, int(row.id), store.datasets.get(baseline.dataset), _classes(row.classes)
    )


def _of_version(store: Store, version: ModelVersion) -> Predictor:
    if version.dataset is None:
        raise InvalidInput(
            f"{version.ref} was registered without a dataset, so its patterns are unknown; "
            "register it in a run with a snapshot, or with dataset="
        )
    row = _row(store, t.predictors.c.version_id == version.id)
    if row is None:  # pragma: no cover - made at registration, and by migration 0010
        raise NotFound(f"{version.ref} has no predictor row; run `trenches init` to upgrade")
    dataset = store.datasets.get(version.dataset)
    return Predictor(version.ref, int(row.id), dataset, _classes(row.classes), version)


def _row(store: Store, where: Any) -> Any:
    with read(store.engine) as conn:
        return conn.execute(select(t.predictors.c.id, t.predictors.c.classes).where(where)).first()


def _classes(text: str | None) -> tuple[str, ...] | None:
    return tuple(orjson.loads(text)) if text else None
