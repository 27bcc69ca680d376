"""A store reached over the team server: ``trenches.open("https://trenches.example")``
gives a :class:`RemoteStore`, which offers the library's day-to-day API (datasets and
patterns, snapshots' training data, problems, runs, models, predictions, evaluation,
comparison, gate checks, explanations, feedback, drift and retraining history, the
audit log) as calls to ``/api/v1``, answering the same types as a local store. The
server checks the token's roles, and records each change as its user's.
"""

from __future__ import annotations

import base64
import builtins
import os
import socket
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from trenches import timestamps
from trenches.client import oversight, parts
from trenches.client.parts import (
    Part,
    RemoteSnapshot,
    not_offered,
    segment,
    split_ref,
    version_path,
)
from trenches.errors import InvalidInput
from trenches.json_form import from_json, to_json
from trenches.runs.tracking import EndsWithItsBlock

if TYPE_CHECKING:
    import pandas as pd

    from trenches.client.http import Server
    from trenches.comparison import Comparison
    from trenches.evaluation import EvaluateResult
    from trenches.explain import Explanation
    from trenches.lineage import Lineage
    from trenches.models.versions import ModelVersion
    from trenches.runs.code import CodeState

#: Metric points a remote run sends at once, and how often it sends them (as a local
#: run writes them: ``trenches.runs.tracking``).
FLUSH_POINTS = 10_000
FLUSH_SECONDS = 2.0


class RemoteExplanations(Part):
    name = "explanations"

    def explain(
        self,
        ref: str,
        pattern_ids: Sequence[int],
        *,
        seed: int = 0,
        num_samples: int = 5000,
        num_features: int = 10,
        trusted: bool = False,
    ) -> builtins.list[Explanation]:
        from trenches.explain import Explanation

        if trusted:
            raise not_offered(
                "explain(trusted=True)", "no model that runs code loads on the server"
            )
        body = {
            "patterns": [int(i) for i in pattern_ids],
            "seed": seed,
            "num_samples": num_samples,
            "num_features": num_features,
        }
        made = self._server.post(f"{version_path(ref)}/explanations", body)
        return [from_json(Explanation, e) for e in made]

    def list(self, ref: str) -> builtins.list[Explanation]:
        from trenches.explain import Explanation

        found = self._server.get(f"{version_path(ref)}/explanations")
        return [from_json(Explanation, e) for e in found]


class RemoteRun(EndsWithItsBlock):
    """A run whose process is here and whose record is on the server: ``with
    store.run("train", snapshot=snap) as run:`` as on a local store. The code state and
    environment are captured here; metric points are sent in batches."""

    # The options of ``store.run``.
    def __init__(
        self,
        server: Server,
        models: parts.RemoteModels,
        name: str,
        *,
        snapshot: RemoteSnapshot | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        capture_code: bool = True,
    ) -> None:
        from trenches.runs.code import CodeState, capture_environment, capture_git

        self._server = server
        self._models = models
        self.name = name
        self.snapshot = snapshot
        self.status = "running"
        self._buffer: list[tuple[str, int, float | None, int]] = []
        self._steps: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self.code: CodeState = (
            capture_git() if capture_code else CodeState("unknown", detail="not captured")
        )
        env = capture_environment()
        body = {
            "name": name,
            "snapshot_id": snapshot.id if snapshot is not None else None,
            "params": {k: _value(v) for k, v in (params or {}).items()},
            "tags": {k: _value(v) for k, v in (tags or {}).items()},
            "code": {
                "state": self.code.state,
                "commit": self.code.commit,
                "branch": self.code.branch,
                "diff": base64.b64encode(self.code.diff).decode() if self.code.diff else None,
                "detail": self.code.detail,
            },
            "environment": {
                "python": env.python,
                "platform": env.platform,
                "packages": env.packages,
            },
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        self.id: int = int(server.post("/runs", body)["id"])

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.name!r} {self.status} (remote)>"

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        raise not_offered(f"Run.{attribute}", "run it where the store is")

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        body = {"params": {k: _value(v) for k, v in params.items()}}
        self._server.post(f"/runs/{self.id}/params", body)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._server.post(
            f"/runs/{self.id}/tags", {"tags": {k: _value(v) for k, v in tags.items()}}
        )

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from trenches.runs.tracking import buffer_points

        buffer_points(self._buffer, self._steps, metrics, step)
        if len(self._buffer) >= FLUSH_POINTS or time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Send the buffered metric points now (one transaction on the server)."""
        self._last_flush = time.monotonic()
        while self._buffer:
            points = self._buffer[:FLUSH_POINTS]
            self._server.post(f"/runs/{self.id}/metrics", {"metrics": _points(points)})
            del self._buffer[: len(points)]

    def log_model(
        self, model: Any, name: str, *, X: Any = None, description: str | None = None
    ) -> ModelVersion:
        """Register ``model`` as a new version of ``name``, made by this run."""
        self.flush()
        return self._models.register(model, name, X=X, run=self, description=description)

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Send the last points and the end; tag the commit here when it is in git and
        ``[runs] git_tag`` is on."""
        if self.status != "running":
            return
        from trenches.runs.tracking import tag_commit

        snap = None if self.snapshot is None else (self.snapshot.id, self.snapshot.digest)
        tag = tag_commit(self.code, self.id, self.name, status, snap) if _git_tag() else None
        while len(self._buffer) > FLUSH_POINTS:
            self.flush()
        body = {"status": status, "error": error, "git_tag": tag, "metrics": _points(self._buffer)}
        self._server.post(f"/runs/{self.id}/end", body)
        self._buffer = []
        self.status = status


def _git_tag() -> bool:
    """Whether this project's trenches.toml asks runs to tag their commit."""
    from pathlib import Path

    from trenches.settings import Source

    return Source(None, Path.cwd()).current().git_tag


