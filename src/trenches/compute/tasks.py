"""The tasks heavy work is cut into on a Dask cluster (the client's side of each job
is :class:`trenches.compute.Cluster`'s). A task runs in a worker process: it opens the
store by its location (once per process), reads what it needs from the tables itself
and returns what it made; the client stores each result in a transaction of its own,
as the job in one process does. A worker opens the store with the function the
client's store gives (:func:`trenches.store.opened_once`): the part of the package
that runs tasks sits below the store, which uses it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches import prediction_commits

if TYPE_CHECKING:
    from trenches.config import Location
    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.patterns.folds import Fold, FoldPlan

#: A task lost with its worker is run again, up to this many times.
RETRIES = 3


def on_worker(opened: Callable[[Location], Any], location: Location) -> Any:
    """``opened(location)`` on a worker, whose Arrow thread pool is first made as large
    as the worker's threads (once per process): Parquet decoding on every core in each
    of two one-thread workers on two cores took a third of their speed."""
    global _arrow_threads_set
    if not _arrow_threads_set:
        threads = _threads()
        if threads:
            import pyarrow as pa

            pa.set_cpu_count(threads)
        _arrow_threads_set = True
    return opened(location)


_arrow_threads_set = False


def _threads() -> int | None:
    """The threads of the worker this runs on (the cores it is given); None when not
    on one."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return None
    return int(worker.state.nthreads)


def _ahead() -> bool:
    """Whether a part's next patterns are read on a thread of their own while the
    model predicts: only in a worker of more than one thread. A worker of one thread
    that did so used 1.65 cores, taking from the others on its machine (as Dask's own
    nanny keeps each worker's OpenMP and BLAS to one thread)."""
    threads = _threads()
    return threads is None or threads > 1


def predict_part(
    opened: Callable[[Location], Any],
    location: Location,
    ref: str,
    ids: np.ndarray,
    split: str | None,
    trusted: bool,
    inline_below: int,
) -> prediction_commits.Part:
    """On a worker: the predictions of the version ``ref`` on the patterns ``ids`` of
    the store at ``location``, which ``opened`` opens (once per worker process),
    written as the predictions table's files for the client to commit (a small part:
    its block, for the client to store: fewer than ``inline_below``)."""
    from trenches.db.engine import read
    from trenches.predict import predicted_block

    store = opened(location)
    predictor = store.predictors.resolve(ref)
    model = _model(store, location, predictor, trusted)
    block = predicted_block(model, predictor, ids, split, ahead=_ahead())
    with read(store.engine) as conn:
        return prediction_commits.write_part(conn, predictor.id, block, inline_below=inline_below)


def predict_parts(
    opened: Callable[[Location], Any],
    location: Location,
    wanted: list[tuple[str, np.ndarray]],
    trusted: bool,
) -> list[prediction_commits.Part | Exception]:
    """On a worker: :func:`predict_part` of several versions' small gaps (``(ref,
    ids)`` each), as their blocks: a backfill of a problem's few patterns over many
    versions is a few tasks, not one a version. A version that cannot predict (its
    model is a pickle, say) gives its error in its place; the others are done."""
    from trenches.errors import TrenchesError
    from trenches.predict import predicted_block

    store = opened(location)
    out: list[prediction_commits.Part | Exception] = []
    for ref, ids in wanted:
        try:
            predictor = store.predictors.resolve(ref)
            model = _model(store, location, predictor, trusted)
            block = predicted_block(model, predictor, ids, None, ahead=_ahead())
        except TrenchesError as e:
            out.append(e)
            continue
        out.append(prediction_commits.Part(np.sort(ids), block=block))
    return out


def _model(store: Any, location: Location, predictor: Any, trusted: bool) -> Any:
    """The predictor's model, as :func:`worker_model` keeps it."""
    assert predictor.version is not None
    return worker_model(store.models, location, predictor.version, trusted)


def worker_model(models: Models, location: Location, version: ModelVersion, trusted: bool) -> Any:
    """On a worker: the ``version``'s model as prediction runs it (its ONNX form when it
    has one), loaded from ``models`` (of the store at ``location``) once per worker
    process while it is among the last :data:`MODELS_KEPT` used."""
    from trenches.predict import load_model

    key = (location.db_url, version.id, trusted)
    with _lock:
        model = _models.get(key)
        if model is not None:
            _models.move_to_end(key)
            return model
    # As many threads as the worker runs tasks: a worker of one thread that ran ONNX
    # Runtime on every core would take the others' (two workers on two cores were
    # slower than one).
    model = load_model(models, version, trusted, _threads())
    with _lock:
        _models[key] = model
        while len(_models) > MODELS_KEPT:
            _models.popitem(last=False)
    return model


#: How many models a worker process keeps loaded between its tasks (the last used).
MODELS_KEPT = 16


def fold_part(
    opened: Callable[[Location], Any], location: Location, plan: FoldPlan, k: int
) -> Fold:
    """On a worker: fold ``k`` of a label-error check's ``plan``, fitted on the inputs
    and labels of the plan's patterns, which it reads from the store at ``location``."""
    from trenches.patterns.folds import fit_fold_of

    store = opened(location)
    return fit_fold_of(store.datasets.by_id(plan.dataset_id), plan, k)


_lock = threading.Lock()
_models: OrderedDict[tuple[str, int, bool], Any] = OrderedDict()
