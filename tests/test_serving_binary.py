"""The V2 binary data extension (trenches.serving.binary): Triton's own HTTP client,
unmodified and with its defaults (binary inputs, binary outputs), gets what the model
predicts in process, from a real server on loopback; framing that does not add up is a
400 naming the input, and the server goes on."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient

from test_serving import LiveServer, project, settings  # noqa: F401 (a fixture)

pytestmark = pytest.mark.sqlite_only


def _columns(X: Any, *, binary: bool = True) -> list[Any]:
    """One FP64 tensor per column of ``X``, its values in binary or in JSON."""
    inputs = []
    for column in X.columns:
        tensor = httpclient.InferInput(column, [len(X)], "FP64")
        tensor.set_data_from_numpy(X[column].to_numpy(dtype=np.float64), binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_tritonclient_with_its_defaults_gets_the_model_s_predictions(
    project: dict[str, Any],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    X = project["X"].iloc[:50]
    model = project["native"]["clf@1"]
    with LiveServer(settings(project, tmp_path)) as live:
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{live.port}")
        assert client.is_server_live() and client.is_model_ready("clf")
        result = client.infer("clf", _columns(X))  # no outputs named: every one, in binary
        response = result.get_response()  # the JSON part: the values came after it
        assert response["model_version"] == "1"
        assert all(o["parameters"]["binary_data_size"] > 0 for o in response["outputs"])
        assert all("data" not in o for o in response["outputs"])
        labels = [v.decode() for v in result.as_numpy("label")]
        assert labels == list(model.predict(X))
        scores = result.as_numpy("probabilities")
        assert scores.shape == (len(X), 2)
        assert np.abs(scores - model.predict_proba(X)).max() < 1e-6

        # One FP32 matrix of every column, and only the labels asked for.
        matrix = httpclient.InferInput("input-0", list(X.shape), "FP32")
        matrix.set_data_from_numpy(X.to_numpy(dtype=np.float32))
        result = client.infer("clf", [matrix], outputs=[httpclient.InferRequestedOutput("label")])
        assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
        assert [v.decode() for v in result.as_numpy("label")] == list(
            model.predict(X.astype(np.float32).astype(np.float64))
        )
        client.close()


def test_a_regressor_answers_tritonclient_in_binary_and_json(
    project: dict[str, Any],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    X = project["X"].drop(columns="worst_area").iloc[:30]
    with LiveServer(settings(project, tmp_path, ref="reg@1")) as live:
        client = httpclient.InferenceServerClient(url=f"127.0.0.1:{live.port}")
        answers = []
        for binary in (True, False):
            inputs = _columns(X, binary=binary)
            wanted = [httpclient.InferRequestedOutput("predictions", binary_data=binary)]
            answers.append(client.infer("reg", inputs, outputs=wanted).as_numpy("predictions"))
        client.close()
    assert np.array_equal(answers[0], answers[1])
    assert answers[0].shape == (len(X),)


def _framed(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    return head + b"".join(chunks), {"Inference-Header-Content-Length": str(len(head))}


def _binary_inputs(X: Any) -> tuple[dict[str, Any], list[bytes]]:
    tensors, chunks = [], []
    for column in X.columns:
        raw = X[column].to_numpy(dtype="<f8").tobytes()
        tensors.append(
            {
                "name": column,
                "shape": [len(X)],
                "datatype": "FP64",
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        chunks.append(raw)
    return {"inputs": tensors}, chunks


def test_framing_that_does_not_add_up_is_a_400_naming_the_input(
    project: dict[str, Any],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    X = project["X"].iloc[:5]
    header, chunks = _binary_inputs(X)
    url = "/v2/models/clf/infer"
    with LiveServer(settings(project, tmp_path)) as live, httpx.Client(base_url=live.url) as c:
        body, headers = _framed(header, *chunks)
        cases = [
            ({"Inference-Header-Content-Length": "x"}, body, "Inference-Header-Content-Length"),
            ({"Inference-Header-Content-Length": str(len(body) + 1)}, body, "at most"),
            (headers, body[:-8], "inputs[29] says binary_data_size 40; 32 bytes are left"),
            (headers, body + b"\0", "1 bytes follow the last binary input"),
        ]
        short = {**header, "inputs": [dict(t) for t in header["inputs"]]}
        short["inputs"][0]["parameters"] = {"binary_data_size": 39}
        body2, headers2 = _framed(short, chunks[0][:39], *chunks[1:])
        cases.append((headers2, body2, "inputs[0]: 39 bytes are not whole FP64 values"))
        for sent_headers, sent, says in cases:
            r = c.post(url, content=sent, headers=sent_headers)
            assert r.status_code == 400, (says, r.text)
            assert says in r.json()["error"], r.json()
        unknown = {**header, "outputs": [{"name": "scores"}]}
        body3, headers3 = _framed(unknown, *chunks)
        r = c.post(url, content=body3, headers=headers3)
        assert r.status_code == 422 and "label, probabilities" in r.json()["error"]
        twice = {**header, "outputs": [{"name": "label"}, {"name": "label"}]}
        body4, headers4 = _framed(twice, *chunks)
        r = c.post(url, content=body4, headers=headers4)
        assert r.status_code == 422 and "outputs[1] names label again" in r.json()["error"]
        # The same connection still answers a good request.
        r = c.post(url, content=body, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"


def test_a_json_request_can_ask_for_a_binary_answer(
    project: dict[str, Any],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    X = project["X"].iloc[:7]
    model = project["native"]["clf@1"]
    tensors = [
        {"name": k, "shape": [len(X)], "datatype": "FP64", "data": X[k].tolist()} for k in X.columns
    ]
    body = {"inputs": tensors, "parameters": {"binary_data_output": True}}
    with LiveServer(settings(project, tmp_path)) as live, httpx.Client(base_url=live.url) as c:
        r = c.post("/v2/models/clf/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers["Inference-Header-Content-Length"])
    head = orjson.loads(r.content[:n])
    rest = memoryview(r.content)[n:]
    label, proba = head["outputs"]
    assert "data" not in label and label["datatype"] == "BYTES"
    size = label["parameters"]["binary_data_size"]
    labels, offset = [], 0
    while offset < size:
        (k,) = struct.unpack_from("<I", rest, offset)
        labels.append(bytes(rest[offset + 4 : offset + 4 + k]).decode())
        offset += 4 + k
    assert labels == list(model.predict(X))
    scores = np.frombuffer(rest[size:], dtype="<f8").reshape(len(X), 2)
    assert proba["parameters"]["binary_data_size"] == scores.nbytes
    assert np.abs(scores - model.predict_proba(X)).max() < 1e-6
