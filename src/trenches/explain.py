"""Explanations of single predictions with LIME, stored per (version, pattern).

LIME explains one prediction by asking the model about many perturbed copies of the
pattern and fitting a weighted linear model (the *surrogate*) to its answers near the
pattern. The surrogate's weights say which features (or words) pushed the prediction
toward the predicted class (or up, for regression) and which pushed against it.

How a pattern's inputs meet LIME's tabular explainer:

- ``number`` and ``integer`` columns are continuous: LIME bins them at the quartiles of
  a sample of the training data and perturbs within bins; integer columns are perturbed
  with training values of the bin, so the model only ever sees whole numbers.
- ``boolean`` and ``string`` columns are categorical: label-encoded, perturbed by the
  training frequencies of their values, and decoded back before the model sees them.
- Missing values: in the training sample a missing number or integer takes the
  column's median and a missing boolean its most frequent value; a missing string is a
  category of its own (shown as ``(missing)``). A pattern's own missing number, integer
  or boolean is held missing in every perturbed copy, and so is not explained.
- ``text`` columns beside other inputs are held at the pattern's value. A model whose
  only input is one text column gets LIME's text explainer, which removes words.

Each explanation is built with a fresh explainer seeded with ``seed``, so it does not
depend on what was explained before it, and the same settings give the same weights.
It is stored once per (version, pattern, method, settings).
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import itertools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import id_in, insert_ignore, read, write
from trenches.errors import InvalidInput, NotFound
from trenches.patterns import inputs as inp
from trenches.patterns.frames import read_patterns
from trenches.predict import model_inputs

if TYPE_CHECKING:
    from trenches.models.registry import ModelVersion
    from trenches.patterns.datasets import Dataset
    from trenches.store import Store

METHODS = ("lime-tabular", "lime-text")
#: Most training patterns the tabular explainer learns its bins and frequencies from.
TRAINING_SAMPLE = 5_000
MISSING = "(missing)"

Weight = tuple[str, str, float]


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
        return {
            "version": self.version,
            "pattern_id": self.pattern_id,
            "method": self.method,
            "label": self.label,
            "prediction": self.prediction,
            "probability": self.probability,
            "intercept": self.intercept,
            "local_prediction": self.local_prediction,
            "score": self.score,
            "weights": [{"feature": f, "condition": c, "weight": w} for f, c, w in self.weights],
            "settings": self.settings,
            "created_at": timestamps.iso(timestamps.to_us(self.created_at)),
        }


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

    def __init__(self, store: Store) -> None:
        self._store = store

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
        version = self._store.models.get(ref)
        if version.dataset is None:
            raise InvalidInput(
                f"{version.ref} was registered without a dataset, so its patterns are "
                "unknown; register it in a run with a snapshot, or with dataset="
            )
        dataset = self._store.datasets.get(version.dataset)
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
            snapshot_id = self._store.runs.get(version.run_id).snapshot_id
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
            model = self._store.models.load(version.ref, format=fmt, trusted=trusted)
            task = version.task or dataset.task
            if task != "regression" and not hasattr(model, "predict_proba"):
                raise InvalidInput(
                    f"{version.ref} gives no class probabilities (it has no "
                    "predict_proba), and LIME explains the probability of a class"
                )
            frame, _ = read_patterns(dataset, ids=todo, full_info=False)
            frame = model_inputs(version, dataset, frame)
            lime = {"num_samples": num_samples, "num_features": num_features}
            explainer: _Text | _Tabular
            if text:
                explainer = _Text(model, columns[0], seed, lime)
            else:
                training = self._training_sample(dataset, snapshot_id, columns, seed)
                explainer = _Tabular(model, columns, types, training, seed, lime)
            classes = _classes(model, version) if task != "regression" else None
            label_type = dataset.label_type or "string"
            for pid in todo:
                row = frame.loc[[pid]]
                label, body = explainer.explain(pid, row, classes, label_type)
                with write(self._store.engine) as conn:
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
            query = query.where(e.version_id == self._store.models.get(ref).id)
        if dataset is not None:
            query = query.where(v.dataset_id == self._store.datasets.get(dataset).id)
        with read(self._store.engine) as conn:
            if pattern_ids is not None:
                query = query.where(id_in(conn.dialect.name, e.pattern_id, list(pattern_ids)))
            rows = conn.execute(query).all()
        return [_from_row(r, f"{r.name}@{r.version}") for r in rows]

    # --- helpers ------------------------------------------------------------------

    def _check_patterns(self, version: ModelVersion, dataset: Dataset, ids: Sequence[int]) -> None:
        p = t.patterns.c
        with read(self._store.engine) as conn:
            found = dict(
                conn.execute(
                    select(p.id, p.dataset_id).where(id_in(conn.dialect.name, p.id, ids))
                ).all()
            )
        for i in ids:
            if i not in found:
                raise NotFound(f"no pattern with id {i}; give patterns of {dataset.name!r}")
            if found[i] != dataset.id:
                other = self._store.datasets.by_id(found[i]).name
                raise InvalidInput(
                    f"pattern {i} belongs to dataset {other!r}, but {version.ref} predicts "
                    f"dataset {dataset.name!r}; explain patterns of {dataset.name!r}"
                )

    def _stored(
        self, version: ModelVersion, ids: Sequence[int], method: str, digest: str
    ) -> dict[int, Explanation]:
        e = t.explanations.c
        with read(self._store.engine) as conn:
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
            ids = self._store.snapshots.get(snapshot_id).pattern_ids("train")
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


def _predicted(
    model: Any, row: pd.DataFrame, classes: builtins.list[Any] | None, label_type: str
) -> tuple[str | None, str | float, float | None, int]:
    """(label explained, prediction, its probability, index of the class) for one row."""
    predicted = np.asarray(model.predict(row)).ravel()
    if classes is None:
        return None, float(predicted[0]), None, 0
    proba = np.asarray(model.predict_proba(row), dtype=np.float64)[0]
    texts = inp.label_to_text(np.asarray(classes), label_type)
    text = inp.label_to_text(predicted[:1], label_type)[0]
    index = texts.index(text) if text in texts else int(np.argmax(proba))
    return texts[index], texts[index], float(proba[index]), index


def _body(
    exp: Any,
    key: int,
    prediction: str | float,
    probability: float | None,
    names: Callable[[int], tuple[str, str]],
) -> dict[str, Any]:
    weights = []
    for i, w in exp.local_exp[key]:
        feature, condition = names(int(i))
        weights.append({"feature": feature, "condition": condition, "weight": float(w)})
    return {
        "prediction": prediction,
        "probability": probability,
        "intercept": float(np.asarray(exp.intercept[key]).ravel()[0]),
        "local_prediction": float(np.asarray(exp.local_pred).ravel()[0]),
        "score": float(exp.score),
        "weights": weights,
    }


class _Text:
    """LIME's text explainer over the one text column a model reads."""

    def __init__(self, model: Any, column: str, seed: int, lime: dict[str, int]) -> None:
        self.model, self.column, self.seed, self.lime = model, column, seed, lime

    def explain(
        self, pid: int, row: pd.DataFrame, classes: builtins.list[Any] | None, label_type: str
    ) -> tuple[str | None, dict[str, Any]]:
        from lime.lime_text import LimeTextExplainer

        text = row[self.column].iloc[0]
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"pattern {pid} has no text to explain", field=self.column)
        label, prediction, probability, index = _predicted(self.model, row, classes, label_type)

        def answer(texts: Sequence[str]) -> np.ndarray:
            frame = pd.DataFrame({self.column: np.asarray(list(texts), dtype=object)})
            if classes is None:
                return np.asarray(self.model.predict(frame), dtype=np.float64).reshape(-1, 1)
            return np.asarray(self.model.predict_proba(frame), dtype=np.float64)

        explainer = LimeTextExplainer(random_state=self.seed)
        exp = explainer.explain_instance(text, answer, labels=(index,), **self.lime)
        words = exp.domain_mapper.indexed_string

        def names(i: int) -> tuple[str, str]:
            word = str(words.word(i))
            return word, f'contains "{word}"'

        return label, _body(exp, index, prediction, probability, names)


