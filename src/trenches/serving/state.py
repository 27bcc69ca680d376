"""What the routes of one worker process share: the settings it serves by, the model
answering now, the request log, the metrics, and the watcher that swaps the model when
the alias moves. A route reaches it through :data:`ServerDep` (``app.state.server``).

The served version is one reference that the watcher swaps, so a request in flight
finishes on the model it started with.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from trenches import timestamps
from trenches.models.endpoints import EndpointFailed
from trenches.serving.feedback import Answered, Feedback, Recent, lookup
from trenches.serving.metrics import Metrics
from trenches.serving.model import Answer, Served, ServedModel
from trenches.serving.payloads import PayloadError, Rows, read_body
from trenches.serving.rollout import Route
from trenches.serving.settings import Settings
from trenches.traffic import live
from trenches.traffic.guard import alert, judge

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trenches.serving.requestlog import LoggedFeedback, RequestLog
    from trenches.settings import GuardSettings
    from trenches.traffic.arms import TrafficArm
    from trenches.traffic.routing import Tally

log = logging.getLogger("trenches.serve")

#: Looks in the store for a request feedback is about, with other workers: the log
#: of the one that answered it writes it within a batch interval (a quarter second).
FEEDBACK_TRIES = 9
FEEDBACK_WAIT = 0.25


class Server:
    """State shared by the routes of one worker process."""

    def __init__(self, settings: Settings) -> None:
        import trenches

        self.settings = settings
        self.store = trenches.open(settings.store, create=False, settings=settings.config)
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
                self.store.location.db_url,
                spool,
                on_lost=self.metrics.log_lost,
                tables_root=self.store.location.artifacts,
                write_ahead=settings.write_ahead,
                moves=settings.moves_here,
            )
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        #: How requests are shared under the model's traffic policy; None: no policy.
        self.route: Route | None = None
        self._candidates: dict[int, Served] = {}
        self._follow()

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
        self._watcher = threading.Thread(target=self._watch, name="trenches-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.requests is not None:
            self.requests.stop()
        self.store.close()

    def _watch(self) -> None:
        """Follow the alias and the model's traffic policy, and guard its rollout."""
        while not self._stop.wait(self.settings.poll):
            if self.follows_alias:
                self._follow_alias()
            try:
                while self._follow():
                    pass  # the guard rolled an arm back: follow the policy it wrote
            except Exception:  # a database hiccup must not stop the watcher
                log.exception("could not follow the traffic policy of %s", self.served.name)

    def _follow_alias(self) -> None:
        """Load the version the alias moved to, then swap it in."""
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

    def _follow(self) -> bool:
        """Take the model's traffic policy as the store has it now, then guard it; True
        when the guard rolled an arm back (the policy changed again)."""
        policy = self.store.traffic.policy(self.served.name)
        old = self.route
        if not policy.routes:
            if old is not None:
                log.warning(
                    "traffic policy %d of %s: %s", policy.id, policy.model, policy.describe()
                )
            self.route, self._candidates = None, {}
            return False
        bounds = self.store.settings.guard
        counted = policy.kind == "bandit" or (
            policy.kind == "canary" and bounds.feedback_accuracy is not None
        )
        tallies = live.tallies(self.store.engine, policy) if counted else {}
        wanted = {a.version_id for a in policy.candidates}
        self._candidates = {k: v for k, v in self._candidates.items() if k in wanted}
        fresh = old is None or old.policy.id != policy.id
        if old is None or fresh or old.baseline.served is not self.served or counted:
            self.route = Route(
                policy, self.served, self._candidate, tallies, old.watch if old else None
            )
        if fresh:
            log.warning("traffic policy %d of %s: %s", policy.id, policy.model, policy.describe())
        return self._guard(self.route, tallies, bounds)

    def _candidate(self, arm: TrafficArm) -> Served | None:
        """A candidate arm's version, loaded once; None if it cannot be."""
        assert arm.version_id is not None
        found = self._candidates.get(arm.version_id)
        if found is None:
            try:
                found = Served.of(self._load(arm.ref or ""), self.store.engine)
            except Exception:
                log.exception(
                    "cannot load %s: its arm %s is answered by the version served",
                    arm.ref,
                    arm.name,
                )
                return None
            self._candidates[arm.version_id] = found
        return found

    def _guard(
        self, route: Route | None, tallies: Mapping[str, Tally], bounds: GuardSettings
    ) -> bool:
        """Roll back the arm of ``route`` whose figures crossed ``bounds``, if any."""
        crossed = judge(route.watch, tallies, bounds) if route is not None else None
        if route is None or crossed is None:
            return False
        policy = route.policy
        fresh = self.store.traffic.roll_back(policy.id, crossed.arm, reason=crossed.reason)
        log.error("%s: %s", policy.model, crossed.reason)
        if fresh is not None:  # this server wrote the rollback: it alerts
            monitor = self.store.settings.monitor
            threading.Thread(
                target=alert,
                args=(monitor, policy, crossed, fresh),
                name="trenches-alert",
                daemon=True,
            ).start()
        return True

    # --- the request path ----------------------------------------------------------

    async def body(self, request: Request) -> bytes:
        """The request's body, within the limit (a 413 past it)."""
        length = request.headers.get("content-length")
        return await read_body(request.receive, length, self.settings.max_body)

    def answer(self, served: Served, rows: Rows) -> Answer:
        try:
            return served.model.answer(rows.data)
        except PayloadError:
            raise
        except EndpointFailed as e:  # the service behind an endpoint version: not the rows
            raise PayloadError(502, f"{served.model.ref}: {e}") from None
        except Exception as e:
            raise PayloadError(
                422, f"{served.model.ref} could not predict these rows: {type(e).__name__}: {e}"
            ) from None

    def record(  # noqa: PLR0913
        self,
        endpoint: str,
        served: Served,
        rows: Rows,
        answer: Answer,
        rid: str,
        start: int,
        policy_id: int | None = None,
        arm: str | None = None,
        shadow_of: str | None = None,
    ) -> int:
        latency_us = (time.perf_counter_ns() - start) // 1000
        if self.requests is not None:
            schema = served.schema
            if shadow_of is None:
                self.recent.add(rid, Answered(rows.n, served.labels, answer.labels))
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
                    policy_id=policy_id,
                    arm=arm,
                    shadow_of=shadow_of,
                )
            )
        if answer.labels is not None and shadow_of is None:
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

    def feedback(self, checked: Feedback, answered: Answered) -> LoggedFeedback:
        return self._feedback(
            request_id=checked.request_id,
            row=checked.row,
            label=checked.label,
            rating=checked.rating,
            comment=checked.comment,
            created_at=timestamps.now_us(),
            correct=answered.correct(checked.row, checked.label),
        )


async def _server(request: Request) -> Server:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request.
    server: Server = request.app.state.server
    return server


#: The worker's state, as a route's parameter: ``server: ServerDep``.
ServerDep = Annotated[Server, Depends(_server)]
