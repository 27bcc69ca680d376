"""The model server's application: FastAPI routes for the Open Inference Protocol (V2),
the MLflow scoring protocol and ``/predict``, feedback, health and Prometheus metrics.

The hot path parses the body with orjson, predicts the whole request at once (ONNX
Runtime on a float matrix when the version has an ONNX form), answers, and hands the
request to the request log, whose writer stores it later in batches. The served
version is one reference that a watcher swaps when the alias moves, so a request in
flight finishes on the model it started with.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from trenches import timestamps
from trenches.serving import openapi, protocols
from trenches.serving.feedback import Answered, Feedback, Labels, Recent, lookup
from trenches.serving.metrics import Metrics
from trenches.serving.middleware import BearerToken, JsonErrors
from trenches.serving.model import Answer, ServedModel
from trenches.serving.payloads import PayloadError, Rows, Schema, loads, shown

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.serving.requestlog import LoggedFeedback, RequestLog

log = logging.getLogger("trenches.serve")

JSON = "application/json"
#: Looks in the store for a request feedback is about, with other workers: the log
#: of the one that answered it writes it within a batch interval (a quarter second).
FEEDBACK_TRIES = 9
FEEDBACK_WAIT = 0.25
NO_LOG = PayloadError(
    409, "this server keeps no request log (it was started with --no-log): no feedback"
)
#: Largest request body accepted by default (bytes).
MAX_BODY = 16 * 1024 * 1024


@dataclass
class Settings:
    """How to serve: which version (or alias), from which store, with what limits."""

    ref: str  # name@production (follows the alias) or name@3 (fixed)
    store: str | None = None  # folder, file or URL; None: .trenches here / $TRENCHES_DB_URL
    token: str | None = None  # bearer token; None: no auth
    max_body: int = MAX_BODY
    poll: float = 2.0  # seconds between looks at the alias
    trusted: bool = False
    spool_dir: str | None = None
    log_requests: bool = True
    workers: int = 1  # worker processes serving together (feedback may be another's)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return orjson.dumps(self.__dict__).decode()

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls(**orjson.loads(text))


@dataclass
class Served:
    """The model answering now, with what the hot path needs of it."""

    model: ServedModel
    schema: Schema
    name: str  # the registered model's name
    version: str  # its version number, as text
    labels: Labels  # what feedback on its answers may say

    @classmethod
    def of(cls, model: ServedModel, engine: Engine) -> Served:
        return cls(
            model,
            Schema(tuple(model.columns), dict(model.types)),
            model.version.model,
            str(model.version.version),
            Labels.of(engine, model.version),
        )


class Server:
    """State shared by the routes of one worker process."""

    def __init__(self, settings: Settings) -> None:
        import trenches

        self.settings = settings
        self.store = trenches.open(settings.store, create=False)
        self.ref = settings.ref
        self.follows_alias = not self.ref.split("@", 1)[1].isdigit() if "@" in self.ref else False
        self.served = Served.of(self._load(self.ref), self.store.engine)
        self.metrics = Metrics()
        self.metrics.served(self.served.model.ref)
        spool = Path(settings.spool_dir) if settings.spool_dir else self._default_spool()
        self.requests: RequestLog | None = None
        self.recent = Recent()
        if settings.log_requests:
            from trenches.serving import requestlog

            self._logged = requestlog.LoggedRequest
            self._feedback = requestlog.LoggedFeedback
            self.requests = requestlog.RequestLog(
                self.store.location.db_url, spool, on_lost=self.metrics.log_lost
            )
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _default_spool(self) -> Path:
        if self.store.location.sqlite_path is not None:
            return Path(self.store.location.sqlite_path).parent / "spool"
        return Path.cwd() / ".trenches" / "spool"

    def _load(self, ref: str) -> ServedModel:
        version = self.store.models.get(ref)
        return ServedModel(self.store, version, trusted=self.settings.trusted)

    # --- life -----------------------------------------------------------------------

    def start(self) -> None:
        # Everything loaded so far (modules, the model) lives as long as the server:
        # out of the collector's reach, full collections stay short and so does p99.
        gc.collect()
        gc.freeze()
        if self.requests is not None:
            self.requests.start()
        if self.follows_alias:
            self._watcher = threading.Thread(
                target=self._watch, name="trenches-alias-watch", daemon=True
            )
            self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.requests is not None:
            self.requests.stop()
        self.store.close()

    def _watch(self) -> None:
        """Follow the alias: load the version it moves to, then swap it in."""
        while not self._stop.wait(self.settings.poll):
            try:
                version = self.store.models.get(self.ref)
                if version.id != self.served.model.version_id:
                    started = time.perf_counter()
                    fresh = Served.of(
                        ServedModel(self.store, version, trusted=self.settings.trusted),
                        self.store.engine,
                    )
                    old = self.served.model.ref
                    self.served = fresh  # one reference: requests in flight keep the old one
                    self.metrics.served(fresh.model.ref)
                    log.warning(
                        "%s moved: now serving %s (was %s), loaded in %.2f s",
                        self.ref,
                        fresh.model.ref,
                        old,
                        time.perf_counter() - started,
                    )
            except Exception:  # a database hiccup must not stop the watcher
                log.exception("could not look at %s; serving %s", self.ref, self.served.model.ref)

    # --- the request path ----------------------------------------------------------

    async def body(self, request: Request) -> bytes:
        limit = self.settings.max_body
        length = request.headers.get("content-length")
        if length is not None and length.isascii() and length.isdigit() and int(length) > limit:
            raise PayloadError(413, f"the body is larger than the limit of {limit} bytes")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadError(413, f"the body is larger than the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def answer(self, served: Served, rows: Rows) -> Answer:
        try:
            return served.model.answer(rows.data)
        except PayloadError:
            raise
        except Exception as e:
            raise PayloadError(
                422, f"{served.model.ref} could not predict these rows: {type(e).__name__}: {e}"
            ) from None

    def record(
        self, endpoint: str, served: Served, rows: Rows, answer: Answer, rid: str, start: int
    ) -> int:
        latency_us = (time.perf_counter_ns() - start) // 1000
        if self.requests is not None:
            schema = served.schema
            self.recent.add(rid, Answered(rows.n, served.labels))
            self.requests.put(
                self._logged(
                    request_id=rid,
                    version_id=served.model.version_id,
                    endpoint=endpoint,
                    n=rows.n,
                    inputs=lambda: rows.records(schema),
                    outputs={
                        "labels": answer.labels,
                        "scores": answer.scores,
                        "values": answer.values,
                    },
                    latency_us=latency_us,
                    received_at=timestamps.now_us(),
                )
            )
        if answer.labels is not None:
            self.metrics.predicted(answer.labels)
        return latency_us

    async def answered(self, request_id: str) -> Answered:
        """The request feedback is about: remembered by this worker, else read from the
        store. With other workers, a request not there yet is waited for a moment (the
        log of the worker that answered it writes it within its next batch)."""
        found = self.recent.get(request_id)
        tries = 1 if self.settings.workers == 1 else FEEDBACK_TRIES
        for attempt in range(tries):
            if found is not None:
                return found
            if attempt:
                await asyncio.sleep(FEEDBACK_WAIT)
            try:
                found = await run_in_threadpool(lookup, self.store.engine, request_id)
            except Exception as e:
                log.warning("feedback: cannot look up request %s: %s", request_id, e)
                raise PayloadError(
                    503, f"cannot look up request {request_id} now ({type(e).__name__}); retry"
                ) from None
        if found is not None:
            return found
        raise PayloadError(
            404,
            f"no request {request_id} was answered by this server (or it is not in the "
            "request log yet: retry in a few seconds)",
            "request_id",
        )

    def feedback(self, checked: Feedback) -> LoggedFeedback:
        return self._feedback(
            request_id=checked.request_id,
            row=checked.row,
            label=checked.label,
            rating=checked.rating,
            comment=checked.comment,
            created_at=timestamps.now_us(),
        )


def _read(parse: Any, schema: Schema, body: Any, endpoint: str) -> Rows:
    """``parse(schema, body)``; an exception no check foresaw is still the body's doing
    (parsing is a function of the body alone): a 400, and a traceback in the log."""
    try:
        rows: Rows = parse(schema, body)
    except PayloadError:
        raise
    except Exception as e:
        log.exception("%s: a request body the checks did not foresee", endpoint)
        raise PayloadError(400, f"the body could not be read ({type(e).__name__})") from None
    return rows


def _openapi(app: FastAPI, server: Server) -> dict[str, Any]:
    """The OpenAPI document, with each protocol's request body for the version being
    served (its columns, its name, its labels); made again when the alias moves."""
    from fastapi.openapi.utils import get_openapi

    served = server.served
    cached = app.openapi_schema
    if cached is not None and cached.get("x-model-version") == served.model.ref:
        return cached
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    doc["x-model-version"] = served.model.ref
    bodies = openapi.openapi_bodies(served.schema, served.model.classes)
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


async def _http_error(request: Request, exc: Exception) -> Response:
    """The router's own errors (no such path, a method not allowed) in our JSON shape."""
    status = int(getattr(exc, "status_code", 404))
    return Response(
        orjson.dumps(
            {"error": f"{request.method} {request.url.path}: {getattr(exc, 'detail', '')}"}
        ),
        status_code=status,
        media_type=JSON,
        headers=getattr(exc, "headers", None),
    )


