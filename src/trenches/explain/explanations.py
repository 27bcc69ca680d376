"""Explain a version's predictions on patterns (``store.explanations``), and read the
explanations stored."""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import id_in, insert_ignore, read, write
from trenches.errors import InvalidInput, NotFound
from trenches.explain.explainers import TabularExplainer, TextExplainer
from trenches.json_form import json_shape, to_json
from trenches.patterns.frames import read_patterns
from trenches.patterns.lookup import owners
from trenches.predict import model_inputs

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.patterns.datasets import Dataset, Datasets
    from trenches.patterns.snapshots import Snapshots
    from trenches.runs import Runs

METHODS = ("lime-tabular", "lime-text")
#: Most training patterns the tabular explainer learns its bins and frequencies from.
TRAINING_SAMPLE = 5_000

Weight = tuple[str, str, float]
#: The keys of a weight in the JSON form.
_WEIGHT = ("feature", "condition", "weight")


@json_shape(
    encode={"weights": lambda weights: [dict(zip(_WEIGHT, w, strict=True)) for w in weights]},
    decode={"weights": lambda weights: tuple(tuple(w[k] for k in _WEIGHT) for w in weights)},
)
@dataclass(frozen=True)
class Explanation:
    """Why a model version predicted what it did on one pattern, by LIME."""

    version: str
    pattern_id: int
    method: str
    #: The class explained (the predicted class), as text; None for regression.
    label: str | None
    #: The predicted label (as text) or value.
    prediction: str | float
    #: The model's probability of ``label``; None for regression.
    probability: float | None
    intercept: float
    #: The surrogate's prediction at the pattern.
    local_prediction: float
    #: R^2 of the local surrogate on the perturbed copies (weighted by closeness).
    score: float
    #: (feature or word, condition, weight), by |weight| descending.
    weights: tuple[Weight, ...]
    settings: dict[str, Any]
    created_at: datetime

    def toward(self) -> list[Weight]:
        """What pushed toward the predicted class (or the value up): weight > 0."""
        return [w for w in self.weights if w[2] > 0]

    def against(self) -> list[Weight]:
        """What pushed against the predicted class (or the value down): weight < 0."""
        return [w for w in self.weights if w[2] < 0]

    def to_json(self) -> dict[str, Any]:
        """The explanation as plain JSON values: ``trenches.to_json(explanation)``."""
        return cast(dict[str, Any], to_json(self))


def _digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _from_row(row: Any, ref: str) -> Explanation:
    body = orjson.loads(row.body)
    return Explanation(
        version=ref,
        pattern_id=int(row.pattern_id),
        method=row.method,
        label=row.label,
        prediction=body["prediction"],
        probability=body["probability"],
        intercept=body["intercept"],
        local_prediction=body["local_prediction"],
        score=body["score"],
        weights=tuple((w["feature"], w["condition"], w["weight"]) for w in body["weights"]),
        settings=orjson.loads(row.settings),
        created_at=timestamps.from_us(row.created_at),
    )


