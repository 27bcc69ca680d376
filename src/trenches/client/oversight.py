"""The parts of a remote store that watch over models: gate checks, feedback on served
requests, drift and retraining history, and the audit log (see :mod:`trenches.client.parts`)."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trenches.client.parts import Part, not_offered, segment, version_path
from trenches.errors import InvalidInput
from trenches.json_form import from_json, to_json

if TYPE_CHECKING:
    from trenches.gates import Check
    from trenches.monitoring.reports import Monitored
    from trenches.requests.feedback import Feedback
    from trenches.retrain.record import Retrain
    from trenches.team.audit import AuditEntry


def check_of(data: dict[str, Any]) -> Check:
    """A check from its JSON form (which leaves out the criteria: see its digest)."""
    from trenches.gates import Check

    return from_json(Check, {**data, "criteria": []})


class RemoteGates(Part):
    name = "gates"

    def check(
        self,
        ref: str,
        *,
        trusted: bool = False,
        progress: Callable[[str, int], None] | None = None,
    ) -> Check:
        """Check the version against its model's gates in the server's trenches.toml
        (the team's gates, not a local file's); the check is stored."""

        if trusted:
            raise not_offered("check(trusted=True)", "no model that runs code loads on the server")
        return check_of(self._server.post(f"{version_path(ref)}/checks"))

    def history(self, ref: str) -> builtins.list[Check]:

        return [check_of(c) for c in self._server.get(f"{version_path(ref)}/checks")]

    def latest(self, ref: str) -> Check | None:
        found = self.history(ref)
        return found[-1] if found else None


# --- production ----------------------------------------------------------------------


class RemoteRequests(Part):
    name = "requests"

    def feedback(
        self,
        request_id: str,
        *,
        row: int = 0,
        label: Any = None,
        rating: float | None = None,
        comment: str | None = None,
    ) -> Feedback:
        from trenches.requests.feedback import Feedback

        body = {"row": row, "label": to_json(label), "rating": rating, "comment": comment}
        made = self._server.post(f"/requests/{segment(request_id)}/feedback", body)
        return from_json(Feedback, made)

    def get_feedback(self, request_id: str) -> builtins.list[Feedback]:
        from trenches.requests.feedback import Feedback

        found = self._server.get(f"/requests/{segment(request_id)}/feedback")
        return [from_json(Feedback, f) for f in found]


class RemoteMonitoring(Part):
    name = "monitoring"

    def history(self, model: str | None = None, *, limit: int | None = 50) -> list[Monitored]:
        from trenches.monitoring.reports import Monitored

        if model is None:
            raise InvalidInput("over the team server, history(MODEL) names the model")
        out: list[Monitored] = []
        for item in self._server.pages(f"/models/{segment(model)}/drift"):
            if limit is not None and len(out) >= limit:
                break
            out.append(from_json(Monitored, item))
        return out


class RemoteRetrains(Part):
    name = "retrains"

    def history(self, model: str | None = None) -> builtins.list[Retrain]:
        from trenches.retrain.record import Retrain

        if model is None:
            raise InvalidInput("over the team server, history(MODEL) names the model")
        return [
            from_json(Retrain, r) for r in self._server.pages(f"/models/{segment(model)}/retrains")
        ]


class RemoteAudit(Part):
    name = "audit"

    def list(
        self,
        *,
        user: str | None = None,
        action: str | None = None,
        since: str | datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEntry]:
        from trenches.team.audit import AuditEntry

        when = since.isoformat() if isinstance(since, datetime) else since
        params = {"user": user, "action": action, "since": when, "limit": limit}
        return [from_json(AuditEntry, e) for e in self._server.get("/audit", params)]
