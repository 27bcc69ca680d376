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


def to_onnx(
    model: Any, X: pd.DataFrame, signature: Signature
) -> tuple[bytes | None, bool, str | None]:
    """ONNX bytes of a scikit-learn model that predict like it on ``X``, whether inputs
    must be rounded to single precision first, and None; or None, False and why there
    is no faithful form.

    Some models (trees and their ensembles) round their input to single precision
    before comparing it with double-precision thresholds; when the model gives the same
    answers on ``X`` rounded that way, the ONNX form is fed rounded input too, which
    reproduces it exactly. A form is kept only when it gives the same labels and
    probabilities (to ``ONNX_TOLERANCE``) as the model on ``X``.
    """
    if not signature.all_numeric:
        return None, False, _not_numeric(signature)
    try:
        from skl2onnx import to_onnx as convert
    except ImportError as e:  # pragma: no cover - a dependency
        return None, False, f"skl2onnx is not available: {e}"
    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    sample = X.to_numpy(dtype=np.float64)
    import pandas as pd

    rounded = pd.DataFrame(sample.astype(np.float32).astype(np.float64), columns=X.columns)
    rounds = _same_answers(model, X, rounded)
    reasons = []
    for dtype in (np.float64, np.float32):
        try:
            data = convert(model, sample[:1].astype(dtype), options=options).SerializeToString()
            candidate = OnnxModel(data, signature, round_inputs=rounds)
        except Exception as e:  # converter and runtime raise many kinds: "not this way"
            reasons.append(f"{np.dtype(dtype).name}: {type(e).__name__}: {e}"[:500])
            continue
        gap = _onnx_gap(model, candidate, X)
        if gap is None:
            return data, rounds, None
        reasons.append(f"{np.dtype(dtype).name}: {gap}")
    return None, False, f"no faithful ONNX form of {type(model).__name__}: " + "; ".join(reasons)


def _not_numeric(signature: Signature) -> str:
    """Why a model with non-numeric inputs has no ONNX form, naming them."""
    others = [(n, t) for n, t in signature.inputs if t not in NUMERIC]
    named = ", ".join(f"{n} ({t})" for n, t in others)
    inputs, are = ("inputs", "are") if len(others) > 1 else ("input", "is")
    return (
        f"no ONNX form: {inputs} {named} {are} not numeric, and ONNX export here takes "
        "numeric inputs only; the skops file is used"
    )


def _same_answers(model: Any, a: pd.DataFrame, b: pd.DataFrame) -> bool:
    answer = model.predict_proba if hasattr(model, "predict_proba") else model.predict
    try:
        return bool(np.array_equal(np.asarray(answer(a)), np.asarray(answer(b))))
    except Exception:
        return False


def _onnx_gap(model: Any, onnx_model: OnnxModel, X: pd.DataFrame) -> str | None:
    """How the ONNX form differs from the model on ``X``, or None when it does not."""
    try:
        if onnx_model.classes_ is not None and hasattr(model, "predict_proba"):
            diff = float(np.max(np.abs(model.predict_proba(X) - onnx_model.predict_proba(X))))
            if diff > ONNX_TOLERANCE:
                return f"probabilities differ by up to {diff:.2g}"
        native, other = np.asarray(model.predict(X)), onnx_model.predict(X)
        if native.dtype.kind == "f":
            diff = float(np.max(np.abs(native - other)))
            return None if diff <= ONNX_TOLERANCE else f"predictions differ by up to {diff:.2g}"
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
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.signature = signature
        self.classes_ = np.array(signature.classes) if signature.classes is not None else None

    def _run(self, X: Any) -> list[Any]:
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
        outs = self._run(X)
        if self.classes_ is not None and len(outs) >= 2:
            proba = np.asarray(outs[1], dtype=np.float64)
            best = proba >= proba.max(axis=1, keepdims=True) - self.TIE
            return np.asarray(np.asarray(self.classes_)[best.argmax(axis=1)])
        out = np.asarray(outs[0])
        return out.ravel() if out.ndim > 1 and out.shape[1] == 1 else out

    def predict_with_proba(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and class probabilities (None for a regressor) from one run."""
        outs = self._run(X)
        if self.classes_ is not None and len(outs) >= 2:
            proba = np.asarray(outs[1], dtype=np.float64)
            best = proba >= proba.max(axis=1, keepdims=True) - self.TIE
            return np.asarray(self.classes_)[best.argmax(axis=1)], proba
        out = np.asarray(outs[0])
        return (out.ravel() if out.ndim > 1 and out.shape[1] == 1 else out), None

    def predict_proba(self, X: Any) -> np.ndarray:
        outs = self._run(X)
        if len(outs) < 2:
            raise InvalidInput("this ONNX model gives no probabilities")
        return np.asarray(outs[1], dtype=np.float64)
