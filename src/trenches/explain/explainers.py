"""LIME's explainers over trenches' inputs.

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
"""

from __future__ import annotations

import builtins
import functools
import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from trenches.errors import InvalidInput
from trenches.patterns import inputs as inp

MISSING = "(missing)"


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


class TextExplainer:
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


class TabularExplainer:
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

    class Quartiles(QuartileDiscretizer):  # type: ignore[misc]  # lime ships no types
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
