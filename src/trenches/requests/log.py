"""The request log as the rest of trenches reads it: ``store.requests``.

Served requests and feedback are written by the server's
:class:`~trenches.serving.requestlog.RequestLog`, in the records of
:mod:`trenches.requests.records`; here they are listed (a DataFrame of requests, for
people), read as a window of columns (for monitoring), given feedback by hand, and
made patterns.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Select, func, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import InvalidInput, NotFound
from trenches.json_form import to_json
from trenches.requests import feedback as feedback_of
from trenches.requests import stored
from trenches.requests import window as windows
from trenches.requests.records import json_column

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from trenches.models.registry import Models
    from trenches.patterns.datasets import Datasets
    from trenches.problems import Problems
    from trenches.requests.feedback import Feedback
    from trenches.requests.patterns import ToPatterns
    from trenches.requests.window import RequestWindow, WindowLabels, WindowPart, WindowParts

LIST_COLUMNS = (
    "request_id",
    "version",
    "endpoint",
    "n",
    "inputs",
    "outputs",
    "latency_ms",
    "received_at",
    "arm",
    "shadow_of",
    "feedback",
)

_SECOND = 1_000_000
#: The widths of :meth:`Requests.traffic`'s buckets it chooses from (microseconds).
TRAFFIC_WIDTHS = tuple(
    n * _SECOND for n in (1, 10, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
)


class Requests:
    """The request log of a store: ``store.requests``."""

    def __init__(
        self, engine: Engine, models: Models, datasets: Datasets, problems: Callable[[], Problems]
    ) -> None:
        self._engine = engine
        self._models = models
        self._datasets = datasets
        # Asked only when requests become patterns of a problem: a server reading its
        # log loads no problem database.
        self._problems = problems

    # --- reading ----------------------------------------------------------------------

    def _query(
        self,
        since: str | datetime | int | None,
        until: str | datetime | int | None,
        version: str | None,
    ) -> Select[Any]:
        """The served requests received in ``[since, until)`` by ``version`` (a
        version, or a model name: all its versions), joined to their versions and
        models; no columns chosen, no order."""
        r, v, m = t.served_requests.c, t.model_versions.c, t.models.c
        where: builtins.list[Any] = []
        start = timestamps.parse(since, what="since")
        end = timestamps.parse(until, what="until")
        if start is not None:
            where.append(r.received_at >= start)
        if end is not None:
            where.append(r.received_at < end)
        if version is not None:
            if "@" in version:
                where.append(r.version_id == self._models.get(version).id)
            else:
                if version not in self._models.names():
                    raise NotFound(f"no model named {version!r}")
                where.append(m.name == version)
        joined = t.served_requests.join(t.model_versions, r.version_id == v.id).join(
            t.models, v.model_id == m.id
        )
        return select(r.id).select_from(joined).where(*where)

    def list(
        self,
        *,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        version: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> pd.DataFrame:
        """Served requests received in ``[since, until)``, oldest first (with ``limit``,
        the newest ``limit`` of them, past the newest ``offset``): request_id, version
        (name@V), endpoint, n (input rows), inputs ({"columns", "data"}), outputs
        ({"labels", "scores", "values"}), latency_ms, received_at (UTC), arm (the traffic
        policy's arm that answered, or None), shadow_of (for an answer given in the
        shadow of another, the request id the caller got) and feedback (a list of dicts,
        or None).

        ``version``: a version (``name@3``, ``name@production``) or a model name (all
        its versions).
        """
        r, v, m = t.served_requests.c, t.model_versions.c, t.models.c
        chosen = self._query(since, until, version)
        if limit is not None and limit < 0:
            raise InvalidInput(f"limit {limit} must be 0 or more")
        if offset < 0:
            raise InvalidInput(f"offset {offset} must be 0 or more")
        query = chosen.with_only_columns(
            r.id,
            r.request_id,
            m.name,
            v.version,
            r.endpoint,
            r.n,
            r.inputs,
            r.outputs,
            r.latency_us,
            r.received_at,
            r.arm,
            r.shadow_of,
        ).order_by(r.received_at.desc(), r.id.desc())
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        f = t.feedback.c
        with read(self._engine) as conn:
            found = stored.with_bodies(conn, conn.execute(query).all())
            rows = [tuple(vars(row).values())[1:] for row in found]  # without the id
            ids = query.with_only_columns(r.request_id).subquery()
            feedback = conn.execute(
                select(*(f[c] for c in feedback_of.COLUMNS))
                .where(f.request_id.in_(select(ids.c.request_id)))
                .order_by(f.created_at, f.id)
            ).all()
        rows.reverse()
        return _listed(rows, feedback)

    def count(
        self,
        *,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        version: str | None = None,
    ) -> int:
        """How many requests :meth:`list` would list without a limit."""
        chosen = self._query(since, until, version).subquery()
        with read(self._engine) as conn:
            return int(conn.execute(select(func.count()).select_from(chosen)).scalar_one())

    def traffic(
        self,
        *,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        version: str | None = None,
        every: int | None = None,
        buckets: int = 48,
    ) -> pd.DataFrame:
        """Request volume and latency over time, one row per bucket of ``every``
        microseconds that holds a request (answers given in a shadow left out), oldest
        first: start (UTC), requests, rows (input rows), latency_ms_mean, latency_ms_max.
        ``every`` None: the smallest of :data:`TRAFFIC_WIDTHS` that cuts the requests'
        span into at most ``buckets``.
        Counted by the database (one GROUP BY), whatever the size of the log."""
        import pandas as pd

        r = t.served_requests.c
        # What callers asked: an answer given in another's shadow is not a request.
        chosen = self._query(since, until, version).where(r.shadow_of.is_(None))
        if every is None:
            with read(self._engine) as conn:
                first, last = conn.execute(
                    chosen.with_only_columns(func.min(r.received_at), func.max(r.received_at))
                ).one()
            span = 0 if first is None else int(last) - int(first)
            every = next((w for w in TRAFFIC_WIDTHS if span < w * buckets), TRAFFIC_WIDTHS[-1])
        if every < 1:
            raise InvalidInput(f"every {every} must be at least 1 microsecond")
        start = (r.received_at - r.received_at % every).label("start")
        query = (
            chosen.with_only_columns(
                start,
                func.count(),
                func.sum(r.n),
                func.avg(r.latency_us),
                func.max(r.latency_us),
            )
            .group_by(start)
            .order_by(start)
        )
        with read(self._engine) as conn:
            rows = conn.execute(query).all()
        columns = ["start", "requests", "rows", "latency_ms_mean", "latency_ms_max"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["start"] = pd.to_datetime(frame["start"].astype("int64"), unit="us", utc=True)
        for name in ("requests", "rows"):
            frame[name] = frame[name].astype("int64")
        for name in ("latency_ms_mean", "latency_ms_max"):
            frame[name] = frame[name].astype("float64") / 1000
        return frame

    def served_by(self, request_id: str) -> str:
        """The version (``name@V``) that answered ``request_id``."""
        r, v, m = t.served_requests.c, t.model_versions.c, t.models.c
        with read(self._engine) as conn:
            found = conn.execute(
                select(m.name, v.version)
                .select_from(
                    t.served_requests.join(t.model_versions, r.version_id == v.id).join(
                        t.models, v.model_id == m.id
                    )
                )
                .where(r.request_id == request_id)
            ).first()
        if found is None:
            raise NotFound(
                f"no request {request_id!r} in the log (a request answered a moment ago may "
                "still be on its way to the store)"
            )
        return f"{found.name}@{found.version}"

    def window(
        self,
        *,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        version: str | None = None,
        numbers_apart: bool = False,
    ) -> RequestWindow:
        """The requests received in ``[since, until)`` (by ``version``: a version, or a
        model name for all its versions) as columns, one entry per input row, oldest
        first: the inputs as one DataFrame, and for each row its request, its number in
        the request, the version that answered, when, the answer, and the label of its
        newest labelled feedback. What monitoring reads; ``list`` is for people.
        ``numbers_apart``: the floating-point inputs are left out of the DataFrame and
        read a column at a time (``RequestWindow.numbers``), as a drift check does."""
        v, m = t.model_versions.c, t.models.c
        query = self._query(since, until, version)
        start = timestamps.parse(since, what="since")
        end = timestamps.parse(until, what="until")
        versions = select(v.id).join(t.models, v.model_id == m.id)
        if version is not None:
            versions = versions.where(
                v.id == self._models.get(version).id if "@" in version else m.name == version
            )
        with read(self._engine) as conn:
            version_ids = [int(i) for i in conn.execute(versions).scalars()]
            return windows.read_window(
                conn, query, version_ids, start, end, numbers_apart=numbers_apart
            )

    def window_rows(
        self,
        *,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        version: str | None = None,
    ) -> int:
        """The input rows of the requests received in ``[since, until)`` by ``version``,
        as their requests counted them (one query, no row read): what decides how a
        drift check reads the window."""
        r = t.served_requests.c
        query = self._query(since, until, version).with_only_columns(func.sum(r.n))
        with read(self._engine) as conn:
            return int(conn.execute(query).scalar_one() or 0)

    def window_parts(
        self,
        *,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        version: str | None = None,
        most: int = 1_000_000,
    ) -> WindowParts:
        """The window :meth:`window` reads with ``numbers_apart``, as parts of about
        ``most`` rows, each read by :meth:`part_windows` (on a worker of a cluster, or
        one after the other): for a drift check of a window larger than memory."""
        query, version_ids, start, end = self._window(since, until, version)
        with read(self._engine) as conn:
            return windows.read_parts(conn, query, version_ids, start, end, most)

    def part_windows(
        self, part: WindowPart, feedback: WindowLabels, *, rows: int = 250_000
    ) -> Iterator[RequestWindow]:
        """The rows of one part of :meth:`window_parts`, about ``rows`` at a time."""
        with read(self._engine) as conn:
            yield from windows.part_windows(conn, part, feedback, rows)

    def _window(
        self,
        since: str | datetime | int | None,
        until: str | datetime | int | None,
        version: str | None,
    ) -> tuple[Select[Any], builtins.list[int], int | None, int | None]:
        v, m = t.model_versions.c, t.models.c
        query = self._query(since, until, version)
        start = timestamps.parse(since, what="since")
        end = timestamps.parse(until, what="until")
        versions = select(v.id).join(t.models, v.model_id == m.id)
        if version is not None:
            versions = versions.where(
                v.id == self._models.get(version).id if "@" in version else m.name == version
            )
        with read(self._engine) as conn:
            version_ids = [int(i) for i in conn.execute(versions).scalars()]
        return query, version_ids, start, end

    def get_feedback(self, request_id: str) -> builtins.list[Feedback]:
        """The feedback on a request, oldest first."""
        return feedback_of.of_request(self._engine, request_id)

    # --- feedback ---------------------------------------------------------------------

    def feedback(
        self,
        request_id: str,
        *,
        row: int = 0,
        label: Any = None,
        rating: float | None = None,
        comment: str | None = None,
    ) -> Feedback:
        """Attach a true label or a rating (and a comment) to row ``row`` of a logged
        request. The label is checked against the dataset of the version that served
        the request, and stored as that dataset's label type; it must be one of that
        version's classes (a classifier) or a finite number (a regressor), as the
        server's ``POST /feedback`` asks."""
        return feedback_of.add(
            self._engine,
            self._datasets,
            request_id,
            row=row,
            label=label,
            rating=rating,
            comment=comment,
        )

    # --- feedback into data -----------------------------------------------------------

    def to_patterns(
        self,
        request_ids: Sequence[str],
        *,
        problem: str | None = None,
        polarity: str = "positive",
        source: str = "production",
        labelled_by: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ToPatterns:
        """Make each row of these requests that has a labelled feedback (the newest
        one counts) a pattern of the dataset of the version that served it: the logged
        inputs with the feedback's label, source ``production``. With ``problem``, the
        patterns join that problem (as ``polarity``) and every version predicts them.

        All or nothing: an unknown request id, or a request without a labelled
        feedback, raises ``InvalidInput`` naming them, and nothing is stored. Rows that
        are patterns already are skipped (and reported), so running it twice adds
        nothing the second time.
        """
        from trenches.requests.patterns import to_patterns

        return to_patterns(
            self._engine,
            self._datasets,
            self._problems(),
            request_ids,
            problem=problem,
            polarity=polarity,
            source=source,
            labelled_by=labelled_by,
            progress=progress,
        )


def _listed(rows: Sequence[Any], feedback: Sequence[Any]) -> pd.DataFrame:
    """The frame ``list`` returns, of requests rows (oldest first) and their feedback."""
    import pandas as pd

    columns: builtins.list[Any] = builtins.list(zip(*rows, strict=True)) if rows else [()] * 11
    rid, name, number, endpoint, n, inputs, outputs, latency, received, arm, shadow_of = columns
    by_request: dict[str, builtins.list[dict[str, Any]]] = {}
    for fb in feedback_of.from_rows(feedback):
        entry = to_json(fb)
        del entry["request_id"]
        by_request.setdefault(fb.request_id, []).append(entry)
    from trenches.patterns.frames import no_gc

    with no_gc():
        return pd.DataFrame(
            {
                "request_id": np.array(rid, dtype=object),
                "version": np.array(
                    [f"{a}@{b}" for a, b in zip(name, number, strict=True)], dtype=object
                ),
                "endpoint": np.array(endpoint, dtype=object),
                "n": np.array(n, dtype=np.int64),
                "inputs": json_column(inputs),
                "outputs": json_column(outputs),
                "latency_ms": np.array(latency, dtype=np.int64) / 1000.0,
                "received_at": pd.to_datetime(
                    np.array(received, dtype=np.int64), unit="us", utc=True
                ),
                "arm": np.array(arm, dtype=object),
                "shadow_of": np.array(shadow_of, dtype=object),
                "feedback": [by_request.get(x) for x in rid],
            },
            columns=builtins.list(LIST_COLUMNS),
        )
