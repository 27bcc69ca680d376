"""The model server's application: FastAPI routes for the Open Inference Protocol (V2),
the MLflow scoring protocol and ``/predict``, feedback, health and Prometheus metrics.

The hot path parses the body with orjson, predicts the whole request at once (ONNX
Runtime on a float matrix when the version has an ONNX form), answers, and hands the
request to the request log, whose writer stores it later in batches. The served
version is one reference that a watcher swaps when the alias moves, so a request in
flight finishes on the model it started with.
"""

from __future__ import annotations

import gc
import hmac
import logging
import os
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
from fastapi.responses import Response

from trenches import timestamps
from trenches.serving import protocols
from trenches.serving.metrics import Metrics
from trenches.serving.model import Answer, ServedModel
from trenches.serving.protocols import PayloadError, Rows, Schema

if TYPE_CHECKING:
    from trenches.serving.requestlog import LoggedFeedback, RequestLog

log = logging.getLogger("trenches.serve")

JSON = "application/json"
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

    @classmethod
    def of(cls, model: ServedModel) -> Served:
        return cls(
            model,
            Schema(tuple(model.columns), dict(model.types)),
            model.version.model,
            str(model.version.version),
        )


class Server:
    """State shared by the routes of one worker process."""

    def __init__(self, settings: Settings) -> None:
        import trenches

        self.settings = settings
        self.store = trenches.open(settings.store, create=False)
        self.ref = settings.ref
        self.follows_alias = not self.ref.split("@", 1)[1].isdigit() if "@" in self.ref else False
        self.served = Served.of(self._load(self.ref))
        self.metrics = Metrics()
        self.metrics.served(self.served.model.ref)
        self._token = settings.token.encode() if settings.token else None
        spool = Path(settings.spool_dir) if settings.spool_dir else self._default_spool()
        self.requests: RequestLog | None = None
        if settings.log_requests:
            from trenches.serving import requestlog

            self._logged = requestlog.LoggedRequest
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
                        ServedModel(self.store, version, trusted=self.settings.trusted)
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

    def authorised(self, request: Request) -> bool:
        if self._token is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self._token
        )

    async def body(self, request: Request) -> bytes:
        limit = self.settings.max_body
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
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


def _error(e: PayloadError, endpoint: str, server: Server) -> Response:
    server.metrics.request(endpoint, e.status)
    return Response(e.body(), status_code=e.status, media_type=JSON)


def _unauthorised(endpoint: str, server: Server) -> Response:
    server.metrics.request(endpoint, 401)
    return Response(
        b'{"error":"a valid bearer token is needed (Authorization: Bearer TOKEN)"}',
        status_code=401,
        media_type=JSON,
        headers={"www-authenticate": "Bearer"},
    )


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

    def headers(rid: str, served: Served) -> dict[str, str]:
        return {"x-request-id": rid, "x-model-version": served.model.ref}

    async def predict_route(
        request: Request,
        endpoint: str,
        parse: Any,
        render: Any,
    ) -> Response:
        start = time.perf_counter_ns()
        if not server.authorised(request):
            return _unauthorised(endpoint, server)
        served = server.served
        try:
            body = protocols.loads(await server.body(request))
            rows = parse(served.schema, body)
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
                    {"error": f"no model {name!r} here; this server serves {served.name!r}"}
                ),
                status_code=404,
                media_type=JSON,
            )
        return served

    @app.get("/v2/models/{name}", tags=["V2"])
    async def model_metadata(name: str, request: Request) -> Response:
        if not server.authorised(request):
            return _unauthorised("v2-metadata", server)
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
        # The token first: without it, not even which models exist is told.
        if not server.authorised(request):
            return _unauthorised("v2", server)
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
        if not server.authorised(request):
            return _unauthorised("feedback", server)
        try:
            body = protocols.loads(await server.body(request))
            item = _feedback(body)
        except PayloadError as e:
            return _error(e, "feedback", server)
        if server.requests is not None:
            server.requests.put(item)
        server.metrics.request("feedback", 202)
        return Response(
            orjson.dumps({"accepted": True, "request_id": item.request_id, "row": item.row}),
            status_code=202,
            media_type=JSON,
        )

    @app.get("/metrics", tags=["trenches"])
    async def metrics(request: Request) -> Response:
        if not server.authorised(request):
            return _unauthorised("metrics", server)
        content, media_type = server.metrics.render()
        return Response(content, media_type=media_type)

    return app


def _feedback(body: Any) -> LoggedFeedback:
    from trenches.serving.requestlog import LoggedFeedback

    if not isinstance(body, dict):
        raise PayloadError(400, "expected an object with request_id and a label or a rating")
    rid = body.get("request_id")
    if not isinstance(rid, str) or not rid or len(rid) > 64:
        raise PayloadError(
            422, "request_id must be the id a prediction answered with", "request_id"
        )
    unknown = set(body) - {"request_id", "row", "label", "rating", "comment"}
    if unknown:
        raise PayloadError(422, f"unknown field {sorted(unknown)[0]!r}", sorted(unknown)[0])
    row = body.get("row", 0)
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        raise PayloadError(422, "row must be a row number of the request (0, 1, ...)", "row")
    rating = body.get("rating")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int | float)):
        raise PayloadError(422, "rating must be a number", "rating")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise PayloadError(422, "comment must be a string", "comment")
    if body.get("label") is None and rating is None:
        raise PayloadError(422, "give a label (the true answer) or a rating", "label")
    return LoggedFeedback(
        request_id=rid,
        row=row,
        label=body.get("label"),
        rating=None if rating is None else float(rating),
        comment=comment,
        created_at=timestamps.now_us(),
    )


def app_from_env() -> FastAPI:
    """The app of a uvicorn worker process (``--workers N``): settings from the
    environment, as ``trenches serve`` put them there."""
    return create_app(Settings.from_json(os.environ["TRENCHES_SERVE_SETTINGS"]))