class Explanations:
    """``store.explanations``: explain a version's prediction on a pattern, and read
    the explanations stored."""

    def __init__(
        self, engine: Engine, models: Models, datasets: Datasets, runs: Runs, snapshots: Snapshots
    ) -> None:
        self._engine = engine
        self._models = models
        self._datasets = datasets
        self._runs = runs
        self._snapshots = snapshots

    def explain(
        self,
        ref: str,
        pattern_ids: Sequence[int],
        *,
        seed: int = 0,
        num_samples: int = 5000,
        num_features: int = 10,
        trusted: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[Explanation]:
        """Explain the prediction of the version ``ref`` on each pattern, in order.

        An explanation already stored with the same settings is returned as stored,
        not computed again. ``num_samples`` perturbed copies are asked of the model per
        pattern; the surrogate keeps at most ``num_features`` features or words.
        ``progress`` is called with the number of patterns done.
        """
        if num_samples < 10 or num_features < 1 or seed < 0:
            raise InvalidInput(
                f"num_samples ({num_samples}) must be 10 or more, num_features "
                f"({num_features}) 1 or more and seed ({seed}) 0 or more"
            )
        version = self._models.get(ref)
        if version.dataset is None:
            raise InvalidInput(
                f"{version.ref} was registered without a dataset, so its patterns are "
                "unknown; register it in a run with a snapshot, or with dataset="
            )
        dataset = self._datasets.get(version.dataset)
        ids = list(dict.fromkeys(int(i) for i in pattern_ids))
        if not ids:
            return []
        self._check_patterns(version, dataset, ids)
        columns = list(version.signature.columns)
        types = _column_types(version, dataset)
        text = len(columns) == 1 and types[columns[0]] == "text"
        method = "lime-text" if text else "lime-tabular"
        settings: dict[str, Any] = {
            "method": method,
            "seed": int(seed),
            "num_samples": int(num_samples),
            "num_features": int(num_features),
            "lime": package_version("lime"),
        }
        snapshot_id = None
        if not text and version.run_id is not None:
            snapshot_id = self._runs.get(version.run_id).snapshot_id
        if not text:
            settings["training_data"] = (
                f"snapshot {snapshot_id}, train split"
                if snapshot_id is not None
                else f"dataset {dataset.name}, active train split"
            )
            settings["training_sample"] = TRAINING_SAMPLE
            settings["discretizer"] = "quartile"
        digest = _digest(settings)
        done = self._stored(version, ids, method, digest)
        if done and progress is not None:
            progress(len(done))
        todo = [i for i in ids if i not in done]
        if todo:
            fmt = "onnx" if "onnx" in version.formats else "native"
            model = self._models.load(version.ref, format=fmt, trusted=trusted)
            task = version.task or dataset.task
            if task != "regression" and not hasattr(model, "predict_proba"):
                raise InvalidInput(
                    f"{version.ref} gives no class probabilities (it has no "
                    "predict_proba), and LIME explains the probability of a class"
                )
            frame, _ = read_patterns(dataset, ids=todo, full_info=False)
            frame = model_inputs(version, dataset, frame)
            lime = {"num_samples": num_samples, "num_features": num_features}
            explainer: TextExplainer | TabularExplainer
            if text:
                explainer = TextExplainer(model, columns[0], seed, lime)
            else:
                training = self._training_sample(dataset, snapshot_id, columns, seed)
                explainer = TabularExplainer(model, columns, types, training, seed, lime)
            classes = _classes(model, version) if task != "regression" else None
            label_type = dataset.label_type or "string"
            for pid in todo:
                row = frame.loc[[pid]]
                label, body = explainer.explain(pid, row, classes, label_type)
                with write(self._engine) as conn:
                    insert_ignore(
                        conn,
                        t.explanations,
                        {
                            "version_id": version.id,
                            "pattern_id": pid,
                            "method": method,
                            "settings_digest": digest,
                            "settings": orjson.dumps(settings).decode(),
                            "label": label,
                            "body": orjson.dumps(body).decode(),
                            "created_at": timestamps.now_us(),
                        },
                    )
                if progress is not None:
                    progress(1)
            # Read back what is stored: another process may have stored one first.
            done.update(self._stored(version, todo, method, digest))
        return [done[i] for i in ids]

    def list(
        self,
        ref: str | None = None,
        *,
        pattern_ids: Sequence[int] | None = None,
        dataset: str | None = None,
    ) -> builtins.list[Explanation]:
        """Stored explanations, of one version (``ref``), some patterns or one dataset;
        by version, pattern and time of storing."""
        e, v, m = t.explanations.c, t.model_versions.c, t.models.c
        query = (
            select(t.explanations, m.name, v.version)
            .join(t.model_versions, v.id == e.version_id)
            .join(t.models, m.id == v.model_id)
            .order_by(e.version_id, e.pattern_id, e.id)
        )
        if ref is not None:
            query = query.where(e.version_id == self._models.get(ref).id)
        if dataset is not None:
            query = query.where(v.dataset_id == self._datasets.get(dataset).id)
        with read(self._engine) as conn:
            if pattern_ids is not None:
                query = query.where(id_in(conn.dialect.name, e.pattern_id, list(pattern_ids)))
            rows = conn.execute(query).all()
        return [_from_row(r, f"{r.name}@{r.version}") for r in rows]

    # --- helpers ------------------------------------------------------------------

    def _check_patterns(self, version: ModelVersion, dataset: Dataset, ids: Sequence[int]) -> None:
        with read(self._engine) as conn:
            owner, _ = owners(conn, ids)
        for i, found in zip(ids, owner.tolist(), strict=True):
            if found < 0:
                raise NotFound(f"no pattern with id {i}; give patterns of {dataset.name!r}")
            if found != dataset.id:
                other = self._datasets.by_id(found).name
                raise InvalidInput(
                    f"pattern {i} belongs to dataset {other!r}, but {version.ref} predicts "
                    f"dataset {dataset.name!r}; explain patterns of {dataset.name!r}"
                )

    def _stored(
        self, version: ModelVersion, ids: Sequence[int], method: str, digest: str
    ) -> dict[int, Explanation]:
        e = t.explanations.c
        with read(self._engine) as conn:
            rows = conn.execute(
                select(t.explanations).where(
                    e.version_id == version.id,
                    e.method == method,
                    e.settings_digest == digest,
                    id_in(conn.dialect.name, e.pattern_id, ids),
                )
            ).all()
        return {int(r.pattern_id): _from_row(r, version.ref) for r in rows}

    def _training_sample(
        self, dataset: Dataset, snapshot_id: int | None, columns: Sequence[str], seed: int
    ) -> pd.DataFrame:
        """Up to TRAINING_SAMPLE patterns of the training split the version learnt from
        (its snapshot's), else of the dataset's active training patterns."""
        if snapshot_id is not None:
            ids = self._snapshots.get(snapshot_id).pattern_ids("train")
        else:
            _, info = read_patterns(dataset, split="train", with_inputs=False, full_info=False)
            ids = info.index.to_numpy()
        if len(ids) == 0:
            raise InvalidInput(
                f"dataset {dataset.name!r} has no training patterns"
                + (f" in snapshot {snapshot_id}" if snapshot_id is not None else "")
                + "; LIME needs them to know how each input varies"
            )
        if len(ids) > TRAINING_SAMPLE:
            rng = np.random.default_rng(seed)
            ids = np.sort(rng.choice(ids, TRAINING_SAMPLE, replace=False))
        frame, _ = read_patterns(dataset, ids=ids.tolist(), full_info=False)
        return frame[list(columns)]


def _column_types(version: ModelVersion, dataset: Dataset) -> dict[str, str]:
    """Each input's type: the dataset's where it has the column (it alone knows text)."""
    types = dict(version.signature.inputs)
    if dataset.schema is not None:
        for c in dataset.schema.columns:
            if c.name in types:
                types[c.name] = c.type
    if dataset.text_column in types:
        types[dataset.text_column] = "text"
    return types


def _classes(model: Any, version: ModelVersion) -> list[Any]:
    classes = getattr(model, "classes_", None)
    if classes is None:
        classes = version.signature.classes
    if classes is None:
        raise InvalidInput(f"{version.ref} does not say which classes it predicts")
    return list(np.asarray(classes).tolist())
