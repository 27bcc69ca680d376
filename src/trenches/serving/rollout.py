"""A server under a traffic policy (:mod:`trenches.traffic`): which version answers
each request, which answer in its shadow, and what the guard watches.

The worker's :class:`Route` is one reference, rebuilt by the server's watcher when the
policy, the version served or a bandit's tallies change, so a request in flight keeps
the route it started with. Under a policy, a request goes to the arm the chooser
picks; the caller gets that arm's answer (``x-trenches-arm`` names it), and the log
records the policy and the arm. When a candidate cannot answer rows the version served
can, the caller gets the version served's answer and the guard counts an error.

After the answer has left, the versions that answer in the shadow do (a shadow
policy's candidate; under a canary or a bandit, the version served in the shadow of a
candidate's answer, so the guard knows how often they agree): each answer is logged as
a row of its own, ``shadow_of`` the request id the caller got.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from trenches.serving.payloads import PayloadError
from trenches.traffic.arms import BASELINE, TrafficArm, TrafficPolicy
from trenches.traffic.guard import Watch
from trenches.traffic.routing import Chooser, Tally

if TYPE_CHECKING:
    from trenches.serving.model import Answer, Served
    from trenches.serving.payloads import Rows

log = logging.getLogger("trenches.serve")

#: The response header naming the arm that answered.
ARM_HEADER = "x-trenches-arm"


class Server(Protocol):
    """What a route asks of the worker's state (:class:`trenches.serving.state.Server`)."""

    def answer(self, served: Served, rows: Rows) -> Answer: ...

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
    ) -> int: ...


@dataclass(frozen=True)
class RouteArm:
    name: str
    served: Served
    baseline: bool  # the version the server serves


class Route:
    """How one worker answers under one policy."""

    def __init__(
        self,
        policy: TrafficPolicy,
        served: Served,
        load: Callable[[TrafficArm], Served | None],
        tallies: Mapping[str, Tally] | None = None,
        watch: Watch | None = None,
    ) -> None:
        self.policy = policy
        self.baseline = RouteArm(BASELINE, served, True)
        self.chooser = Chooser(policy, tallies)
        self.arms = [self._arm(a, load) for a in self.chooser.arms]
        shadows = (self._arm(a, load) for a in policy.shadows)
        self.shadows = [a for a in shadows if not a.baseline]
        #: Whether the version served answers in a candidate's shadow (the guard's
        #: agreement): under a canary or a bandit.
        self.compare = policy.kind in ("canary", "bandit")
        self.watch = watch if watch is not None and watch.policy.id == policy.id else Watch(policy)
        #: Whether a version it may ask calls a service to answer (an endpoint version):
        #: its requests are answered off the event loop. Known once, read every request.
        self.remote = any(a.served.model.remote for a in [self.baseline, *self.arms, *self.shadows])

    def _arm(self, arm: TrafficArm, load: Callable[[TrafficArm], Served | None]) -> RouteArm:
        served, name = self.baseline.served, arm.name
        if arm.version_id is None or arm.version_id == served.model.version_id:
            return RouteArm(name, served, True)
        candidate = load(arm)
        if candidate is None:
            return RouteArm(name, served, True)
        if candidate.schema != served.schema:
            log.warning(
                "%s takes other inputs than %s: its arm %s is answered by %s",
                candidate.model.ref,
                served.model.ref,
                name,
                served.model.ref,
            )
            return RouteArm(name, served, True)
        return RouteArm(name, candidate, False)

    def pick(self, key: str | None) -> RouteArm:
        return self.arms[self.chooser.pick(key)]

    def answer(self, server: Server, arm: RouteArm, rows: Rows) -> tuple[RouteArm, Answer]:
        """``arm``'s answer; the baseline's when a candidate fails where it does not
        (counted against the candidate)."""
        if arm.baseline:
            return arm, server.answer(arm.served, rows)
        try:
            return arm, server.answer(arm.served, rows)
        except PayloadError:
            answer = server.answer(self.baseline.served, rows)  # the rows' fault: raises
            if self.watch.failed(arm.name) == 1:  # the first; the guard counts the rest
                log.warning(
                    "%s failed where %s answered (policy %d)",
                    arm.served.model.ref,
                    self.baseline.served.model.ref,
                    self.policy.id,
                )
            return self.baseline, answer

    def in_shadow(self, arm: RouteArm) -> list[RouteArm]:
        """The arms that answer after ``arm`` has answered the caller."""
        if self.shadows:
            return self.shadows
        return [self.baseline] if self.compare and not arm.baseline else []

    def shadow(
        self,
        server: Server,
        endpoint: str,
        rows: Rows,
        arm: RouteArm,
        given: Answer,
        rid: str,
    ) -> None:
        """Answer in the shadow of ``arm``'s answer ``given`` to request ``rid``
        (after the caller has it): logged, and compared for the guard. Never raises: the
        caller has its answer, and what fails here is logged."""
        for other in self.in_shadow(arm):
            start = time.perf_counter_ns()
            try:
                answer = server.answer(other.served, rows)
                shadow_id = f"{rid}.{other.served.model.version_id}"
                policy = self.policy.id
                record = (endpoint, other.served, rows, answer, shadow_id, start, policy)
                seconds = server.record(*record, other.name, rid) / 1e6
                if other.baseline:  # the version served, in a candidate's shadow
                    candidate, agreed = arm, _agreed(given, answer)
                else:  # a shadow policy's candidate
                    self.watch.answered(other.name, seconds)
                    candidate, agreed = other, _agreed(answer, given)
                if agreed is not None:
                    self.watch.compared(candidate.name, rows.n, agreed)
            except PayloadError as e:  # it could not answer these rows
                if not other.baseline:
                    self.watch.failed(other.name)
                log.warning("in the shadow of %s: %s", rid, e.message)
            except Exception:
                log.exception("answering in the shadow of request %s failed", rid)


def _agreed(a: Answer, b: Answer) -> int | None:
    """Rows two answers give the same class; None for regressors."""
    if a.labels is None or b.labels is None:
        return None
    return int(np.sum(np.asarray(a.labels, dtype=object) == np.asarray(b.labels, dtype=object)))