def _value(value: Any) -> Any:
    """A param's or tag's value as JSON carries it (NumPy scalars as Python ones)."""
    plain = to_json(value)
    return plain if isinstance(plain, str | int | float | bool) or plain is None else str(value)


def _points(points: Sequence[tuple[str, int, float | None, int]]) -> list[dict[str, Any]]:
    return [
        {"key": k, "step": step, "value": v, "timestamp": timestamps.iso(at)}
        for k, step, v, at in points
    ]


class RemoteStore:
    """A store on a team server, with the API of a local :class:`~trenches.Store` for a
    team member's day-to-day work. Asked for what the server does not offer, it raises
    :class:`~trenches.errors.NotOfferedRemotely`, naming what to do instead."""

    is_embedded = False

    def __init__(self, server: Server) -> None:
        self._server = server
        self.datasets = parts.RemoteDatasets(server)
        self.patterns = parts.RemotePatterns(server)
        self.snapshots = parts.RemoteSnapshots(server)
        self.problems = parts.RemoteProblems(server)
        self.runs = parts.RemoteRuns(server)
        self.models = parts.RemoteModels(server)
        self.gates = oversight.RemoteGates(server)
        self.explanations = RemoteExplanations(server)
        self.requests = oversight.RemoteRequests(server)
        self.monitoring = oversight.RemoteMonitoring(server)
        self.retrains = oversight.RemoteRetrains(server)
        self.audit = oversight.RemoteAudit(server)

    @property
    def url(self) -> str:
        return self._server.url

    def __repr__(self) -> str:
        return f"<RemoteStore {self.url}>"

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        raise not_offered(
            f"store.{attribute}",
            "run it where the store is (on the server's machine, or with its database URL)",
        )

    def me(self) -> dict[str, Any]:
        """Who the token signs in as, with their grants."""
        return dict(self._server.get("/me"))

    def run(
        self,
        name: str,
        *,
        snapshot: RemoteSnapshot | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        capture_code: bool = True,
    ) -> RemoteRun:
        """Start a run recorded on the server: ``with store.run("train", snapshot=snap)
        as run:``; the code state and environment are this machine's."""
        return RemoteRun(
            self._server,
            self.models,
            name,
            snapshot=snapshot,
            params=params,
            tags=tags,
            capture_code=capture_code,
        )

    def lineage(self, ref: str) -> Lineage:
        from trenches.lineage import Lineage

        return from_json(Lineage, self._server.get(f"{version_path(ref)}/lineage"))

    def predictions(self, ref: str, patterns: str | None = None) -> pd.DataFrame:
        """The version's predictions beside their patterns, by ``pattern_id`` (a split,
        ``all``, ``problem:SLUG``, or None: every pattern it predicted)."""
        import pandas as pd

        if patterns is not None and not isinstance(patterns, str):
            raise not_offered(
                "predictions(ref, ids)", "name a split, 'all' or 'problem:SLUG', and select"
            )
        rows = list(self._server.pages(f"{version_path(ref)}/predictions", {"patterns": patterns}))
        frame = pd.DataFrame.from_records(rows)
        return frame.set_index("pattern_id") if len(frame) else frame

    # The options of ``Store.evaluate``.
    def evaluate(
        self,
        ref: str,
        patterns: str = "validation",
        *,
        predict: bool = True,
        with_problems: bool = True,
        trusted: bool = False,
        batch_size: int | None = None,
        progress: Any = None,
    ) -> EvaluateResult:
        """Predict what the version lacks of ``patterns`` and of every problem, then
        measure it, on the server."""
        from trenches.evaluation import EvaluateResult

        if not isinstance(patterns, str):
            raise not_offered("evaluate(ref, PatternSet)", "name a split or 'all'")
        if not (predict and with_problems) or trusted:
            raise not_offered(
                "evaluate(predict=False, with_problems=False or trusted=True)",
                "the server predicts the set and every problem, with no model that runs code",
            )
        done = self._server.post(f"{version_path(ref)}/evaluate", {"patterns": patterns})
        return from_json(EvaluateResult, done)

    def compare(self, a: str, b: str, *, problem: str | None = None) -> Comparison:
        """Compare two versions of one model (``trenches compare``)."""
        from trenches.comparison import Comparison, Flips
        from trenches.evaluation import Evaluation

        model_a, version_a = split_ref(a)
        model_b, version_b = split_ref(b)
        if model_a != model_b:
            raise not_offered(
                f"compare({a!r}, {b!r})", "compare two versions of one model over the server"
            )
        params = {"a": version_a, "b": version_b, "problem": problem}
        found = self._server.get(f"/models/{segment(model_a)}/compare", params)
        if found.get("data") is not None:
            raise not_offered(
                f"compare({a!r}, {b!r}) of versions trained on different snapshots",
                "the data changes between them are in `trenches compare --json` on the server",
            )
        task = self.models.get(a).task or ""

        def metrics(side: str, ref: str) -> Evaluation:
            figures = {k: float("nan") if v is None else v for k, v in found[side].items()}
            return Evaluation(ref, found["pattern_set"], found["size"], task, figures)

        return Comparison(
            found["a"],
            found["b"],
            metrics("a_metrics", a),
            metrics("b_metrics", b),
            from_json(Flips, found["overall"]),
            {slug: from_json(Flips, f) for slug, f in found.get("problems", {}).items()},
        )

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_settings(settings: object) -> None:
    """A remote store works with the server's trenches.toml; a local one given to it
    would not be read, so it is refused."""
    if settings is not None:
        raise InvalidInput(
            "a store on a team server uses the server's trenches.toml (its gates, costs "
            "and monitoring); --config / settings= apply to a local store only"
        )
