"""Models behind HTTP: a version that predicts by calling a service, in any language.

The version keeps where the service is and how to speak to it (an :class:`Endpoint`,
stored as the version's ``endpoint`` file), never the service itself; it is evaluated,
backfilled, gated, compared and served like any other, each prediction asked of the
service once and then read from the store. Three ways of asking (``protocol``):

- ``v2``: the Open Inference (KServe V2) protocol, a tensor a column, to the model's
  ``.../v2/models/NAME/infer`` URL;
- ``mlflow``: ``{"dataframe_split": ...}``, as to ``mlflow models serve``'s (and
  ``trenches serve``'s) ``/invocations``;
- ``json``: the rows as a list of records, the answers a list (or ``{"predictions":
  [...]}``): what a plumber (R) or Flask service is easily made to take.

An answer per row is a value (regression), a class label, a list of class
probabilities in the version's class order, or an object with ``label`` and
``scores`` / ``probabilities``. Anything else is refused, naming the service and the
rows: nothing is stored from an answer that does not make sense.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches.errors import InvalidInput, TrenchesError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx
    import pandas as pd

    from trenches.models.formats import Signature
    from trenches.patterns.datasets import Dataset

PROTOCOLS = ("v2", "mlflow", "json")

#: The V2 datatype of each kind of input column.
_V2_TYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL"}


class EndpointFailed(TrenchesError):
    """The service behind an endpoint version did not answer, or answered something
    that is not predictions for the rows asked: names the URL and the rows."""

    exit_code = 1


@dataclass(frozen=True)
class Endpoint:
    """Where a model's service is and how to ask it."""

    url: str
    protocol: str
    #: Seconds to wait for one call's answer.
    timeout: float = 30.0
    #: Calls made again after a failure to connect, a timeout, a 429 or a 5xx.
    retries: int = 3
    #: Rows sent in one call.
    batch_rows: int = 1000
    #: The environment variable holding a bearer token for the service (the token is
    #: never stored).
    token_env: str | None = None
    #: The service's language (``r``, ``python``, ...), for packaging it with the
    #: files of its source kept with the version.
    language: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise InvalidInput(
                f"protocol {self.protocol!r} must be one of {', '.join(PROTOCOLS)}",
                field="protocol",
            )
        if not self.url.startswith(("http://", "https://")):
            raise InvalidInput(f"url {self.url!r} must start with http:// or https://")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise InvalidInput(f"timeout {self.timeout} must be a positive number of seconds")
        if self.retries < 0 or self.batch_rows < 1:
            raise InvalidInput("retries must be 0 or more, and batch_rows 1 or more")


