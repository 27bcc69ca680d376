"""Request bodies of the three protocols, parsed into the rows a model takes, and the
answers each protocol expects.

- Open Inference Protocol (KServe V2): ``{"inputs": [{"name", "shape", "datatype",
  "data"}, ...]}``, one 1-D tensor per column, or one 2-D tensor of every column in
  the signature's order;
- MLflow scoring: ``dataframe_split``, ``dataframe_records``, ``instances``,
  ``inputs``;
- ``POST /predict``: a JSON list of records (or one record).

A malformed body, a missing or extra column, or a wrong type is a ``PayloadError``
(a 4xx answer that names the field); nothing of it reaches the model
(:mod:`trenches.serving.payloads` checks the values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from trenches.serving.payloads import (
    MAX_SIZE,
    NUMERIC,
    PayloadError,
    Rows,
    Schema,
    check_columns,
    from_columns,
    from_records,
    from_table,
    is_int,
    shown,
)

if TYPE_CHECKING:
    from trenches.serving.model import Answer, Served

_V2_NUMERIC = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}


# --- the protocols --------------------------------------------------------------------


def mlflow(schema: Schema, body: Any) -> Rows:
    """The MLflow scoring protocol's four input forms."""
    if not isinstance(body, dict):
        raise PayloadError(
            400,
            "expected an object with one of dataframe_split, dataframe_records, "
            "instances or inputs",
        )
    keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in body]
    if len(keys) != 1:
        raise PayloadError(
            400,
            "give exactly one of dataframe_split, dataframe_records, instances or inputs"
            + (f" (got {', '.join(keys)})" if keys else ""),
        )
    key = keys[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise PayloadError(422, "dataframe_split must be an object with columns and data")
        return from_table(
            schema, value.get("columns", list(schema.columns)), value["data"], "dataframe_split"
        )
    if key == "dataframe_records":
        return from_records(schema, value, key)
    # instances / inputs: records, rows in signature order, or {column: [values]}.
    if isinstance(value, dict):
        return from_columns(schema, value, key)
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return from_table(schema, list(schema.columns), value, key)
    return from_records(schema, value, key)


def predict(schema: Schema, body: Any) -> Rows:
    """``POST /predict``: a list of records, or one record."""
    return from_records(schema, body, "body")


def v2(schema: Schema, body: Any) -> Rows:
    """An Open Inference Protocol (V2) inference request."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise PayloadError(400, "expected an object with an inputs list of tensors")
    tensors = body["inputs"]
    client_id = body.get("id")
    if client_id is not None and not isinstance(client_id, str):
        raise PayloadError(422, "id must be a string", field="id")
    for i, t in enumerate(tensors):
        _check_tensor(t, i)
    names = [t["name"] for t in tensors]
    if len(tensors) == 1 and names[0] not in schema.types and len(tensors[0]["shape"]) == 2:
        # One tensor of every column, rows x columns, in the signature's order.
        t = tensors[0]
        n, k = t["shape"]
        if k != len(schema.columns):
            raise PayloadError(
                422,
                f"{t['name']} has {k} columns; the model takes {len(schema.columns)}: "
                f"{', '.join(schema.columns)}",
                field=t["name"],
            )
        flat = _flat(t, n * k)
        rows = [flat[r * k : (r + 1) * k] for r in range(n)]
        _check_datatype(schema, t, list(schema.columns))
        out = from_table(schema, list(schema.columns), rows, t["name"])
        out.client_id = client_id
        return out
    check_columns(schema, names, "inputs")
    n = None
    columns: dict[str, list[Any]] = {}
    for t in tensors:
        shape = t["shape"]
        size = shape[0] if shape else 1
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise PayloadError(
                422, f"{t['name']} must have shape [rows] or [rows, 1]", field=t["name"]
            )
        if n is not None and size != n:
            raise PayloadError(
                422, f"{t['name']} has {size} rows and another input {n}", field=t["name"]
            )
        n = size
        _check_datatype(schema, t, [t["name"]])
        columns[t["name"]] = _flat(t, size)
    out = from_columns(schema, columns, "inputs")
    out.client_id = client_id
    return out


def _check_tensor(t: Any, i: int) -> None:
    """The types of a V2 tensor's name, shape and datatype: before any of them is used."""
    where = f"inputs[{i}]"
    if not isinstance(t, dict) or not {"name", "shape", "datatype", "data"} <= t.keys():
        raise PayloadError(422, f"{where} must have name, shape, datatype and data", field=where)
    if not isinstance(t["name"], str) or not t["name"]:
        raise PayloadError(
            422, f"{where}.name must be a string, not {shown(t['name'])}", field=f"{where}.name"
        )
    if not isinstance(t["datatype"], str):
        raise PayloadError(
            422,
            f"{where}.datatype must be a string such as FP64 or BYTES, not {shown(t['datatype'])}",
            field=f"{where}.datatype",
        )
    shape = t["shape"]
    if not isinstance(shape, list):
        raise PayloadError(
            422, f"{where}.shape must be a list of sizes, not {shown(shape)}", f"{where}.shape"
        )
    for j, size in enumerate(shape):
        if not is_int(size, 0, MAX_SIZE):
            raise PayloadError(
                422,
                f"{where}.shape[{j}] is {shown(size)}; a size is a whole number from 0 to "
                f"{MAX_SIZE}",
                f"{where}.shape",
            )


def _flat(tensor: dict[str, Any], size: int) -> list[Any]:
    data = tensor["data"]
    if not isinstance(data, list):
        raise PayloadError(422, f"{tensor['name']}.data must be a list", field=tensor["name"])
    if data and all(isinstance(row, list) for row in data):  # nested as its shape says
        data = [v for row in data for v in row]
    if len(data) != size:
        raise PayloadError(
            422,
            f"{tensor['name']} has {len(data)} values; its shape says {size}",
            field=tensor["name"],
        )
    return data


def _check_datatype(schema: Schema, tensor: dict[str, Any], columns: list[str]) -> None:
    datatype = tensor["datatype"]
    numeric = all(schema.types[c] in NUMERIC for c in columns)
    if datatype == "BYTES" and not numeric:
        return
    if datatype in _V2_NUMERIC and numeric:
        return
    want = "a numeric datatype (FP64, FP32, INT64, BOOL, ...)" if numeric else "BYTES"
    raise PayloadError(
        422,
        f"{tensor['name']} has datatype {shown(datatype)}; it needs {want}",
        field=tensor["name"],
    )


# --- answers --------------------------------------------------------------------------


def mlflow_answer(served: Served, rows: Rows, answer: Answer, rid: str) -> bytes:
    """MLflow's ``{"predictions": [...]}``: the labels, or a regressor's values."""
    predictions = answer.labels if answer.labels is not None else answer.values
    return orjson.dumps(
        {"predictions": predictions, "request_id": rid, "model_version": served.model.ref}
    )


def predict_answer(served: Served, rows: Rows, answer: Answer, rid: str) -> bytes:
    """``/predict``'s answer: a label and its scores by class per row, or a value."""
    if answer.labels is not None:
        classes = served.model.classes or []
        scores = answer.scores
        predictions: list[Any] = [
            {
                "label": label,
                "scores": None
                if scores is None
                else {str(c): float(p) for c, p in zip(classes, scores[i], strict=True)},
            }
            for i, label in enumerate(answer.labels)
        ]
    else:
        predictions = [{"value": v} for v in answer.values or []]
    return orjson.dumps(
        {"request_id": rid, "model_version": served.model.ref, "predictions": predictions}
    )


def v2_answer(served: Served, rows: Rows, answer: Answer, rid: str) -> bytes:
    """An Open Inference Protocol inference response, as JSON."""
    return orjson.dumps(v2_response(served, rows, answer, rid), option=orjson.OPT_SERIALIZE_NUMPY)


def v2_response(served: Served, rows: Rows, answer: Answer, rid: str) -> dict[str, Any]:
    """An Open Inference Protocol inference response: the labels and the probabilities
    by class, or a regressor's predictions, as tensors."""
    n = rows.n
    outputs: list[dict[str, Any]] = []
    if answer.labels is not None:
        outputs.append(
            {
                "name": "label",
                "shape": [n],
                "datatype": v2_datatype(answer.labels),
                "data": answer.labels,
            }
        )
        if answer.scores is not None:
            outputs.append(
                {
                    "name": "probabilities",
                    "shape": [n, int(answer.scores.shape[1])],
                    "datatype": "FP64",
                    "data": answer.scores.ravel(),
                    "parameters": {"classes": [str(c) for c in served.model.classes or []]},
                }
            )
    else:
        outputs.append(
            {"name": "predictions", "shape": [n], "datatype": "FP64", "data": answer.values}
        )
    return {
        "model_name": served.name,
        "model_version": served.version,
        "id": rows.client_id or rid,
        "parameters": {"request_id": rid, "model_version": served.model.ref},
        "outputs": outputs,
    }


def v2_datatype(values: list[Any]) -> str:
    """The V2 datatype of a list of labels."""
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


_V2_TYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL"}


def v2_metadata(served: Served) -> dict[str, Any]:
    """The Open Inference Protocol's model metadata of the version served."""
    m = served.model
    return {
        "name": served.name,
        "versions": [served.version],
        "platform": "onnxruntime" if m.format == "onnx" else "scikit-learn",
        "inputs": [
            {"name": c, "datatype": _V2_TYPES.get(m.types[c], "BYTES"), "shape": [-1]}
            for c in m.columns
        ],
        "outputs": (
            [{"name": "label", "datatype": "BYTES", "shape": [-1]}]
            + (
                [{"name": "probabilities", "datatype": "FP64", "shape": [-1, len(m.classes)]}]
                if m.has_scores and m.classes
                else []
            )
            if m.classes is not None
            else [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
        ),
        "parameters": {"model_version": m.ref, "classes": m.classes},
    }
