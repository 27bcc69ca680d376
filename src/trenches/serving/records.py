"""The request log as the rest of trenches reads it: ``store.requests``.

Served requests and feedback are written by the server's
:class:`~trenches.serving.requestlog.RequestLog`; here they are listed, feedback is
added by hand, and requests with a true label become patterns (source ``production``)
of the dataset of the version that served them, and of a problem.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import bindparam, insert, select, update

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read, write
from trenches.errors import Conflict, InvalidInput, NotFound
from trenches.models import formats
from trenches.patterns.datasets import check_source
from trenches.problems import POLARITIES, AddResult
from trenches.serving.feedback import Labels
from trenches.serving.payloads import PayloadError

if TYPE_CHECKING:
    from trenches.store import Store

#: Import notes of patterns made from requests start with this, then a JSON list of
#: [request_id, row] in pattern order: a run cut short between the import and the
#: link to the feedback is finished by the next run instead of importing again.
_NOTE = "from production requests: "

LIST_COLUMNS = (
    "request_id",
    "version",
    "endpoint",
    "n",
    "inputs",
    "outputs",
    "latency_ms",
    "received_at",
    "feedback",
)


@dataclass(frozen=True)
class Feedback:
    """A true label or a rating for one row of a served request."""

    id: int
    request_id: str
    row: int
    label: Any
    rating: float | None
    comment: str | None
    created_at: datetime
    #: The pattern this feedback became (``to_patterns``), once it has.
    pattern_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "row": self.row,
            "label": self.label,
            "rating": self.rating,
            "comment": self.comment,
            "created_at": timestamps.iso(timestamps.to_us(self.created_at)),
            "pattern_id": self.pattern_id,
        }


@dataclass(frozen=True)
class RequestPattern:
    """One row of a served request, as a pattern."""

    request_id: str
    row: int
    pattern_id: int
    #: False when the row had become this pattern before (it was skipped).
    new: bool


@dataclass(frozen=True)
class ToPatterns:
    """What ``to_patterns`` did: the pattern of each labelled row, and the problem."""

    dataset: tuple[str, ...]
    patterns: tuple[RequestPattern, ...]
    problem: str | None
    #: Adding the patterns to the problem, and the backfill that followed.
    problem_result: AddResult | None

    @property
    def created(self) -> tuple[RequestPattern, ...]:
        return tuple(p for p in self.patterns if p.new)

    @property
    def skipped(self) -> tuple[RequestPattern, ...]:
        return tuple(p for p in self.patterns if not p.new)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "datasets": list(self.dataset),
            "created": [
                {"request_id": p.request_id, "row": p.row, "pattern_id": p.pattern_id}
                for p in self.created
            ],
            "skipped": [
                {"request_id": p.request_id, "row": p.row, "pattern_id": p.pattern_id}
                for p in self.skipped
            ],
            "problem": self.problem,
        }
        if self.problem_result is not None:
            r = self.problem_result
            out["problem_added"] = {
                "added": r.added,
                "already": r.already,
                "predicted": r.predicted,
                "versions": r.versions,
                "skipped": [v.to_json() for v in r.skipped],
            }
        return out


def _named(ids: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


class Requests:
    """The request log of a store: ``store.requests``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # --- reading ----------------------------------------------------------------------

    def list(
        self,
        *,
        since: str | datetime | int | None = None,
        until: str | datetime | int | None = None,
        version: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Served requests received in ``[since, until)``, oldest first (with ``limit``,
        the newest ``limit`` of them): request_id, version (name@V), endpoint, n (input
        rows), inputs ({"columns", "data"}), outputs ({"labels", "scores", "values"}),
        latency_ms, received_at (UTC), and feedback (a list of dicts, or None).

        ``version``: a version (``name@3``, ``name@production``) or a model name (all
        its versions).
        """
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
                where.append(r.version_id == self._store.models.get(version).id)
            else:
                if version not in self._store.models.names():
                    raise NotFound(f"no model named {version!r}")
                where.append(m.name == version)
        if limit is not None and limit < 0:
            raise InvalidInput(f"limit {limit} must be 0 or more")
        query = (
            select(
                r.request_id,
                m.name,
                v.version,
                r.endpoint,
                r.n,
                r.inputs,
                r.outputs,
                r.latency_us,
                r.received_at,
            )
            .select_from(
                t.served_requests.join(t.model_versions, r.version_id == v.id).join(
                    t.models, v.model_id == m.id
                )
            )
            .where(*where)
            .order_by(r.received_at.desc(), r.id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        f = t.feedback.c
        with read(self._store.engine) as conn:
            rows = builtins.list(conn.execute(query).cursor.fetchall())
            chosen = query.with_only_columns(r.request_id).subquery()
            feedback = conn.execute(
                select(
                    f.id,
                    f.request_id,
                    f.row,
                    f.label,
                    f.rating,
                    f.comment,
                    f.created_at,
                    f.pattern_id,
                )
                .where(f.request_id.in_(select(chosen.c.request_id)))
                .order_by(f.created_at, f.id)
            ).all()
        rows.reverse()
        columns: builtins.list[Any] = builtins.list(zip(*rows, strict=True)) if rows else [()] * 9
        rid, name, number, endpoint, n, inputs, outputs, latency, received = columns
        by_request: dict[str, builtins.list[dict[str, Any]]] = {}
        for fb in feedback:
            entry = _feedback(fb).to_json()
            del entry["request_id"]
            by_request.setdefault(fb.request_id, []).append(entry)
        return pd.DataFrame(
            {
                "request_id": np.array(rid, dtype=object),
                "version": np.array(
                    [f"{a}@{b}" for a, b in zip(name, number, strict=True)], dtype=object
                ),
                "endpoint": np.array(endpoint, dtype=object),
                "n": np.array(n, dtype=np.int64),
                "inputs": [orjson.loads(x) for x in inputs],
                "outputs": [orjson.loads(x) for x in outputs],
                "latency_ms": np.array(latency, dtype=np.int64) / 1000.0,
                "received_at": pd.to_datetime(
                    np.array(received, dtype=np.int64), unit="us", utc=True
                ),
                "feedback": [by_request.get(x) for x in rid],
            },
            columns=list(LIST_COLUMNS),
        )

    def get_feedback(self, request_id: str) -> builtins.list[Feedback]:
        """The feedback on a request, oldest first."""
        f = t.feedback.c
        with read(self._store.engine) as conn:
            rows = conn.execute(
                select(t.feedback).where(f.request_id == request_id).order_by(f.created_at, f.id)
            ).all()
        return [_feedback(row) for row in rows]

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
        if isinstance(row, bool) or not isinstance(row, int | np.integer) or row < 0:
            raise InvalidInput(f"row {row!r} must be a row number of the request (0, 1, ...)")
        if label is None and rating is None:
            raise InvalidInput("give a label (the true answer) or a rating")
        if rating is not None:
            try:
                rating = float(rating)
            except (TypeError, ValueError):
                raise InvalidInput(f"rating {rating!r} is not a number") from None
            if not math.isfinite(rating):
                raise InvalidInput(f"rating {rating!r} is not a finite number")
        r, v = t.served_requests.c, t.model_versions.c
        with read(self._store.engine) as conn:
            found = conn.execute(
                select(r.n, v.dataset_id, v.signature)
                .join(t.model_versions, r.version_id == v.id)
                .where(r.request_id == request_id)
            ).first()
        if found is None:
            raise NotFound(
                f"no request {request_id!r} in the log (a request answered a moment ago may "
                "still be on its way to the store)"
            )
        if row >= found.n:
            raise InvalidInput(
                f"request {request_id} has {found.n} row{'s' if found.n != 1 else ''}; "
                f"there is no row {row}"
            )
        label_type = None
        if label is not None and found.dataset_id is not None:
            ds = self._store.datasets.by_id(found.dataset_id)
            label_type = ds.label_type
            if ds.label_type is not None:
                try:
                    label = _plain(ds.coerce_label(label))
                except InvalidInput as e:
                    raise InvalidInput(
                        f"the label {label!r} does not fit dataset {ds.name!r} "
                        f"({ds.label_type} labels): {e.reason}"
                    ) from None
        if label is not None:
            classes = formats.Signature.from_json(found.signature).classes
            try:
                label = Labels(classes, label_type).check(label)
            except PayloadError as e:
                raise InvalidInput(f"request {request_id}: {e.message}") from None
        created = timestamps.now_us()
        with write(self._store.engine) as conn:
            fid = conn.execute(
                insert(t.feedback).values(
                    request_id=request_id,
                    row=int(row),
                    label=None if label is None else orjson.dumps(label).decode(),
                    rating=rating,
                    comment=comment,
                    created_at=created,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        return Feedback(
            int(fid),
            request_id,
            int(row),
            label,
            rating,
            comment,
            timestamps.from_us(created),
            None,
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
        ids = builtins.list(dict.fromkeys(str(i) for i in request_ids))
        if not ids:
            raise InvalidInput("name at least one request id")
        if polarity not in POLARITIES:
            raise InvalidInput(f"polarity {polarity!r} must be positive or negative")
        check_source(source)
        r, f, v = t.served_requests.c, t.feedback.c, t.model_versions.c
        with read(self._store.engine) as conn:
            requests = {
                row.request_id: row
                for row in conn.execute(
                    select(r.request_id, r.version_id, r.n, r.inputs, v.dataset_id)
                    .join(t.model_versions, r.version_id == v.id)
                    .where(r.request_id.in_(ids))
                )
            }
            feedback = conn.execute(
                select(f.id, f.request_id, f.row, f.label, f.pattern_id)
                .where(f.request_id.in_(ids))
                .order_by(f.created_at, f.id)
            ).all()
        unknown = [i for i in ids if i not in requests]
        if unknown:
            raise InvalidInput(
                f"no request {_named(unknown)} in the log; nothing was stored"
                if len(unknown) == 1
                else f"no requests {_named(unknown)} in the log; nothing was stored"
            )
        # The newest labelled feedback of each row, and the pattern the row became.
        labelled: dict[tuple[str, int], tuple[int, str]] = {}
        made: dict[tuple[str, int], int] = {}
        for fb in feedback:
            key = (fb.request_id, fb.row)
            if fb.label is not None:
                labelled[key] = (fb.id, fb.label)
            if fb.pattern_id is not None:
                made[key] = fb.pattern_id
        with_label = {rid for rid, _ in labelled}
        bare = [i for i in ids if i not in with_label]
        if bare:
            raise InvalidInput(
                f"request{'s' if len(bare) > 1 else ''} {_named(bare)} "
                f"{'have' if len(bare) > 1 else 'has'} no feedback with a label; add one "
                "(trenches requests feedback ID --label ...) first; nothing was stored"
            )
        order = {rid: k for k, rid in enumerate(ids)}
        keys = sorted(labelled, key=lambda k: (order[k[0]], k[1]))
        for rid, row in keys:
            if row >= requests[rid].n:
                raise InvalidInput(
                    f"request {rid} has {requests[rid].n} rows, but its feedback is for "
                    f"row {row}; nothing was stored"
                )
        no_dataset = [rid for rid in ids if requests[rid].dataset_id is None]
        if no_dataset:
            raise InvalidInput(
                f"the versions that served {_named(no_dataset)} have no dataset to add "
                "patterns to; nothing was stored"
            )
        datasets = {
            d: self._store.datasets.by_id(d)
            for d in sorted({x.dataset_id for x in requests.values()})
        }
        the_problem = None
        if problem is not None:
            the_problem = self._store.problems.get(problem)
            other = [d.name for d in datasets.values() if d.name != the_problem.dataset]
            if other:
                raise InvalidInput(
                    f"problem {problem!r} is about dataset {the_problem.dataset!r}, but some "
                    f"requests were served by versions of {_named(other)}; nothing was stored"
                )
            opposite = set(
                the_problem.patterns("negative" if polarity == "positive" else "positive")
            )
            clash = sorted(p for p in made.values() if p in opposite)
            if clash:
                raise Conflict(
                    f"pattern {clash[0]} (from request feedback) is a "
                    f"{'negative' if polarity == 'positive' else 'positive'} pattern of "
                    f"{problem!r} already; nothing was stored"
                )

        pending = [k for k in keys if k not in made]
        found = self._imported_before(pending, [d.id for d in datasets.values()], source)
        to_import = [k for k in pending if k not in found]
        frames = {
            d: self._frame(
                ds, [k for k in to_import if requests[k[0]].dataset_id == d], requests, labelled
            )
            for d, ds in datasets.items()
        }
        # Everything is checked: now the imports, one per dataset.
        new: dict[tuple[str, int], int] = dict(found)
        for d, (frame, rows) in frames.items():
            if not rows:
                continue
            note = _NOTE + orjson.dumps([[rid, row] for rid, row in rows]).decode()
            try:
                done = datasets[d].add(frame, source=source, labelled_by=labelled_by, note=note)
            except InvalidInput as e:
                if e.row is None or e.file is not None:
                    raise
                rid, row = rows[e.row - 1]
                where = f', column "{e.field}"' if e.field else ""
                raise InvalidInput(
                    f"request {rid}, row {row}{where}: {e.reason}; nothing was stored"
                ) from None
            for k, pid in zip(rows, done.pattern_ids, strict=True):
                new[k] = pid
        if new:
            with write(self._store.engine) as conn:
                conn.execute(
                    update(t.feedback)
                    .where(f.id == bindparam("fid"))
                    .values(pattern_id=bindparam("pid")),
                    [{"fid": labelled[k][0], "pid": pid} for k, pid in new.items()],
                )
        patterns = tuple(
            RequestPattern(
                rid,
                row,
                new[(rid, row)] if (rid, row) in new else made[(rid, row)],
                (rid, row) in new,
            )
            for rid, row in keys
        )
        problem_result = None
        if the_problem is not None:
            pids = [p.pattern_id for p in patterns]
            problem_result = self._store.problems.add(
                the_problem.slug,
                positive=pids if polarity == "positive" else (),
                negative=pids if polarity == "negative" else (),
                progress=progress,
            )
        return ToPatterns(
            tuple(ds.name for ds in datasets.values()),
            patterns,
            problem,
            problem_result,
        )

    def _frame(
        self,
        dataset: Any,
        keys: builtins.list[tuple[str, int]],
        requests: dict[str, Any],
        labelled: dict[tuple[str, int], tuple[int, str]],
    ) -> tuple[pd.DataFrame, builtins.list[tuple[str, int]]]:
        """The rows ``keys`` of their requests as a frame of inputs and labels, checked
        against the dataset's columns and label type before anything is stored."""
        if not keys:
            return pd.DataFrame(), []
        names = dataset.schema.names if dataset.schema is not None else None
        parsed: dict[str, dict[str, Any]] = {}
        records = []
        for rid, row in keys:
            if rid not in parsed:
                parsed[rid] = orjson.loads(requests[rid].inputs)
            inputs = parsed[rid]
            if inputs.get("error") or not inputs.get("columns"):
                raise InvalidInput(
                    f"request {rid}: its inputs were not logged ({inputs.get('error')}); "
                    "nothing was stored"
                )
            columns = inputs["columns"]
            if names is not None and sorted(columns) != sorted(names):
                missing = [c for c in names if c not in columns]
                extra = [c for c in columns if c not in names]
                raise InvalidInput(
                    f"request {rid}: its inputs do not match the columns of dataset "
                    f"{dataset.name!r}"
                    + (f" (missing {', '.join(missing)})" if missing else "")
                    + (f" (not in the dataset: {', '.join(extra)})" if extra else "")
                    + "; nothing was stored"
                )
            record = dict(zip(columns, inputs["data"][row], strict=True))
            label = orjson.loads(labelled[(rid, row)][1])
            if dataset.label_type is not None:
                try:
                    label = _plain(dataset.coerce_label(label))
                except InvalidInput as e:
                    raise InvalidInput(
                        f"request {rid}, row {row}: the feedback's label {label!r}: {e.reason}; "
                        "nothing was stored"
                    ) from None
            if dataset.label_column in record:
                raise InvalidInput(
                    f"request {rid}: an input is named like the label "
                    f"{dataset.label_column!r}; nothing was stored"
                )
            record[dataset.label_column] = label
            records.append(record)
        return pd.DataFrame.from_records(records), keys

    def _imported_before(
        self, keys: builtins.list[tuple[str, int]], dataset_ids: builtins.list[int], source: str
    ) -> dict[tuple[str, int], int]:
        """Rows imported by an earlier run that stopped before linking them to their
        feedback: found by the note on the import."""
        if not keys:
            return {}
        b, p = t.import_batches.c, t.patterns.c
        wanted = set(keys)
        out: dict[tuple[str, int], int] = {}
        with read(self._store.engine) as conn:
            batches = conn.execute(
                select(b.id, b.note).where(
                    b.dataset_id.in_(dataset_ids),
                    b.kind == "import",
                    b.source == source,
                    b.note.like(_NOTE + "%"),
                )
            ).all()
            for batch_id, note in batches:
                try:
                    rows = [(str(x), int(y)) for x, y in orjson.loads(note[len(_NOTE) :])]
                except (orjson.JSONDecodeError, TypeError, ValueError):
                    continue
                if not wanted.intersection(rows):
                    continue
                first = conn.execute(
                    select(p.id).where(p.batch_id == batch_id).order_by(p.id).limit(1)
                ).scalar_one()
                for k, key in enumerate(rows):
                    if key in wanted:
                        out.setdefault(key, int(first) + k)
        return out


def _feedback(row: Any) -> Feedback:
    return Feedback(
        id=int(row.id),
        request_id=row.request_id,
        row=int(row.row),
        label=None if row.label is None else orjson.loads(row.label),
        rating=row.rating,
        comment=row.comment,
        created_at=timestamps.from_us(row.created_at),
        pattern_id=row.pattern_id,
    )
