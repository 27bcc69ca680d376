"""The OpenAPI document of the server: FastAPI's, with each protocol's request body for
the version being served (its columns with their JSON types, its name in the V2 paths,
its labels for ``/feedback``), made again when the alias moves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trenches.serving.payloads import INT64, MAX_SIZE, Schema

if TYPE_CHECKING:
    from fastapi import FastAPI

    from trenches.serving.model import Served


def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` for the version it serves now (``app.openapi``);
    kept until the alias moves."""
    from fastapi.openapi.utils import get_openapi

    served: Served = app.state.server.served
    cached = app.openapi_schema
    if cached is not None and cached.get("x-model-version") == served.model.ref:
        return cached
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    doc["x-model-version"] = served.model.ref
    bodies = openapi_bodies(served.schema, served.model.classes)
    for path, item in doc["paths"].items():
        for operation in item.values():
            if path in bodies and "requestBody" not in operation:
                operation["requestBody"] = bodies[path]
            for p in operation.get("parameters", []):
                if p["name"] == "name":
                    p["schema"] = {"type": "string", "enum": [served.name]}
                elif p["name"] == "version":
                    p["schema"] = {"type": "string", "enum": [served.version]}
    app.openapi_schema = doc
    return doc


_JSON_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean"}


def _value_schema(kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": [_JSON_TYPES.get(kind, "string"), "null"]}
    if kind == "integer":
        out.update(minimum=INT64[0], maximum=2**63 - 1024)  # what float64 holds below 2^63
    return out


def openapi_bodies(schema: Schema, classes: list[Any] | None) -> dict[str, dict[str, Any]]:
    """The request body of each POST path, as JSON Schema for the OpenAPI document: the
    columns of the version served (``classes``: its labels; None for a regressor)."""
    columns = list(schema.columns)
    value = {c: _value_schema(schema.types[c]) for c in columns}
    record = {
        "type": "object",
        "properties": value,
        "required": columns,
        "additionalProperties": False,
    }
    records = {"type": "array", "items": record, "minItems": 1}
    rows = {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "array",
            "prefixItems": list(value.values()),
            "minItems": len(columns),
            "maxItems": len(columns),
        },
    }
    by_column = {
        "type": "object",
        "properties": {c: {"type": "array", "items": v} for c, v in value.items()},
        "required": columns,
        "additionalProperties": False,
    }
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": columns},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 2},
            "datatype": {"type": "string", "enum": ["FP64", "FP32", "INT64", "BOOL", "BYTES"]},
            "data": {"type": "array"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    split = {
        "type": "object",
        "properties": {"columns": {"type": "array", "items": {"type": "string"}}, "data": rows},
        "required": ["data"],
    }
    mlflow = {
        "oneOf": [
            _one("dataframe_split", split),
            _one("dataframe_records", records),
            _one("instances", {"oneOf": [rows, records]}),
            _one("inputs", by_column),
        ]
    }
    v2 = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
        },
        "required": ["inputs"],
    }
    label: dict[str, Any] = {"enum": classes} if classes is not None else {"type": "number"}
    feedback = {
        "type": "object",
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "row": {"type": "integer", "minimum": 0, "maximum": MAX_SIZE},
            "label": label,
            "rating": {"type": "number"},
            "comment": {"type": "string"},
        },
        "required": ["request_id"],
        "additionalProperties": False,
    }
    return {
        "/predict": _body({"oneOf": [record, records]}),
        "/invocations": _body(mlflow),
        "/v2/models/{name}/infer": _body(v2),
        "/v2/models/{name}/versions/{version}/infer": _body(v2),
        "/feedback": _body(feedback),
    }


def _one(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: value},
        "required": [key],
        "additionalProperties": False,
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}
