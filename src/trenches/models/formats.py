"""Model files: scikit-learn models as skops and ONNX, anything else as pickle; and
loading them back into something that predicts.

skops and ONNX load without running code from the file: a skops file loads untrusted only
when every name it holds is on trenches' fixed list (``trenches.models.trust``). Pickle
(cloudpickle) runs code on load, so it is only read when the caller says they trust the
file.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches.errors import InvalidInput, UntrustedModel
from trenches.json_form import json_shape

if TYPE_CHECKING:
    import pandas as pd

NUMERIC = ("number", "integer", "boolean")


@json_shape(
    encode={"inputs": lambda inputs: [{"name": n, "type": t} for n, t in inputs]},
    decode={"inputs": lambda inputs: tuple((c["name"], c["type"]) for c in inputs)},
)
@dataclass(frozen=True)
class Signature:
    """What a model takes and gives: input columns with types, and its classes."""

    inputs: tuple[tuple[str, str], ...]
    classes: tuple[Any, ...] | None

    @property
    def columns(self) -> list[str]:
        return [n for n, _ in self.inputs]

    @property
    def all_numeric(self) -> bool:
        return all(t in NUMERIC for _, t in self.inputs)


def infer_signature(model: Any, X: pd.DataFrame) -> Signature:
    """The signature of ``model`` from an example of its input."""
    import pandas as pd

    from trenches.patterns.inputs import infer_type

    if not isinstance(X, pd.DataFrame):
        raise InvalidInput("the input example must be a pandas DataFrame with named columns")
    inputs = tuple((str(c), infer_type(X[c])) for c in X.columns)
    classes = getattr(model, "classes_", None)
    return Signature(inputs, tuple(np.asarray(classes).tolist()) if classes is not None else None)


def is_sklearn(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    return isinstance(model, BaseEstimator)


# --- writing ----------------------------------------------------------------------


def to_skops(model: Any) -> tuple[bytes, dict[str, list[str]] | None]:
    """The skops bytes of an estimator and, when it holds names skops does not trust by
    default, which of them trenches trusts (``trusted_types``) and which force
    ``trusted=True`` at load (``needs_trust``), for the registry to show."""
    import skops.io as sio

    from trenches.models import trust

    data = sio.dumps(model)
    untrusted = sorted(sio.get_untrusted_types(data=data))
    if not untrusted:
        return data, None
    forcing = trust.needing_trust(untrusted)
    return data, {
        "trusted_types": [n for n in untrusted if n not in forcing],
        "needs_trust": forcing,
    }


def to_pickle(model: Any) -> bytes:
    import cloudpickle

    return bytes(cloudpickle.dumps(model))


#: Largest difference in any class probability (or regression value) between the ONNX
#: form and the native model on the registration sample for the ONNX form to be kept.
ONNX_TOLERANCE = 1e-5
#: And for a regression value, this much of its size besides: tree ensembles (XGBoost's,
#: LightGBM's) add up their trees in single precision in ONNX, a few units in the last
#: of its seven digits.
ONNX_RELATIVE = 1e-5


def to_onnx(
    model: Any, X: pd.DataFrame, signature: Signature
) -> tuple[bytes | None, bool, str | None]:
    """ONNX bytes of a scikit-learn model that predict like it on ``X``, whether inputs
    must be rounded to single precision first, and None; or None, False and why there
    is no faithful form.

    A model whose inputs are all numbers takes them as one matrix; any other (a
    pipeline that encodes string columns, or vectorizes text) takes one input a
    column, named after it. Some models (trees and their ensembles) round their input
    to single precision before comparing it with double-precision thresholds; when the
    model gives the same answers on ``X`` rounded that way, the ONNX form is fed
    rounded input too, which reproduces it exactly. A form is kept only when it gives
    the same labels and probabilities (to ``ONNX_TOLERANCE``) as the model on ``X``.
    XGBoost and LightGBM models (alone or in a pipeline) convert through onnxmltools.
    """
    try:
        from skl2onnx import convert_sklearn
    except ImportError as e:  # pragma: no cover - a dependency
        return None, False, f"skl2onnx is not available: {e}"
    from trenches.models import boosting

    boosting.teach_skl2onnx()
    options = _text_options()
    if hasattr(model, "predict_proba"):
        options[id(model)] = {"zipmap": False}
    import pandas as pd

    if signature.all_numeric:
        sample = X.to_numpy(dtype=np.float64)
        rounded = pd.DataFrame(sample.astype(np.float32).astype(np.float64), columns=X.columns)
        rounds = _same_answers(model, X, rounded)
    else:
        rounds = False
    reasons = []
    for dtype in (np.float64, np.float32):
        try:
            data = convert_sklearn(
                model,
                initial_types=_onnx_inputs(signature, dtype),
                options=options,
                target_opset=boosting.onnx_opsets(model),
            ).SerializeToString()
            candidate = OnnxModel(data, signature, round_inputs=rounds)
        except Exception as e:  # converter and runtime raise many kinds: "not this way"
            reasons.append(f"{np.dtype(dtype).name}: {type(e).__name__}: {e}"[:500])
            continue
        gap = onnx_gap(model, candidate, X)
        if gap is None:
            return data, rounds, None
        reasons.append(f"{np.dtype(dtype).name}: {gap}")
    return None, False, f"no faithful ONNX form of {type(model).__name__}: " + "; ".join(reasons)


def _text_options() -> dict[Any, Any]:
    """skl2onnx's options for text vectorizers: ONNX Runtime lower-cases text in the
    locale its operator names, ``en_US.UTF-8`` unless told, which many machines (and
    containers) lack; ``C.UTF-8`` is in every glibc since 2.35."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    return {kind: {"locale": "C.UTF-8"} for kind in (CountVectorizer, TfidfVectorizer)}


