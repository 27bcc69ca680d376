"""What a version costs to run, measured for a check's gates: the latency of one-row
and of batch predictions, the CPU time per 1,000 predictions (and its cost at a price
the gate gives), the size of the model file prediction loads, and the memory a batch
prediction takes at its peak.

The version is measured as it is served: its ONNX form when it has one, on one thread,
on up to :data:`ROWS` patterns of the gate's set. Latencies are of the model's own
call (no HTTP), after a warm-up; the peak memory is measured in a process of its own
(the largest resident size it reaches loading the model and predicting a batch, less
what the same process holds before loading the model).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from trenches.config import Location
    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.patterns.datasets import Dataset, Datasets

#: Patterns a version is measured on, at most (the batch's size too).
ROWS = 1000
#: One-row predictions timed, and batch predictions.
ONE_ROW_CALLS = 300
BATCH_CALLS = 15


@dataclass(frozen=True)
class Measured:
    """What :func:`measure` found (times in milliseconds)."""

    latency_p50_ms: float
    latency_p99_ms: float
    batch_latency_p50_ms: float
    batch_latency_p99_ms: float
    batch_rows: int
    cpu_seconds_per_1k: float
    model_mb: float

    def figure(self, metric: str, price_per_cpu_hour: float | None) -> float:
        """The figure a gate's measured ``metric`` names."""
        if metric == "cost-per-1k":
            assert price_per_cpu_hour is not None
            return self.cpu_seconds_per_1k / 3600 * price_per_cpu_hour
        return float(getattr(self, metric.replace("-", "_")))


def measure(
    models: Models, version: ModelVersion, dataset: Dataset, ids: np.ndarray, *, trusted: bool
) -> Measured:
    """Time ``version`` on up to :data:`ROWS` of the patterns ``ids`` of ``dataset``."""
    X = _inputs(version, dataset, ids)
    model = _served(models, version, trusted)
    n = len(X)
    one = [
        X.iloc[[k % n]] if hasattr(X, "iloc") else X[k % n : k % n + 1]
        for k in range(ONE_ROW_CALLS)
    ]
    for row in one[:10]:  # warm-up
        model.predict(row)
    single = np.empty(ONE_ROW_CALLS)
    for k, row in enumerate(one):
        began = time.perf_counter_ns()
        model.predict(row)
        single[k] = time.perf_counter_ns() - began
    batch = np.empty(BATCH_CALLS)
    cpu = time.process_time()
    for k in range(BATCH_CALLS):
        began = time.perf_counter_ns()
        model.predict(X)
        batch[k] = time.perf_counter_ns() - began
    cpu = time.process_time() - cpu
    fmt = "onnx" if "onnx" in version.formats else _native(version)
    return Measured(
        latency_p50_ms=float(np.percentile(single, 50)) / 1e6,
        latency_p99_ms=float(np.percentile(single, 99)) / 1e6,
        batch_latency_p50_ms=float(np.percentile(batch, 50)) / 1e6,
        batch_latency_p99_ms=float(np.percentile(batch, 99)) / 1e6,
        batch_rows=n,
        cpu_seconds_per_1k=cpu / (BATCH_CALLS * n) * 1000,
        model_mb=len(models.file_bytes(version, fmt)) / 1e6,
    )


def peak_memory_mb(location: Location, ref: str, ids: np.ndarray, *, trusted: bool) -> float:
    """The memory ``ref`` takes at its peak loading and predicting a batch of the
    patterns ``ids``, in a process of its own (of the store at ``location``)."""
    # The store is opened by the measuring process's own code: this layer sits below it.
    code = (
        "import sys, json, trenches; from trenches.gates.measure import _peak; "
        "a = json.loads(sys.argv[1]); s = trenches.open(a[0], create=False); "
        "print(json.dumps(_peak(s.models, s.datasets, *a[1:])))"
    )
    args = json.dumps([location.db_url, ref, [int(i) for i in ids[:ROWS]], trusted])
    done = subprocess.run(
        [sys.executable, "-c", code, args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TRENCHES_ARTIFACTS": location.artifacts},
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring the peak memory of {ref} failed: {done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def _peak(models: Models, datasets: Datasets, ref: str, ids: list[int], trusted: bool) -> float:
    """In the measuring process: the growth of its peak resident size, in MB."""
    version = models.get(ref)
    assert version.dataset is not None
    X = _inputs(version, datasets.get(version.dataset), np.asarray(ids, dtype=np.int64))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = _served(models, version, trusted)
    model.predict(X)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) / 1024  # kilobytes on Linux


def _inputs(version: ModelVersion, dataset: Dataset, ids: np.ndarray) -> Any:
    from trenches.patterns.frames import read_patterns
    from trenches.predict import model_inputs

    frame, _ = read_patterns(dataset, ids=[int(i) for i in ids[:ROWS]], full_info=False)
    return model_inputs(version, dataset, frame)


def _served(models: Models, version: ModelVersion, trusted: bool) -> Any:
    from trenches.predict import load_model

    return load_model(models, version, trusted, threads=1)


def _native(version: ModelVersion) -> str:
    """The format of the version's native file."""
    return next(f for f in version.formats if f != "onnx")