class _Tabular:
    """LIME's tabular explainer, with the inputs encoded as numbers it can perturb."""

    def __init__(
        self,
        model: Any,
        columns: Sequence[str],
        types: dict[str, str],
        training: pd.DataFrame,
        seed: int,
        lime: dict[str, int],
    ) -> None:
        self.model, self.columns, self.types = model, list(columns), types
        self.seed, self.lime = seed, lime
        #: The columns LIME may perturb; text columns are always held.
        self.features = [c for c in self.columns if types[c] != "text"]
        #: Per categorical column, its values in code order (None for a missing string).
        self.categories: dict[str, builtins.list[Any]] = {}
        encoded = {}
        for c in self.features:
            values = training[c]
            if types[c] in ("number", "integer"):
                floats = pd.to_numeric(values, errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
                fill = float(np.nanmedian(floats)) if np.isfinite(floats).any() else 0.0
                encoded[c] = np.where(np.isnan(floats), fill, floats)
            elif types[c] == "boolean":
                present = values.dropna().astype(bool)
                common = bool(present.mode().iloc[0]) if len(present) else False
                bools = values.astype(object).where(values.notna(), common).astype(bool)
                self.categories[c] = [False, True]
                encoded[c] = bools.to_numpy().astype(np.float64)
            else:
                objs = [None if _missing(v) else str(v) for v in values.tolist()]
                cats: builtins.list[str | None] = [*sorted({v for v in objs if v is not None})]
                if any(v is None for v in objs):
                    cats.append(None)
                self.categories[c] = cats
                code = {v: j for j, v in enumerate(cats)}
                encoded[c] = np.array([code[v] for v in objs], dtype=np.float64)
        self.training = encoded

    def explain(
        self, pid: int, row: pd.DataFrame, classes: builtins.list[Any] | None, label_type: str
    ) -> tuple[str | None, dict[str, Any]]:
        from lime.lime_tabular import LimeTabularExplainer

        label, prediction, probability, index = _predicted(self.model, row, classes, label_type)
        # A pattern's own missing number or boolean is held, not perturbed.
        varying = [
            c
            for c in self.features
            if not (self.types[c] in ("number", "integer", "boolean") and _missing(row[c].iloc[0]))
        ]
        if not varying:
            raise InvalidInput(
                f"pattern {pid} has no input LIME can vary: every input is missing or text"
            )
        categories = {c: list(self.categories[c]) for c in varying if c in self.categories}
        instance = np.empty(len(varying))
        for j, c in enumerate(varying):
            value = row[c].iloc[0]
            if c not in categories:
                instance[j] = float(value)
                continue
            if self.types[c] == "boolean":
                value = bool(value)
            elif _missing(value):
                value = None
            else:
                value = str(value)
            if value not in categories[c]:  # unseen in training: a code of its own
                categories[c].append(value)
            instance[j] = categories[c].index(value)
        training = np.column_stack([self.training[c] for c in varying])
        categorical = [j for j, c in enumerate(varying) if c in categories]
        integer = [j for j, c in enumerate(varying) if self.types[c] == "integer"]
        display = {
            j: [_show(v) for v in categories[c]] for j, c in enumerate(varying) if c in categories
        }
        bins = _quartiles()(training, categorical, varying, integer, random_state=self.seed)
        explainer = LimeTabularExplainer(
            training,
            mode="classification" if classes is not None else "regression",
            feature_names=varying,
            categorical_features=categorical,
            categorical_names=display,
            discretizer=bins,
            random_state=self.seed,
        )

        def answer(samples: np.ndarray) -> np.ndarray:
            frame = self._decode(row, varying, categories, samples)
            if classes is None:
                return np.asarray(self.model.predict(frame), dtype=np.float64).ravel()
            return np.asarray(self.model.predict_proba(frame), dtype=np.float64)

        with warnings.catch_warnings():
            # LIME warns when probabilities do not sum to 1 exactly (float32 models).
            warnings.filterwarnings("ignore", message="(?s).*do not sum to 1")
            exp = explainer.explain_instance(instance, answer, labels=(index,), **self.lime)
        # In regression mode LIME keys the weights toward a higher value as label 1.
        key = index if classes is not None else 1
        # as_list gives each weight's condition ("radius <= 12.10", "site=left"), in the
        # order of local_exp, which gives the feature's index.
        conditions = [name for name, _ in exp.as_list(label=key)]
        by_id = {
            int(i): (varying[int(i)], str(condition))
            for (i, _), condition in zip(exp.local_exp[key], conditions, strict=True)
        }
        return label, _body(exp, key, prediction, probability, by_id.__getitem__)

    def _decode(
        self,
        row: pd.DataFrame,
        varying: Sequence[str],
        categories: dict[str, builtins.list[Any]],
        samples: np.ndarray,
    ) -> pd.DataFrame:
        """LIME's numeric samples as the DataFrame the model takes: the pattern's row
        repeated (held columns keep its values and dtypes), the varied columns decoded."""
        n = len(samples)
        frame = row.iloc[np.zeros(n, dtype=np.int64)].reset_index(drop=True)
        for j, c in enumerate(varying):
            values = samples[:, j]
            typ = self.types[c]
            if typ == "number":
                frame[c] = values.astype(np.float64)
            elif typ == "integer":
                frame[c] = np.rint(values).astype(np.int64)
            else:
                codes = np.clip(np.rint(values).astype(np.int64), 0, len(categories[c]) - 1)
                decoded = np.asarray(categories[c], dtype=object)[codes]
                frame[c] = decoded.astype(bool) if typ == "boolean" else decoded
        return frame[self.columns]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _show(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@functools.cache
def _quartiles() -> type:
    """LIME's quartile discretizer, mended for trenches' inputs (lime loads lazily: it
    takes seconds to import, and most commands never explain)."""
    from lime.discretize import QuartileDiscretizer

    class Quartiles(QuartileDiscretizer):
        """Bins at the quartiles, as LIME's, with two differences when a binned value
        is perturbed: an integer column draws a training value of its bin, so the
        model only sees whole numbers that lie in the bin; and a bin holding one value
        gives that value (LIME 0.2.0.1 gives its z-score, 0, instead)."""

        def __init__(
            self,
            data: np.ndarray,
            categorical: Sequence[int],
            names: Sequence[str],
            integer: Sequence[int],
            random_state: int,
        ) -> None:
            super().__init__(data, categorical, names, random_state=random_state)
            # LIME names bins with two decimals ("0.00 < fractal_dimension <= 0.00");
            # four significant digits keep small and large numbers readable.
            for f, qts in zip(self.to_discretize, self.bins(data, None), strict=True):
                qts = np.unique(qts)
                name = names[f]
                self.names[f] = [
                    f"{name} <= {qts[0]:.4g}",
                    *(f"{lo:.4g} < {name} <= {hi:.4g}" for lo, hi in itertools.pairwise(qts)),
                    f"{name} > {qts[-1]:.4g}",
                ]
            self.pools: dict[int, list[np.ndarray]] = {}
            for f in integer:
                bins = self.lambdas[f](data[:, f])
                self.pools[f] = [data[bins == b, f] for b in range(len(self.means[f]))]

        def get_undiscretize_values(self, feature: int, values: np.ndarray) -> np.ndarray:
            values = np.asarray(values, dtype=np.int64)
            out = np.asarray(super().get_undiscretize_values(feature, values), dtype=np.float64)
            lows = np.asarray(self.mins[feature], dtype=np.float64)[values]
            highs = np.asarray(self.maxs[feature], dtype=np.float64)[values]
            one = lows == highs
            out[one] = lows[one]
            for b, pool in enumerate(self.pools.get(feature, ())):
                where = values == b
                if len(pool) and where.any():
                    out[where] = self.random_state.choice(pool, size=int(where.sum()))
            return out

    return Quartiles