def _onnx_inputs(signature: Signature, dtype: Any) -> list[tuple[str, Any]]:
    """The ONNX inputs of a model with ``signature``: one matrix of ``dtype`` when its
    inputs are all numbers; else one a column (strings and text as strings, integers
    as int64, numbers and booleans as ``dtype``)."""
    from skl2onnx.common import data_types as types

    number = types.DoubleTensorType if dtype is np.float64 else types.FloatTensorType
    if signature.all_numeric:
        return [("X", number([None, len(signature.inputs)]))]
    kinds = {"integer": types.Int64TensorType, "string": types.StringTensorType}
    kinds["text"] = types.StringTensorType
    return [(name, kinds.get(kind, number)([None, 1])) for name, kind in signature.inputs]


def _same_answers(model: Any, a: pd.DataFrame, b: pd.DataFrame) -> bool:
    answer = model.predict_proba if hasattr(model, "predict_proba") else model.predict
    try:
        return bool(np.array_equal(np.asarray(answer(a)), np.asarray(answer(b))))
    except Exception:
        return False


def onnx_gap(model: Any, onnx_model: OnnxModel, X: pd.DataFrame) -> str | None:
    """How the ONNX form differs from the model on ``X``, or None when it does not."""
    try:
        if onnx_model.classes_ is not None and hasattr(model, "predict_proba"):
            most = float(np.max(np.abs(model.predict_proba(X) - onnx_model.predict_proba(X))))
            if most > ONNX_TOLERANCE:
                return f"probabilities differ by up to {most:.2g}"
        native, other = np.asarray(model.predict(X)), onnx_model.predict(X)
        if native.dtype.kind == "f":
            native, other = native.ravel(), np.asarray(other, dtype=np.float64).ravel()
            diff = np.abs(native - other)
            if np.all(diff <= ONNX_TOLERANCE + ONNX_RELATIVE * np.abs(native)):
                return None
            return f"predictions differ by up to {float(np.max(diff)):.2g}"
        if not np.array_equal(native, other):
            return "predicted labels differ"
    except Exception as e:  # ONNX Runtime may refuse the graph at run time
        return f"ONNX Runtime cannot run it: {type(e).__name__}: {e}"[:500]
    return None


# --- reading ----------------------------------------------------------------------


def from_skops(data: bytes, trusted: bool) -> Any:
    """The object a skops file holds. Without ``trusted``, only the names of
    ``trenches.models.trust``'s fixed list load; the file's other names are refused,
    named, before anything is rebuilt. What the store recorded at registration is not
    consulted: a shared store's rows are no reason to run code."""
    import skops.io as sio

    from trenches.models import trust

    needed = sorted(sio.get_untrusted_types(data=data))
    forcing = trust.needing_trust(needed)
    if forcing and not trusted:
        raise UntrustedModel(
            "this skops file holds names that can run code or read memory when the model "
            "is used: "
            + ", ".join(forcing)
            + "; load it with trusted=True (--trusted) only if you trust where it came from"
        )
    return sio.loads(data, trusted=needed)


def from_pickle(data: bytes, trusted: bool) -> Any:
    if not trusted:
        raise UntrustedModel(
            "this model is stored as a pickle, and loading a pickle runs code from the "
            "file; load it with trusted=True (--trusted) only if you trust where it came "
            "from, or register the model in a safe format (scikit-learn models are saved "
            "with skops and ONNX)"
        )
    return pickle.loads(data)