def _error(e: PayloadError, endpoint: str, server: Server) -> Response:
    server.metrics.request(endpoint, e.status)
    return Response(e.body(), status_code=e.status, media_type=JSON)


def create_app(settings: Settings) -> FastAPI:
    """The application for ``settings``; the model is loaded here, before serving."""
    server = Server(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.start()
        try:
            yield
        finally:
            server.stop()

    app = FastAPI(
        title="trenches model server",
        description=f"Serves {settings.ref} from a trenches store.",
        lifespan=lifespan,
    )
    app.state.server = server
    app.openapi = lambda: _openapi(app, server)  # type: ignore[method-assign]
    for status in (404, 405):  # the router's own errors
        app.exception_handler(status)(_http_error)
    app.add_middleware(JsonErrors)
    if settings.token:  # outermost: nothing else runs for a request without it
        app.add_middleware(BearerToken, token=settings.token, counted=server.metrics.request)

    def headers(rid: str, served: Served) -> dict[str, str]:
        return {"x-request-id": rid, "x-model-version": served.model.ref}

    async def predict_route(
        request: Request,
        endpoint: str,
        parse: Any,
        render: Any,
    ) -> Response:
        start = time.perf_counter_ns()
        served = server.served
        try:
            body = loads(await server.body(request))
            rows = _read(parse, served.schema, body, endpoint)
            answer = server.answer(served, rows)
        except PayloadError as e:
            return _error(e, endpoint, server)
        rid = uuid.uuid4().hex
        content = render(served, rows, answer, rid)
        seconds = server.record(endpoint, served, rows, answer, rid, start) / 1e6
        server.metrics.request(endpoint, 200, seconds)
        return Response(content, media_type=JSON, headers=headers(rid, served))

    # --- MLflow scoring protocol ------------------------------------------------------

    def render_mlflow(served: Served, rows: Rows, answer: Answer, rid: str) -> bytes:
        predictions = answer.labels if answer.labels is not None else answer.values
        return orjson.dumps(
            {"predictions": predictions, "request_id": rid, "model_version": served.model.ref}
        )

    @app.post("/invocations", response_class=Response, tags=["MLflow"])
    async def invocations(request: Request) -> Response:
        """MLflow scoring: dataframe_split, dataframe_records, instances or inputs."""
        return await predict_route(request, "invocations", protocols.mlflow, render_mlflow)

    @app.get("/ping", tags=["MLflow"])
    async def ping() -> Response:
        return Response(b"\n", media_type=JSON)

    @app.get("/health", tags=["MLflow"])
    async def health() -> Response:
        return Response(b"\n", media_type=JSON)

    @app.get("/version", tags=["MLflow"])
    async def version() -> Response:
        return Response(orjson.dumps(server.served.model.ref), media_type=JSON)

    # --- /predict -------------------------------------------------------------------

    def render_predict(served: Served, rows: Rows, answer: Answer, rid: str) -> bytes:
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

    @app.post("/predict", response_class=Response, tags=["trenches"])
    async def predict(request: Request) -> Response:
        """A JSON list of records (or one record): `[{"radius": 12.1, ...}, ...]`."""
        return await predict_route(request, "predict", protocols.predict, render_predict)

    # --- Open Inference Protocol (V2) ----------------------------------------------------

    def render_v2(served: Served, rows: Rows, answer: Answer, rid: str) -> bytes:
        n = rows.n
        outputs: list[dict[str, Any]] = []
        if answer.labels is not None:
            outputs.append(
                {
                    "name": "label",
                    "shape": [n],
                    "datatype": protocols.v2_datatype(answer.labels),
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
        return orjson.dumps(
            {
                "model_name": served.name,
                "model_version": served.version,
                "id": rows.client_id or rid,
                "parameters": {"request_id": rid, "model_version": served.model.ref},
                "outputs": outputs,
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    @app.get("/v2/health/live", tags=["V2"])
    async def live() -> Response:
        return Response(b'{"live":true}', media_type=JSON)

    @app.get("/v2/health/ready", tags=["V2"])
    async def ready() -> Response:
        return Response(b'{"ready":true}', media_type=JSON)

    @app.get("/v2", tags=["V2"])
    async def server_metadata() -> Response:
        import trenches

        return Response(
            orjson.dumps({"name": "trenches", "version": trenches.__version__, "extensions": []}),
            media_type=JSON,
        )

    def _model_or_404(name: str, request: Request) -> Served | Response:
        served = server.served
        if name != served.name:
            return Response(
                orjson.dumps(
                    {"error": f"no model {shown(name)} here; this server serves {served.name!r}"}
                ),
                status_code=404,
                media_type=JSON,
            )
        return served

    @app.get("/v2/models/{name}", tags=["V2"])
    async def model_metadata(name: str, request: Request) -> Response:
        found = _model_or_404(name, request)
        if isinstance(found, Response):
            return found
        m = found.model
        v2_types = {"number": "FP64", "integer": "INT64", "boolean": "BOOL"}
        body: dict[str, Any] = {
            "name": found.name,
            "versions": [found.version],
            "platform": "onnxruntime" if m.format == "onnx" else "scikit-learn",
            "inputs": [
                {"name": c, "datatype": v2_types.get(m.types[c], "BYTES"), "shape": [-1]}
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
        return Response(orjson.dumps(body), media_type=JSON)

    @app.get("/v2/models/{name}/ready", tags=["V2"])
    async def model_ready(name: str, request: Request) -> Response:
        found = _model_or_404(name, request)
        if isinstance(found, Response):
            return found
        return Response(orjson.dumps({"name": name, "ready": True}), media_type=JSON)

    async def v2_infer(name: str, version: str | None, request: Request) -> Response:
        found = _model_or_404(name, request)
        if not isinstance(found, Response) and version not in (None, found.version):
            found = Response(
                orjson.dumps({"error": f"version {version} is not served; {found.model.ref} is"}),
                status_code=404,
                media_type=JSON,
            )
        if isinstance(found, Response):
            server.metrics.request("v2", 404)
            return found
        return await predict_route(request, "v2", protocols.v2, render_v2)

    @app.post("/v2/models/{name}/infer", response_class=Response, tags=["V2"])
    async def infer(name: str, request: Request) -> Response:
        """Open Inference Protocol: one 1-D tensor per input column (or one 2-D tensor)."""
        return await v2_infer(name, None, request)

    @app.post("/v2/models/{name}/versions/{version}/infer", response_class=Response, tags=["V2"])
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await v2_infer(name, version, request)

    # --- feedback and metrics --------------------------------------------------------------

    @app.post("/feedback", tags=["trenches"])
    async def feedback(request: Request) -> Response:
        """`{"request_id": "...", "label": "malignant"}` (or `"rating": 4`, `"row": 2`,
        `"comment"`): stored with the request log, asynchronously (202)."""
        if server.requests is None:
            return _error(NO_LOG, "feedback", server)
        try:
            given = Feedback.parse(loads(await server.body(request)))
            item = server.feedback(given.checked(await server.answered(given.request_id)))
        except PayloadError as e:
            return _error(e, "feedback", server)
        server.requests.put(item)
        server.metrics.request("feedback", 202)
        return Response(
            orjson.dumps({"accepted": True, "request_id": item.request_id, "row": item.row}),
            status_code=202,
            media_type=JSON,
        )

    @app.get("/metrics", tags=["trenches"])
    async def metrics() -> Response:
        content, media_type = server.metrics.render()
        return Response(content, media_type=media_type)

    return app
