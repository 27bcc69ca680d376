"""Prometheus metrics of the team server: requests by route, method and status, and
their latency, at ``GET /metrics`` (open, as ``/health`` is: counts of requests by
route template, never names, ids or data).

With several worker processes (``--workers N``) every worker writes to the folder named
by ``PROMETHEUS_MULTIPROC_DIR`` (``trenches server`` sets it), and ``/metrics`` adds
them up, as the model server's does.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter

from trenches.serving.metrics import exposition

#: Latency buckets, seconds: a read is milliseconds, an evaluation or a check minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0)
#: The ``route`` label of a request no route matched (a 404 of the router).
UNMATCHED = "unmatched"


class ApiMetrics:
    """The counters of one app (each app its own registry: two in one process stay apart)."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = PromCounter(
            "trenches_api_requests",
            "Requests answered by the team server, by route, method and HTTP status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "trenches_api_request_seconds",
            "Time to answer a request, by route and method.",
            ["route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._requests.labels(route, method, str(status)).inc()
        self._latency.labels(route, method).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return exposition(self.registry, multiprocess=self.multiprocess)


router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """The server's Prometheus metrics (text exposition format)."""
    content, media_type = request.app.state.metrics.render()
    return Response(content, media_type=media_type)
