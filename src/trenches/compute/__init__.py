"""Where heavy work runs: in this process (the default), or on a Dask cluster.

``[compute] scheduler`` in ``trenches.toml`` (or ``TRENCHES_DASK_SCHEDULER``, which
overrides it) names the cluster: ``tcp://HOST:8786`` for one that is running, or
``local-cluster:N`` for a cluster of N worker processes on this machine, started for
one command and stopped after it. trenches writes no scheduler of its own: the work is
Dask's tasks (``dask.distributed``), and the same code runs on a laptop's local cluster
and on a real one.

Workers read the store themselves (its database and its tables, by the store's
location), so no pattern goes through the scheduler; each task is one part of a job,
whose predictions its worker writes as the Iceberg table's data files and the client
commits in a transaction of its own when the task comes back
(:mod:`trenches.prediction_commits`). A task lost with its worker is run again (its
files, never committed, are strays for ``trenches compact``), and a job stopped
half-way is resumed by running it again (what was stored is not predicted twice).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from trenches.errors import ComputeUnavailable, InvalidConfig, InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.compute.importing import ClusterSteps
    from trenches.config import Location
    from trenches.patterns.folds import Fold, FoldPlan
    from trenches.predictors import Predictor
    from trenches.settings import Settings

#: The environment variable that overrides ``[compute] scheduler``.
ENV = "TRENCHES_DASK_SCHEDULER"

#: How long a connection to a scheduler is tried before it is given up.
CONNECT_TIMEOUT_S = 10

#: The parts of a job per worker: several, so that a slow or lost worker's share is
#: taken up by the others.
PARTS_PER_WORKER = 4

#: The fewest patterns a part holds (all of them, when there are fewer): a task costs
#: its round trip, and a worker predicts this many in a few milliseconds.
LEAST_PART = 10_000

_LOCAL = re.compile(r"local-cluster:(\d+)")


@dataclass(frozen=True)
class Scheduler:
    """The scheduler heavy work goes to: ``address`` (empty: this process) and where
    that was set (``source``), for errors that name it."""

    address: str
    source: str

    @property
    def in_process(self) -> bool:
        return self.address in ("", "in-process")

    @property
    def local_workers(self) -> int | None:
        """N of ``local-cluster:N``; None for any other address."""
        found = _LOCAL.fullmatch(self.address)
        return None if found is None else int(found[1])


def scheduler(settings: Settings) -> Scheduler:
    """The scheduler ``settings`` (and the environment) choose, checked."""
    if os.environ.get(ENV):
        chosen = Scheduler(os.environ[ENV].strip(), ENV)
    elif settings.scheduler:
        chosen = Scheduler(settings.scheduler.strip(), f"[compute] scheduler in {settings.file}")
    else:
        return Scheduler("", "the default")
    if chosen.in_process:
        return chosen
    workers = chosen.local_workers
    bad = None
    if workers is not None and workers < 1:
        bad = "a local cluster needs at least one worker"
    elif workers is None and not re.fullmatch(r"(tcp|tls|ws|wss|inproc)://\S+", chosen.address):
        bad = "must be empty, tcp://HOST:PORT or local-cluster:N"
    if bad is not None:
        message = f"{chosen.address!r} {bad}"
        if chosen.source == ENV:
            raise InvalidInput(f"{ENV}: {message}")
        raise InvalidConfig(message, file=str(settings.file), key="compute.scheduler")
    return chosen


@contextmanager
def cluster(
    chosen: Scheduler, location: Location, opened: Callable[[Location], Any]
) -> Iterator[Cluster | None]:
    """A client of the cluster ``chosen`` names, for the work of one command on the
    store at ``location`` (which its workers open with ``opened``, a function of a
    module they import); None for work in this process. A local cluster is started
    here and stopped after; a cluster that cannot be reached is
    :class:`~trenches.errors.ComputeUnavailable`, naming its address and setting."""
    if chosen.in_process:
        yield None
        return
    from distributed import Client, LocalCluster

    workers = chosen.local_workers
    # dask.distributed declares no types: its objects are Any here.
    local: Any = None
    client: Any
    try:
        if workers is not None:
            local = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            client = Client(local, set_as_default=False)  # type: ignore[no-untyped-call]
        else:
            client = Client(  # type: ignore[no-untyped-call]
                chosen.address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False
            )
    except (OSError, TimeoutError) as e:
        if local is not None:
            local.close()
        what = "started" if workers is not None else "reached"
        raise ComputeUnavailable(
            f"the Dask cluster at {chosen.address} (from {chosen.source}) cannot be {what}: {e}"
        ) from None
    try:
        yield Cluster(client, location, opened)
    finally:
        client.close()
        if local is not None:
            local.close()


class Cluster:
    """A Dask client, the location of the store its workers open, and how they open
    it."""

    def __init__(self, client: Any, location: Location, opened: Callable[[Location], Any]) -> None:
        from functools import partial

        from trenches.compute.tasks import on_worker

        self.client = client
        self.location = location
        # Every task opens the store first: the worker's threads are set then.
        self.opened: Callable[[Location], Any] = partial(on_worker, opened)

    def workers(self) -> int:
        """How many workers the cluster has now (at least 1)."""
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def parts(self, ids: np.ndarray, most: int) -> list[np.ndarray]:
        """``ids`` cut into parts of at most ``most``, several per worker, and none
        smaller than :data:`LEAST_PART` (a backfill of a few patterns is one task)."""
        n = len(ids)
        share = -(-n // (self.workers() * PARTS_PER_WORKER))
        size = max(1, min(most, max(share, LEAST_PART)))
        return [ids[start : start + size] for start in range(0, n, size)]

    def each(
        self, task: Callable[..., Any], parts: Sequence[Any], *shared: Any, name: str
    ) -> list[Any]:
        """Run ``task(opened, location, part, *shared)`` for each of ``parts``, a task
        each (``shared`` sent to every worker once), and return what they gave in the
        order of ``parts``. The first error raised stops the others, as does Ctrl-C."""
        from trenches.compute.tasks import RETRIES

        tag = uuid.uuid4().hex[:8]
        sent = [self.client.scatter(x, broadcast=True, hash=False) for x in shared]
        futures = [
            self.client.submit(
                task,
                self.opened,
                self.location,
                part,
                *sent,
                key=f"{name}-{k}-{tag}",
                retries=RETRIES,
                pure=False,
            )
            for k, part in enumerate(parts)
        ]
        try:
            return cast(list[Any], self.client.gather(futures))
        except BaseException:
            self.client.cancel(futures)
            raise
        finally:
            self.client.cancel(sent)

    def predict(
        self,
        predictor: Predictor,
        todo: np.ndarray,
        *,
        engine: Engine,
        trusted: bool,
        progress: Callable[[int], None] | None,
        chunk: int,
        split: str | None,
    ) -> int:
        """Predict ``todo`` (ascending ids of a columnar dataset) with ``predictor`` on
        the cluster, a part a task; each part's predictions, written by its worker as
        the table's files, are committed as they come back (those stored meanwhile by
        another process are skipped). The number stored."""
        from trenches import prediction_commits
        from trenches import predictions as store_of
        from trenches.db.engine import write

        if len(todo) >= store_of.INLINE_ROWS:
            # The workers write the table's files: it must exist (the first commit).
            with write(engine) as conn:
                prediction_commits.ready(conn)
        job = self.submit(predictor, todo, trusted=trusted, chunk=chunk, split=split)
        heard = None if progress is None else (lambda _: progress)
        (got,) = self.gather([job], engine=engine, progress=heard)
        if isinstance(got, BaseException):
            raise got
        return got

    def submit(
        self,
        predictor: Predictor,
        todo: np.ndarray,
        *,
        trusted: bool,
        chunk: int,
        split: str | None,
    ) -> Job:
        """Send the tasks that predict ``todo`` with ``predictor``; :meth:`gather`
        stores what they give."""
        from trenches import predictions as store_of
        from trenches.compute.tasks import RETRIES, predict_part

        tag = uuid.uuid4().hex[:8]
        futures = [
            self.client.submit(
                predict_part,
                self.opened,
                self.location,
                predictor.ref,
                part,
                split,
                trusted,
                store_of.INLINE_ROWS,
                key=f"trenches-predict-{predictor.id}-{int(part[0])}-{int(part[-1])}-{tag}",
                retries=RETRIES,
                pure=False,
            )
            for part in self.parts(todo, chunk)
        ]
        return Job(predictor.id, futures)

    def submit_small(
        self, gaps: Sequence[tuple[Predictor, np.ndarray]], *, trusted: bool
    ) -> list[Job]:
        """Send the tasks that predict several versions' small gaps (each version's
        ``ids``) a task: a few tasks per worker, of about as many patterns each, rather
        than one a version. One job a version, in the order given."""
        from trenches.compute.tasks import RETRIES, predict_parts

        total = sum(len(ids) for _, ids in gaps)
        share = max(1, -(-total // (self.workers() * PARTS_PER_WORKER)))
        bundles: list[list[int]] = [[]]
        held = 0
        for k, (_, ids) in enumerate(gaps):
            if held >= share:
                bundles.append([])
                held = 0
            bundles[-1].append(k)
            held += len(ids)
        tag = uuid.uuid4().hex[:8]
        jobs: list[Job] = []
        for n, bundle in enumerate(b for b in bundles if b):
            first = gaps[bundle[0]][0].id
            future = self.client.submit(
                predict_parts,
                self.opened,
                self.location,
                [(gaps[k][0].ref, gaps[k][1]) for k in bundle],
                trusted,
                key=f"trenches-predict-{first}-{n}-{len(bundle)}-{tag}",
                retries=RETRIES,
                pure=False,
            )
            jobs += [Job(gaps[k][0].id, [future], slot) for slot, k in enumerate(bundle)]
        return jobs

    def out_of_fold(self, plan: FoldPlan, *, progress: Callable[[int], None] | None) -> list[Fold]:
        """Every fold of a label-error check's ``plan``, a task each, fitted on the
        workers (each reads the plan's patterns itself); ``progress(k)`` hears of each
        fold as it comes back. A task that fails stops the check, and Ctrl-C cancels
        what is left."""
        from distributed import as_completed

        from trenches.compute.tasks import RETRIES, fold_part

        tag = uuid.uuid4().hex[:8]
        futures = [
            self.client.submit(
                fold_part,
                self.opened,
                self.location,
                plan,
                k,
                key=f"trenches-check-{plan.dataset_id}-{k}-{tag}",
                retries=RETRIES,
                pure=False,
            )
            for k in range(plan.folds)
        ]
        folds: list[Fold] = []
        try:
            for future in as_completed(futures, loop=self.client.loop):  # type: ignore[no-untyped-call]
                fold = future.result()
                future.release()
                folds.append(fold)
                if progress is not None:
                    progress(fold.k)
        except BaseException:
            self.client.cancel(futures)
            raise
        return sorted(folds, key=lambda f: f.k)

    def import_steps(self) -> ClusterSteps:
        """The steps of one import of several files, a task a file on the workers
        (:mod:`trenches.compute.importing`)."""
        from trenches.compute.importing import ClusterSteps

        return ClusterSteps(self)

    def gather(
        self,
        jobs: Sequence[Job],
        *,
        engine: Engine,
        progress: Callable[[Job], Callable[[int], None] | None] | None = None,
    ) -> list[int | Exception]:
        """Store each part of ``jobs`` as it comes back, the parts a task gives in a
        transaction of their own: per job, the number stored, or the error its first
        failed part raised (its other parts are then cancelled; the other jobs go on).
        ``progress(job)``: what hears of each of the job's parts. Ctrl-C cancels every
        job's tasks."""
        from distributed import as_completed

        owners: dict[str, list[int]] = {}
        every = []
        for k, job in enumerate(jobs):
            for future in job.futures:
                if future.key not in owners:
                    owners[future.key] = []
                    every.append(future)
                owners[future.key].append(k)
        got: list[int | Exception] = [0] * len(jobs)
        try:
            arriving = as_completed(every, loop=self.client.loop)  # type: ignore[no-untyped-call]
            # What has come back since the last commit is committed at once: a commit of
            # the predictions table costs the client a manifest merge and a plan, which
            # it would otherwise spend once a part, taking a core from the workers.
            for done in arriving.batches():  # type: ignore[no-untyped-call]
                arrived: list[tuple[list[int], Any]] = []
                for future in done:
                    ks = [k for k in owners[future.key] if not isinstance(got[k], Exception)]
                    if not ks:
                        continue  # a part of a job that failed already
                    try:
                        result = future.result()
                    except Exception as e:
                        for k in ks:
                            got[k] = e
                            self.client.cancel(jobs[k].futures)
                        continue
                    future.release()
                    arrived.append((ks, result))
                if arrived:
                    self._commit(engine, jobs, arrived, got, progress)
        except BaseException:
            # Ctrl-C, or the store's own trouble: the cluster stops what is left.
            self.client.cancel(every)
            raise
        return got

    @staticmethod
    def _commit(
        engine: Engine,
        jobs: Sequence[Job],
        arrived: Sequence[tuple[list[int], Any]],
        got: list[int | Exception],
        progress: Callable[[Job], Callable[[int], None] | None] | None,
    ) -> None:
        """Store what tasks gave (each with the indexes of ``jobs`` it serves) in one
        transaction, each predictor's parts in one commit; a version's error takes its
        place in ``got``."""
        from trenches import prediction_commits
        from trenches.db.engine import write

        by_predictor: dict[int, list[tuple[int, prediction_commits.Part]]] = {}
        for ks, result in arrived:
            for k in ks:
                part = result if jobs[k].slot is None else result[jobs[k].slot]
                if isinstance(part, Exception):
                    got[k] = part
                else:
                    by_predictor.setdefault(jobs[k].predictor_id, []).append((k, part))
        with write(engine) as conn:
            stored = {
                predictor: prediction_commits.commit_parts(conn, predictor, [p for _, p in items])
                for predictor, items in by_predictor.items()
            }
        for predictor, items in by_predictor.items():
            for (k, part), n in zip(items, stored[predictor], strict=True):
                got[k] = cast(int, got[k]) + n
                heard = None if progress is None else progress(jobs[k])
                if heard is not None:
                    heard(len(part.pattern_ids))


@dataclass(frozen=True)
class Job:
    """The tasks of one prediction job on a cluster: ``predictor_id``'s, one a part;
    or, with ``slot``, its place among the versions of the one task it shares
    (:meth:`Cluster.submit_small`)."""

    predictor_id: int
    futures: list[Any]
    slot: int | None = None
