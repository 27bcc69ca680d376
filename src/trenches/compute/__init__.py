"""Where heavy work runs: in this process (the default), or on a Dask cluster.

``[compute] scheduler`` in ``trenches.toml`` (or ``TRENCHES_DASK_SCHEDULER``, which
overrides it) names the cluster: ``tcp://HOST:8786`` for one that is running, or
``local-cluster:N`` for a cluster of N worker processes on this machine, started for
one command and stopped after it. trenches writes no scheduler of its own: the work is
Dask's tasks (``dask.distributed``), and the same code runs on a laptop's local cluster
and on a real one.

Workers read the store themselves (its database and its tables, by the store's
location), so no pattern goes through the scheduler; each task is one part of a job
that the client stores in a transaction of its own when it comes back, so a task lost
with its worker is run again, and a job stopped half-way is resumed by running it
again (what was stored is not predicted twice).
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

    from trenches.config import Location
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
        self.client = client
        self.location = location
        self.opened = opened

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
        the cluster, a part a task; each part's predictions are stored as they come
        back (those stored meanwhile by another process are skipped). The number stored."""
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
                key=f"trenches-predict-{predictor.id}-{int(part[0])}-{int(part[-1])}-{tag}",
                retries=RETRIES,
                pure=False,
            )
            for part in self.parts(todo, chunk)
        ]
        return Job(predictor.id, futures)

    def gather(
        self,
        jobs: Sequence[Job],
        *,
        engine: Engine,
        progress: Callable[[Job], Callable[[int], None] | None] | None = None,
    ) -> list[int | Exception]:
        """Store each part of ``jobs`` as it comes back, in a transaction of its own:
        per job, the number stored, or the error its first failed part raised (its
        other parts are then cancelled; the other jobs go on). ``progress(job)``: what
        hears of each of the job's parts. Ctrl-C cancels every job's tasks."""
        from distributed import as_completed

        from trenches import predictions as store_of
        from trenches.db.engine import write

        of = {future.key: k for k, job in enumerate(jobs) for future in job.futures}
        got: list[int | Exception] = [0] * len(jobs)
        every = [future for job in jobs for future in job.futures]
        try:
            for future in as_completed(every, loop=self.client.loop):  # type: ignore[no-untyped-call]
                k = of[future.key]
                if isinstance(got[k], Exception):
                    continue  # a part of a job that failed already
                try:
                    block = future.result()
                except Exception as e:
                    got[k] = e
                    self.client.cancel(jobs[k].futures)
                    continue
                future.release()
                with write(engine) as conn:
                    stored = store_of.write_block(
                        conn, jobs[k].predictor_id, block, skip_existing=True
                    )
                got[k] = cast(int, got[k]) + stored
                heard = None if progress is None else progress(jobs[k])
                if heard is not None:
                    heard(len(block.pattern_ids))
        except BaseException:
            # Ctrl-C, or the store's own trouble: the cluster stops what is left.
            self.client.cancel(every)
            raise
        return got


@dataclass(frozen=True)
class Job:
    """The tasks of one prediction job on a cluster: ``predictor_id``'s, one a part."""

    predictor_id: int
    futures: list[Any]