class EndpointModel:
    """An endpoint version as a model: ``predict``, ``predict_proba`` and both from
    one call each batch (``predict_with_proba``)."""

    #: Served requests wait on the network: a server answers them off its event loop.
    remote = True

    def __init__(self, endpoint: Endpoint, signature: Signature) -> None:
        self.endpoint = endpoint
        self.signature = signature
        self.classes_ = None if signature.classes is None else np.asarray(signature.classes)
        self._client: httpx.Client | None = None

    # --- the model's face -----------------------------------------------------------

    def predict_with_proba(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (values) and class probabilities (None when the service gives
        none) of every row, asked ``batch_rows`` at a time."""
        frame = self._columns(X)
        labels: list[np.ndarray] = []
        scores: list[np.ndarray | None] = []
        size = self.endpoint.batch_rows
        for start in range(0, len(frame), size):
            part = frame.iloc[start : start + size]
            got_labels, got_scores = self._ask(part, start)
            labels.append(got_labels)
            scores.append(got_scores)
        if not labels:
            return np.empty(0, dtype=object), None
        proba = None if any(s is None for s in scores) else np.vstack(scores)  # type: ignore[arg-type]
        return np.concatenate(labels), proba

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_with_proba(X)[0]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        proba = self.predict_with_proba(X)[1]
        if proba is None:
            raise EndpointFailed(f"{self.endpoint.url} answers labels only, no probabilities")
        return proba

    def _columns(self, X: Any) -> pd.DataFrame:
        import pandas as pd

        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X), columns=self.signature.columns)
        missing = [c for c in self.signature.columns if c not in X.columns]
        if missing:
            raise InvalidInput(f"the input lacks the column {missing[0]!r}", field=missing[0])
        return X[self.signature.columns]

    # --- one call ---------------------------------------------------------------------

    def _ask(self, rows: pd.DataFrame, first: int) -> tuple[np.ndarray, np.ndarray | None]:
        if rows.index.name == "pattern_id":  # patterns of a dataset: named by their ids
            span = f"patterns {rows.index[0]} to {rows.index[-1]}"
        else:
            span = f"rows {first} to {first + len(rows) - 1}"
        where = f"{self.endpoint.url} ({span})"
        body = _body(self.endpoint.protocol, rows, self.signature)
        answer = self._post(body, where)
        items = _items(self.endpoint.protocol, answer, len(rows), where)
        return _answers(items, self.classes_, where)

    def _post(self, body: Any, where: str) -> Any:
        """The service's answer to ``body``, asked again (``retries`` times, waiting
        longer each time) while it cannot be reached, times out, or answers 429 or
        5xx."""
        import orjson

        content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        tries = self.endpoint.retries + 1
        for attempt in range(tries):
            answered, why = self._once(content, where)
            if why is None:
                return answered
            if attempt == tries - 1:
                raise EndpointFailed(f"{where}: {why} ({tries} tries)")
            time.sleep(min(0.2 * 2**attempt, 5.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, content: bytes, where: str) -> tuple[Any, str | None]:
        """One call: the answer and None, or None and why it may be worth another."""
        import httpx
        import orjson

        try:
            r = self._http(where).post(self.endpoint.url, content=content)
        except httpx.TimeoutException:
            return None, f"no answer within {self.endpoint.timeout:g} s"
        except httpx.TransportError as e:
            return None, f"cannot reach it ({type(e).__name__}: {e})"
        if r.status_code == 429 or r.status_code >= 500:
            return None, f"answered {r.status_code}: {r.text[:300]}"
        if r.status_code >= 400:
            raise EndpointFailed(f"{where}: answered {r.status_code}: {r.text[:300]}")
        try:
            return orjson.loads(r.content), None
        except orjson.JSONDecodeError:
            raise EndpointFailed(f"{where}: the answer is not JSON: {r.text[:200]!r}") from None

    def _http(self, where: str) -> httpx.Client:
        """The client its calls share (one connection kept open), with its token."""
        import httpx

        if self._client is None:
            headers = {"content-type": "application/json"}
            if self.endpoint.token_env:
                token = os.environ.get(self.endpoint.token_env)
                if not token:
                    raise EndpointFailed(
                        f"{where}: its token is read from ${self.endpoint.token_env}, "
                        "which is not set"
                    )
                headers["authorization"] = f"Bearer {token}"
            self._client = httpx.Client(timeout=self.endpoint.timeout, headers=headers)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def signature_of(
    dataset: Dataset, columns: Sequence[str] | None, classes: Sequence[Any] | None
) -> tuple[Signature, pd.DataFrame]:
    """What an endpoint version of ``dataset`` takes (``columns``, default all its
    inputs) and gives (``classes`` in the order of its scores, default the dataset's
    labels, sorted), and a few of its patterns to try the service on."""
    from trenches.models.formats import Signature
    from trenches.patterns.frames import read_patterns

    if dataset.schema is None:
        raise InvalidInput(f"dataset {dataset.name!r} has no patterns yet")
    types = {c.name: c.type for c in dataset.schema.columns}
    wanted = list(columns) if columns else list(types)
    unknown = [c for c in wanted if c not in types]
    if unknown:
        raise InvalidInput(
            f"dataset {dataset.name!r} has no input column {unknown[0]!r}", field="columns"
        )
    frame, _ = read_patterns(dataset, full_info=False)
    if dataset.task == "regression":
        if classes:
            raise InvalidInput(f"dataset {dataset.name!r} is a regression: it has no classes")
        found = None
    else:
        labels = frame[dataset.label_column].dropna().unique().tolist()
        if classes:  # as the dataset's labels where they name one ("1" is the label 1)
            held = {_key(v): v for v in labels}
            found = tuple(held.get(_key(c), c) for c in classes)
        else:
            found = tuple(sorted(labels, key=lambda v: (str(type(v)), v)))
    signature = Signature(tuple((c, types[c]) for c in wanted), found)
    return signature, frame[wanted].iloc[:SAMPLE_ROWS]


#: Patterns the service is asked about when an endpoint is added: a service that does
#: not answer them well is not registered.
SAMPLE_ROWS = 20


# --- the wire ---------------------------------------------------------------------


def _plain(column: pd.Series) -> list[Any]:
    """A column's values as JSON values: missing ones null."""
    values = column.astype(object).where(column.notna(), None)
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _body(protocol: str, rows: pd.DataFrame, signature: Signature) -> Any:
    columns = {name: _plain(rows[name]) for name in signature.columns}
    if protocol == "json":
        names = list(columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    if protocol == "mlflow":
        data = [list(row) for row in zip(*columns.values(), strict=True)]
        return {"dataframe_split": {"columns": list(columns), "data": data}}
    types = dict(signature.inputs)
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": _V2_TYPES.get(types[name], "BYTES"),
                "data": values,
            }
            for name, values in columns.items()
        ]
    }


