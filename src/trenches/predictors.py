"""What makes predictions, resolved once: a model version or a baseline, named by a
reference, becomes a typed :class:`Predictor`.

A reference (``name@production``, a baseline's name) is resolved here, at the edge,
and the result passed down: the rooms below never resolve a string again. A
predictor's row is made when its version or baseline is registered, so resolving one
only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import select

from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.baselines import Baselines
    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.patterns.datasets import Dataset, Datasets
    from trenches.predictions import BlockRanges, Predictions


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


class Predictors:
    """What makes predictions, by reference: ``store.predictors``."""

    def __init__(
        self, engine: Engine, models: Models, baselines: Baselines, datasets: Datasets
    ) -> None:
        self._engine = engine
        self._models = models
        self._baselines = baselines
        self._datasets = datasets
        # The id range of each prediction block read so far (blocks never change).
        self._ranges: BlockRanges = {}

    def resolve(self, ref: str | ModelVersion | Predictor) -> Predictor:
        """The predictor ``ref`` names: ``name@3`` / ``name@alias`` (or a resolved
        :class:`~trenches.ModelVersion`) is a model version; a bare name is a baseline."""
        if isinstance(ref, Predictor):
            return ref
        if not isinstance(ref, str):
            return self._of_version(ref)
        if "@" in ref:
            return self._of_version(self._models.get(ref))
        baseline = self._baselines.get(ref)
        row = self._row(t.predictors.c.baseline_id == baseline.id)
        if row is None:
            raise NotFound(f"baseline {ref!r} has no predictions")
        dataset = self._datasets.get(baseline.dataset)
        return Predictor(baseline.name, int(row.id), dataset, _classes(row.classes))

    def predictions_of(
        self,
        ref: str | ModelVersion | Predictor,
        pattern_ids: Sequence[int] | np.ndarray,
        *,
        columns: Sequence[str] | None = None,
    ) -> Predictions:
        """``ref``'s predictions on ``pattern_ids`` (those it has), by ascending id: as
        fast for a page's rows on a million predictions as on a thousand. ``columns``:
        which of ``label_index``, ``value``, ``scores``, ``correct``, ``loss`` to read
        (all by default; the others come back None, the loss NaN)."""
        from trenches import predictions

        predictor = self.resolve(ref)
        with read(self._engine) as conn:
            return predictions.read_some(
                conn,
                predictor.id,
                pattern_ids,
                ranges=self._ranges,
                columns=predictions.COLUMNS if columns is None else columns,
            )

    def wrong(self, ref: str | ModelVersion | Predictor) -> np.ndarray:
        """The ids of the patterns ``ref`` predicted wrong, ascending (regression: out
        of its dataset's tolerance; without one, right and wrong are undefined)."""
        from trenches import predictions
        from trenches import verdicts as verdict

        predictor = self.resolve(ref)
        with read(self._engine) as conn:
            found = predictions.read(conn, predictor.id, columns=("correct", "value"))
        ds = predictor.dataset
        right = verdict.right(found, found.pattern_ids, ds, ds.tolerance)
        if right is None:
            raise InvalidInput(verdict.undefined_reason(ds))
        return np.asarray(found.pattern_ids[~right])

    def _of_version(self, version: ModelVersion) -> Predictor:
        if version.dataset is None:
            raise InvalidInput(
                f"{version.ref} was registered without a dataset, so its patterns are "
                "unknown; register it in a run with a snapshot, or with dataset="
            )
        row = self._row(t.predictors.c.version_id == version.id)
        if row is None:  # pragma: no cover - made at registration, and by migration 0010
            raise NotFound(f"{version.ref} has no predictor row; run `trenches init` to upgrade")
        dataset = self._datasets.get(version.dataset)
        return Predictor(version.ref, int(row.id), dataset, _classes(row.classes), version)

    def _row(self, where: Any) -> Any:
        with read(self._engine) as conn:
            return conn.execute(
                select(t.predictors.c.id, t.predictors.c.classes).where(where)
            ).first()


def _classes(text: str | None) -> tuple[str, ...] | None:
    return tuple(orjson.loads(text)) if text else None
