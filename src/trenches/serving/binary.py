"""The binary data extension of the Open Inference Protocol (V2) over HTTP, which
Triton's clients (``tritonclient.http``) use by default.

A request whose ``Inference-Header-Content-Length`` header says N holds N bytes of
JSON, then the raw bytes of the inputs whose ``parameters`` say
``"binary_data_size": K``, in the order of the inputs: numbers little-endian, BOOL a
byte each, BYTES each element as its length (4 bytes, little-endian) and its bytes.
The answer comes back the same way when asked (``"binary_data_output": true`` in the
request's ``parameters``, or ``"binary_data": true`` in a requested output's), with the
header giving its JSON's length; otherwise as JSON. A request that names ``outputs``
gets those only. Framing that does not add up (a size past the end, bytes left over,
a size that is not a whole number of elements) is a 400 naming the input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from trenches.serving import protocols
from trenches.serving.payloads import PayloadError, loads, shown

if TYPE_CHECKING:
    from trenches.serving.model import Answer, Served
    from trenches.serving.payloads import Rows

#: The request (and response) header that gives the length of the JSON part.
HEADER = "Inference-Header-Content-Length"

#: NumPy's type of each numeric V2 datatype, little-endian.
DTYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}

OCTETS = "application/octet-stream"


@dataclass
class Reply:
    """An answer's bytes, their media type and the headers that go with them."""

    content: bytes
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Wire:
    """One V2 request's framing for the version ``served``: once :meth:`load` has read
    the body, which outputs go back and which of them in binary."""

    served: Served
    wanted: list[str] | None = None
    binary: set[str] = field(default_factory=set)

    @cached_property
    def produced(self) -> list[str]:
        """The outputs the version gives (looked up only for a request that names
        outputs or asks for binary ones: most requests do neither)."""
        return [o["name"] for o in protocols.v2_metadata(self.served)["outputs"]]

    def load(self, raw: bytes, header: str | None) -> Any:
        """The request's JSON, each binary input's values put in its ``data``."""
        if header is None:
            body = loads(raw)
        else:
            n = _length(header, len(raw))
            body = loads(raw[:n])
            if isinstance(body, dict) and isinstance(body.get("inputs"), list):
                body["inputs"] = _inlined(body["inputs"], memoryview(raw)[n:])
        self._outputs(body)
        return body

    def _outputs(self, body: Any) -> None:
        """Which outputs the request asks for, and which in binary."""
        if not isinstance(body, dict):
            return  # the protocol's parser says what is wrong with it
        parameters = body.get("parameters")
        every = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
        outputs = body.get("outputs")
        if outputs is None:
            self.binary = set(self.produced) if every else set()
            return
        if not isinstance(outputs, list):
            raise PayloadError(422, "outputs must be a list of {name, parameters}", "outputs")
        self.wanted = []
        for i, output in enumerate(outputs):
            name = output.get("name") if isinstance(output, dict) else None
            if name not in self.produced:
                raise PayloadError(
                    422,
                    f"outputs[{i}] names {shown(name)}; this model gives "
                    f"{', '.join(self.produced)}",
                    f"outputs[{i}].name",
                )
            if name in self.wanted:
                raise PayloadError(422, f"outputs[{i}] names {name} again", f"outputs[{i}].name")
            self.wanted.append(name)
            own = output.get("parameters")
            if every or (isinstance(own, dict) and own.get("binary_data") is True):
                self.binary.add(name)

    def render(self, served: Served, rows: Rows, answer: Answer, rid: str) -> Reply:
        """The answer: JSON, or its JSON then the binary outputs' bytes."""
        response = protocols.v2_response(served, rows, answer, rid)
        if self.wanted is not None:
            by_name = {o["name"]: o for o in response["outputs"]}
            response["outputs"] = [by_name[name] for name in self.wanted]
        chunks = []
        for output in response["outputs"]:
            if output["name"] not in self.binary:
                continue
            data = _encoded(output.pop("data"), output["datatype"])
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(data)}
            chunks.append(data)
        head = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
        if not chunks:
            return Reply(head)
        return Reply(head + b"".join(chunks), OCTETS, {HEADER: str(len(head))})


def _length(header: str, size: int) -> int:
    if not (header.isascii() and header.isdigit()) or int(header) > size:
        raise PayloadError(
            400,
            f"{HEADER} is {shown(header)}; it must be the length in bytes of the body's "
            f"JSON part, at most the body's {size} bytes",
        )
    return int(header)


def _inlined(inputs: list[Any], binary: memoryview) -> list[Any]:
    """``inputs`` with each binary one's values read from ``binary`` into its ``data``."""
    offset = 0
    out = []
    for i, tensor in enumerate(inputs):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            out.append(tensor)
            continue
        where = f"inputs[{i}]"
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise PayloadError(
                400, f"{where}.parameters.binary_data_size must be a size in bytes", where
            )
        if offset + size > len(binary):
            raise PayloadError(
                400,
                f"{where} says binary_data_size {size}; {len(binary) - offset} bytes are "
                "left after the JSON and the inputs before it",
                where,
            )
        data = _decoded(binary[offset : offset + size], tensor.get("datatype"), where)
        out.append({**tensor, "data": data})
        offset += size
    if offset != len(binary):
        raise PayloadError(
            400, f"{len(binary) - offset} bytes follow the last binary input's", "inputs"
        )
    return out


def _decoded(raw: memoryview, datatype: Any, where: str) -> list[Any]:
    if datatype == "BYTES":
        values: list[Any] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise PayloadError(400, f"{where}: a BYTES element's length is cut short", where)
            (n,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + n > len(raw):
                raise PayloadError(400, f"{where}: a BYTES element runs past its data", where)
            try:
                values.append(bytes(raw[offset : offset + n]).decode())
            except UnicodeDecodeError:
                raise PayloadError(400, f"{where}: a BYTES element is not UTF-8", where) from None
            offset += n
        return values
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise PayloadError(
            422,
            f"{where}.datatype is {shown(datatype)}; binary data needs one of "
            f"{', '.join(DTYPES)} or BYTES",
            f"{where}.datatype",
        )
    itemsize = np.dtype(dtype).itemsize
    if len(raw) % itemsize:
        raise PayloadError(400, f"{where}: {len(raw)} bytes are not whole {datatype} values", where)
    numbers: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return numbers


def _encoded(data: Any, datatype: str) -> bytes:
    """An output's values as the extension's bytes."""
    if datatype == "BYTES":
        parts = []
        for value in data:
            raw = str(value).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.asarray(data, dtype=DTYPES[datatype]).tobytes()