#: The NumPy type each kind of ONNX input is fed as.
_COLUMN_TYPES: dict[str, Any] = {
    "tensor(string)": str,
    "tensor(int64)": np.int64,
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


class OnnxModel:
    """An ONNX model run by ONNX Runtime, with ``predict`` and ``predict_proba``."""

    def __init__(
        self,
        data: bytes,
        signature: Signature,
        *,
        round_inputs: bool = False,
        threads: int | None = None,
    ) -> None:
        """``threads``: ONNX Runtime's intra-op threads; a server answering one row at
        a time wants 1 (and no spinning, which burns a core between requests: it took
        CPU from the event loop and doubled single-row latency); None is its default."""
        import onnxruntime as ort

        self.round_inputs = round_inputs
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0]
        self._dtype = np.float32 if "float)" in self._input.type else np.float64
        # A model taking anything but numbers takes one input a column (see to_onnx).
        self._by_column = (
            None
            if signature.all_numeric
            else {i.name: _COLUMN_TYPES[i.type] for i in self._session.get_inputs()}
        )
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.signature = signature
        self.classes_ = np.array(signature.classes) if signature.classes is not None else None

    def _run(self, X: Any) -> list[Any]:
        if self._by_column is not None:
            return list(self._session.run(None, self._columns(X)))
        # A DataFrame is known by its columns, not by pandas: a server on the ONNX path
        # never imports pandas, and a module another thread is still importing (the
        # request log's first move into its tables does) must not be touched.
        if not isinstance(X, np.ndarray) and hasattr(X, "columns"):
            wanted = list(self.signature.columns)
            if X.columns.tolist() != wanted:  # else its values are the matrix, uncopied
                missing = [c for c in wanted if c not in X.columns]
                if missing:
                    raise InvalidInput(
                        f"the input lacks the column {missing[0]!r}", field=missing[0]
                    )
                X = X[wanted]
        arr = np.asarray(X)
        if arr.dtype != self.input_dtype:
            arr = np.asarray(arr, dtype=np.float64).astype(self.input_dtype)
        arr = arr.astype(self._dtype, copy=False)
        return list(self._session.run(None, {self._input.name: arr}))

    def _columns(self, X: Any) -> dict[str, np.ndarray]:
        """The inputs of a model that takes one a column, from a DataFrame: a missing
        string is the empty string (an unknown category to an encoder, no words to a
        vectorizer)."""
        if not hasattr(X, "columns"):
            raise InvalidInput(
                "this model takes named columns of several types; give it a DataFrame"
            )
        feed = {}
        for name, kind in self._by_column.items():  # type: ignore[union-attr]
            if name not in X.columns:
                raise InvalidInput(f"the input lacks the column {name!r}", field=name)
            column = X[name]
            if kind is str:
                values = column.astype(object).where(column.notna(), "").astype(str)
                feed[name] = values.to_numpy(dtype=object).reshape(-1, 1)
            else:
                try:
                    feed[name] = column.to_numpy(dtype=kind).reshape(-1, 1)
                except (TypeError, ValueError) as e:
                    raise InvalidInput(
                        f"the column {name!r} must hold {np.dtype(kind).name} values: {e}",
                        field=name,
                    ) from e
        return feed

    @property
    def input_dtype(self) -> type[np.floating[Any]]:
        """The type of number the model's input is made of: single precision when it
        takes that or its inputs are rounded to it (a matrix made so is given to it
        uncopied), else double."""
        return np.float32 if self.round_inputs or self._dtype is np.float32 else np.float64

    #: Probabilities this close to the largest count as a tie. ONNX Runtime sums in
    #: another order (and tree ensembles in single precision), so an exact tie in
    #: scikit-learn can come out a hair apart; ties go to the first class, as in
    #: scikit-learn's argmax.
    TIE = 1e-6

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_with_proba(X)[0]

    def predict_with_proba(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and class probabilities (None for a regressor) from one run."""
        outs = self._run(X)
        proba = self._probabilities(outs)
        if proba is not None:
            best = proba >= proba.max(axis=1, keepdims=True) - self.TIE
            return np.asarray(self.classes_)[best.argmax(axis=1)], proba
        out = np.asarray(outs[0])
        return (out.ravel() if out.ndim > 1 and out.shape[1] == 1 else out), None

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = self._probabilities(self._run(X))
        if proba is None:
            raise InvalidInput("this ONNX model gives no probabilities")
        return proba

    def _probabilities(self, outs: list[Any]) -> np.ndarray | None:
        """A classifier's probabilities among its outputs: the second of skl2onnx's
        (label, probabilities), or the only one of an exported network's."""
        if self.classes_ is None:
            return None
        if len(outs) >= 2:
            return np.asarray(outs[1], dtype=np.float64)
        only = np.asarray(outs[0])
        if only.ndim == 2 and only.shape[1] == len(self.classes_) and only.dtype.kind == "f":
            return only.astype(np.float64)
        return None
