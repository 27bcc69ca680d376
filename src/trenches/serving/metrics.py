"""Prometheus metrics of the model server: requests and latency by endpoint and
status, predictions by class, the version served, and request-log records lost.

With several worker processes (``--workers N``) every worker writes to the folder
named by ``PROMETHEUS_MULTIPROC_DIR`` (``trenches serve`` sets it), and ``/metrics``
adds them up.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import Counter as PromCounter

#: Latency buckets, seconds: a single-row ONNX answer is well under a millisecond.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def endpoint_of(path: str) -> str:
    """The ``endpoint`` label a path is counted under in the metrics."""
    if path.startswith("/v2/models/"):
        return "v2" if path.endswith("/infer") else "v2-metadata"
    name = path.strip("/").split("/", 1)[0]
    return name if name in ("invocations", "predict", "feedback", "metrics") else "other"


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # Each app its own registry: two servers in one process (tests) stay apart.
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = PromCounter(
            "trenches_requests",
            "Requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "trenches_request_seconds",
            "Time to answer a prediction request, by endpoint.",
            ["endpoint"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._predictions = PromCounter(
            "trenches_predictions",
            "Rows predicted, by predicted class.",
            ["class"],
            registry=self.registry,
        )
        self._version = Gauge(
            "trenches_served_version",
            "1 for the model version being served.",
            ["version"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._log_lost = PromCounter(
            "trenches_request_log_lost",
            "Requests and feedback the request log did not store: dropped (no room in "
            "memory nor in the spool) or rejected (refused; kept in the rejected file).",
            ["reason"],
            registry=self.registry,
        )
        self._current: str | None = None
        # Counting classes in Python per request is cheaper than a labelled inc per row.
        self._children: dict[tuple[str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def request(self, endpoint: str, status: int, seconds: float | None = None) -> None:
        key = (endpoint, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._requests.labels(endpoint, str(status))
        child.inc()
        if seconds is not None:
            histogram = self._histograms.get(endpoint)
            if histogram is None:
                histogram = self._histograms[endpoint] = self._latency.labels(endpoint)
            histogram.observe(seconds)

    def predicted(self, labels: list[Any]) -> None:
        if len(labels) == 1:
            self._predictions.labels(str(labels[0])).inc()
            return
        for label, n in Counter(map(str, labels)).items():
            self._predictions.labels(label).inc(n)

    def served(self, ref: str) -> None:
        if self._current is not None:
            self._version.labels(self._current).set(0)
        self._version.labels(ref).set(1)
        self._current = ref

    def log_lost(self, reason: str, n: int) -> None:
        """``n`` records of the request log ``"dropped"`` or ``"rejected"``."""
        self._log_lost.labels(reason).inc(n)

    def render(self) -> tuple[bytes, str]:
        return exposition(self.registry, multiprocess=self.multiprocess)


def exposition(registry: CollectorRegistry, *, multiprocess: bool) -> tuple[bytes, str]:
    """The text a scrape reads and its media type: of ``registry``, or with several
    worker processes, of every worker's counts added up."""
    if multiprocess:
        from prometheus_client import multiprocess as shared

        registry = CollectorRegistry()
        # prometheus_client ships no annotations for its collectors.
        shared.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
