"""A slice of input rows, predicted: the model's inputs taken from the slice's columns
(each converted to the type the version's signature gives it, a value that does not
convert named by file, row and column) and what the model says of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches.errors import InvalidInput, TrenchesError
from trenches.patterns.inputs import CoercedColumn, coerce, label_to_text

if TYPE_CHECKING:
    import pandas as pd

    from trenches.models.versions import ModelVersion
    from trenches.scoring.inputs import Slice


@dataclass(frozen=True)
class Predicted:
    """What the model said of a slice's rows: each one's label (a class, or a
    regression's value) and, for a classifier with probabilities, its probability of
    each class (rows x classes)."""

    labels: np.ndarray
    scores: np.ndarray | None


def predicted(model: Any, version: ModelVersion, table: Any, part: Slice) -> Predicted:
    """``model``'s (``version``'s) predictions on the rows of ``part`` read as
    ``table``. A model that fails on them is an error naming the file and rows."""
    frame = inputs_frame(version, table, part)
    classes = version.signature.classes
    try:
        scores = None
        if hasattr(model, "predict_with_proba"):  # ONNX Runtime's: one run for both
            labels, scores = model.predict_with_proba(frame)
        else:
            labels = model.predict(frame)
            if classes is not None and hasattr(model, "predict_proba"):
                scores = model.predict_proba(frame)
    except TrenchesError:
        raise
    except Exception as e:  # the model's own complaint about these rows
        what = " ".join(f"{type(e).__name__}: {e}".split())[:500]
        message = f"{part.where}: the model cannot predict them: {what}"
        raise InvalidInput(message, file=part.path) from None
    if classes is None:
        return Predicted(np.asarray(labels, dtype=np.float64).ravel(), None)
    return Predicted(
        np.asarray(labels), None if scores is None else np.asarray(scores, dtype=np.float64)
    )


def inputs_frame(version: ModelVersion, table: Any, part: Slice) -> pd.DataFrame:
    """The columns ``version`` takes, in its order, from the slice ``part`` read as the
    Arrow ``table``: as a dataset's reads give them to a model (numbers float64 with
    NaN, integers and booleans nullable where one is missing, strings as objects)."""
    import pandas as pd

    out: dict[str, Any] = {}
    for name, typ in version.signature.inputs:
        column = _parsed(table[name], typ) or coerce(
            table[name].to_pandas(),
            typ,
            file=part.path,
            offset=part.first_row - 1,
            field=name,
            text_file=part.format == "csv",
        )
        if typ in ("integer", "boolean") and column.missing.any():
            array = pd.arrays.IntegerArray if typ == "integer" else pd.arrays.BooleanArray
            out[name] = array(column.values, column.missing)
        else:
            out[name] = column.values
    return pd.DataFrame(out, copy=False)


def _parsed(column: Any, typ: str) -> CoercedColumn | None:
    """A text column (a CSV file's) of numbers or integers parsed by Arrow, ten times
    quicker than value by value (its parser rounds correctly, as Python's does); None
    when a value is not plainly one (a word for missing, spaces, a mistake): those go
    value by value, and a mistake is named."""
    import pyarrow as pa

    kind = {"number": pa.float64(), "integer": pa.int64()}.get(typ)
    if kind is None or not pa.types.is_string(column.type):
        return None
    try:
        parsed = column.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    missing = parsed.is_null().to_numpy(zero_copy_only=False)
    values = parsed.fill_null(0).to_numpy(zero_copy_only=False)
    if typ == "number":
        values = np.where(missing, np.nan, values)
    return CoercedColumn(np.asarray(values), np.asarray(missing, dtype=bool))


def prediction_names(version: ModelVersion) -> list[str]:
    """The columns a version's predictions take in the output: ``prediction`` and, for
    a classifier, ``p_<class>`` for each class."""
    classes = version.signature.classes
    if classes is None:
        return ["prediction"]
    return ["prediction", *(f"p_{c}" for c in _class_texts(classes))]


def prediction_columns(version: ModelVersion, found: Predicted) -> dict[str, Any]:
    """``found`` as Arrow arrays by output column name: the class (of the classes'
    own type) or the value, then the class probabilities."""
    import pyarrow as pa

    classes = version.signature.classes
    if classes is None:
        return {"prediction": pa.array(found.labels, pa.float64())}
    kind = pa.array(list(classes)).type
    out = {"prediction": pa.array(found.labels.tolist(), kind)}
    if found.scores is not None:
        for j, text in enumerate(_class_texts(classes)):
            out[f"p_{text}"] = pa.array(found.scores[:, j], pa.float64())
    return out


def _class_texts(classes: tuple[Any, ...]) -> list[str]:
    """Each class as its text, as the store writes labels of its type."""
    values = np.asarray(classes)
    kind = {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}.get(
        values.dtype.kind, "string"
    )
    return label_to_text(values, kind)