def _items(protocol: str, answer: Any, n: int, where: str) -> list[Any]:
    """The answer of each of the ``n`` rows, from a service's whole answer."""
    if protocol == "v2":
        return _v2_items(answer, n, where)
    items = answer.get("predictions") if isinstance(answer, dict) else answer
    if not isinstance(items, list):
        raise EndpointFailed(
            f"{where}: the answer must be a list of predictions (or an object with "
            f"'predictions'), not {_glimpse(answer)}"
        )
    if len(items) != n:
        raise EndpointFailed(f"{where}: {len(items)} predictions for {n} rows")
    return items


def _v2_items(answer: Any, n: int, where: str) -> list[Any]:
    """A V2 answer's outputs as one answer a row: probabilities (an output of shape
    ``[n, k]``) and labels or values (``[n]`` or ``[n, 1]``)."""
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    if not isinstance(outputs, list) or not outputs:
        raise EndpointFailed(f"{where}: a V2 answer needs 'outputs', not {_glimpse(answer)}")
    labels = scores = None
    for out in outputs:
        shape, data = out.get("shape"), out.get("data")
        if not isinstance(shape, list) or not isinstance(data, list) or not shape:
            raise EndpointFailed(f"{where}: output {out.get('name')!r} lacks shape or data")
        if shape[0] != n or math.prod(shape) != len(data):
            raise EndpointFailed(
                f"{where}: output {out.get('name')!r} has shape {shape} and {len(data)} "
                f"values for {n} rows"
            )
        width = math.prod(shape[1:])
        if width == 1 and labels is None:
            labels = data
        elif width > 1 and scores is None:
            scores = [data[i * width : (i + 1) * width] for i in range(n)]
    if labels is None and scores is None:  # pragma: no cover - shapes cover every case
        raise EndpointFailed(f"{where}: no output of the V2 answer has a value a row")
    if scores is None:
        return list(labels)  # type: ignore[arg-type]
    if labels is None:
        return scores
    return [{"label": a, "scores": s} for a, s in zip(labels, scores, strict=True)]


def _answers(
    items: list[Any], classes: np.ndarray | None, where: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (or values) and probabilities from one answer a row."""
    if classes is None:
        values = [_number(v, i, where) for i, v in enumerate(items)]
        return np.asarray(values, dtype=np.float64), None
    known = {_key(c): c for c in classes.tolist()}
    labels: list[Any] = []
    scores: list[list[float]] = []
    for i, item in enumerate(items):
        label, row = item, None
        if isinstance(item, dict):
            label = item.get("label")
            row = item.get("scores", item.get("probabilities"))
            if isinstance(row, dict):
                row = [row.get(str(c), row.get(c)) for c in classes.tolist()]
        elif isinstance(item, list):
            label, row = None, item
        if row is not None:
            row = _probabilities(row, len(classes), i, where)
            scores.append(row)
        if label is None:
            if row is None:
                raise EndpointFailed(f"{where}: row {i}'s answer has no label or scores")
            labels.append(classes[int(np.argmax(row))])
        elif _key(label) in known:
            labels.append(known[_key(label)])
        else:
            shown = ", ".join(map(str, classes.tolist()))
            raise EndpointFailed(
                f"{where}: row {i}'s label {label!r} is not one of the classes ({shown})"
            )
    if scores and len(scores) != len(items):
        raise EndpointFailed(f"{where}: some rows have scores and some do not")
    out = np.empty(len(labels), dtype=object)
    out[:] = labels
    if classes.dtype.kind in "iufb":
        out = out.astype(classes.dtype)
    return out, (np.asarray(scores, dtype=np.float64) if scores else None)


def _key(value: Any) -> str:
    """A label as text, for matching: ``1``, ``1.0`` and ``"1"`` are one class."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any, i: int, where: str) -> float:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EndpointFailed(f"{where}: row {i}'s answer {_glimpse(value)} is not a number")
    return float(value)


def _probabilities(row: Any, k: int, i: int, where: str) -> list[float]:
    if not isinstance(row, list) or len(row) != k:
        raise EndpointFailed(
            f"{where}: row {i}'s scores must be {k} probabilities, one a class, not {_glimpse(row)}"
        )
    values = [_number(p, i, where) for p in row]
    if any(p < 0 or p > 1 for p in values):
        raise EndpointFailed(f"{where}: row {i}'s scores {values} are not probabilities")
    return values


def _glimpse(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
