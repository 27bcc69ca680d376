"""Requests made patterns: each row of a logged request with a labelled feedback
becomes a pattern (source ``production``) of the dataset of the version that served
it, and of a problem if one is named.

All or nothing: everything is read and checked before the first pattern is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import bindparam, select, update

from trenches.db import schema as t
from trenches.db.engine import read, write
from trenches.errors import Conflict, InvalidInput
from trenches.json_form import json_shape
from trenches.names import check_source
from trenches.problems import POLARITIES, AddResult
from trenches.requests import stored
from trenches.requests.records import json_column

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from trenches.patterns.datasets import Dataset, Datasets
    from trenches.problems import Problem, Problems

#: Import notes of patterns made from requests start with this, then a JSON list of
#: [request_id, row] in pattern order: a run cut short between the import and the
#: link to the feedback is finished by the next run instead of importing again.
_NOTE = "from production requests: "

Key = tuple[str, int]  # (request id, row)


@dataclass(frozen=True)
class RequestPattern:
    """One row of a served request, as a pattern."""

    request_id: str
    row: int
    pattern_id: int
    #: False when the row had become this pattern before (it was skipped).
    new: bool


def _rows(patterns: Sequence[RequestPattern]) -> list[dict[str, Any]]:
    return [
        {"request_id": p.request_id, "row": p.row, "pattern_id": p.pattern_id} for p in patterns
    ]


def _added(r: AddResult) -> dict[str, Any]:
    return {
        "added": r.added,
        "already": r.already,
        "predicted": r.predicted,
        "versions": r.versions,
        "skipped": r.skipped,
    }


@json_shape(
    rename={"dataset": "datasets", "problem_result": "problem_added"},
    omit=("patterns",),
    omit_defaults=("problem_result",),
    computed={"created": lambda r: _rows(r.created), "skipped": lambda r: _rows(r.skipped)},
    encode={"problem_result": _added},
    order=("datasets", "created", "skipped", "problem"),
)
@dataclass(frozen=True)
class ToPatterns:
    """What ``to_patterns`` did: the pattern of each labelled row, and the problem."""

    dataset: tuple[str, ...]
    patterns: tuple[RequestPattern, ...]
    problem: str | None
    #: Adding the patterns to the problem, and the backfill that followed (None, and
    #: left out of the JSON form, without a problem).
    problem_result: AddResult | None = None

    @property
    def created(self) -> tuple[RequestPattern, ...]:
        return tuple(p for p in self.patterns if p.new)

    @property
    def skipped(self) -> tuple[RequestPattern, ...]:
        return tuple(p for p in self.patterns if not p.new)


def _named(ids: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class _Asked:
    """What the log holds on the requests asked for, read at once."""

    ids: list[str]
    #: Each request: request_id, version_id, n, inputs (JSON text), dataset_id.
    requests: dict[str, Any]
    #: The newest labelled feedback of each row: its id and its label (JSON text).
    labelled: dict[Key, tuple[int, str]]
    #: The pattern each row became, for the rows that became one.
    made: dict[Key, int]

    @property
    def keys(self) -> list[Key]:
        """The labelled rows, in the order the requests were asked for."""
        order = {rid: k for k, rid in enumerate(self.ids)}
        return sorted(self.labelled, key=lambda k: (order[k[0]], k[1]))


def _read(engine: Engine, ids: list[str]) -> _Asked:
    r, f, v = t.served_requests.c, t.feedback.c, t.model_versions.c
    with read(engine) as conn:
        found = conn.execute(
            select(r.id, r.request_id, r.version_id, r.n, r.inputs, v.dataset_id)
            .join(t.model_versions, r.version_id == v.id)
            .where(r.request_id.in_(ids))
        ).all()
        requests = {row.request_id: row for row in stored.with_bodies(conn, found)}
        feedback = conn.execute(
            select(f.id, f.request_id, f.row, f.label, f.pattern_id)
            .where(f.request_id.in_(ids))
            .order_by(f.created_at, f.id)
        ).all()
    labelled: dict[Key, tuple[int, str]] = {}
    made: dict[Key, int] = {}
    for fb in feedback:
        key = (fb.request_id, fb.row)
        if fb.label is not None:
            labelled[key] = (fb.id, fb.label)
        if fb.pattern_id is not None:
            made[key] = fb.pattern_id
    return _Asked(ids, requests, labelled, made)


def _check(asked: _Asked) -> None:
    """Every request is logged, has a labelled feedback on a row it has, and was
    served by a version with a dataset."""
    ids, requests = asked.ids, asked.requests
    unknown = [i for i in ids if i not in requests]
    if unknown:
        raise InvalidInput(
            f"no request {_named(unknown)} in the log; nothing was stored"
            if len(unknown) == 1
            else f"no requests {_named(unknown)} in the log; nothing was stored"
        )
    with_label = {rid for rid, _ in asked.labelled}
    bare = [i for i in ids if i not in with_label]
    if bare:
        raise InvalidInput(
            f"request{'s' if len(bare) > 1 else ''} {_named(bare)} "
            f"{'have' if len(bare) > 1 else 'has'} no feedback with a label; add one "
            "(trenches requests feedback ID --label ...) first; nothing was stored"
        )
    for rid, row in asked.keys:
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


def _the_problem(
    problems: Problems, problem: str, polarity: str, datasets: dict[int, Dataset], asked: _Asked
) -> Problem:
    """Problem ``problem``, if the patterns can join it as ``polarity``."""
    the_problem = problems.get(problem)
    other = [d.name for d in datasets.values() if d.name != the_problem.dataset]
    if other:
        raise InvalidInput(
            f"problem {problem!r} is about dataset {the_problem.dataset!r}, but some "
            f"requests were served by versions of {_named(other)}; nothing was stored"
        )
    opposite = "negative" if polarity == "positive" else "positive"
    theirs = set(the_problem.patterns(opposite))
    clash = sorted(p for p in asked.made.values() if p in theirs)
    if clash:
        raise Conflict(
            f"pattern {clash[0]} (from request feedback) is a {opposite} pattern of "
            f"{problem!r} already; nothing was stored"
        )
    return the_problem


# The parts it reads and writes, then the options of ``store.requests.to_patterns``.
def to_patterns(  # noqa: PLR0913
    engine: Engine,
    known: Datasets,
    problems: Problems,
    request_ids: Sequence[str],
    *,
    problem: str | None,
    polarity: str,
    source: str,
    labelled_by: str | None,
    progress: Callable[[int], None] | None,
) -> ToPatterns:
    """See :meth:`trenches.requests.log.Requests.to_patterns`."""
    ids = list(dict.fromkeys(str(i) for i in request_ids))
    if not ids:
        raise InvalidInput("name at least one request id")
    if polarity not in POLARITIES:
        raise InvalidInput(f"polarity {polarity!r} must be positive or negative")
    check_source(source)
    asked = _read(engine, ids)
    _check(asked)
    datasets = {d: known.by_id(d) for d in sorted({x.dataset_id for x in asked.requests.values()})}
    the_problem = None
    if problem is not None:
        the_problem = _the_problem(problems, problem, polarity, datasets, asked)
    new = _import(engine, asked, datasets, source, labelled_by)
    if new:
        f = t.feedback.c
        with write(engine) as conn:
            conn.execute(
                update(t.feedback)
                .where(f.id == bindparam("fid"))
                .values(pattern_id=bindparam("pid")),
                [{"fid": asked.labelled[k][0], "pid": pid} for k, pid in new.items()],
            )
    patterns = tuple(
        RequestPattern(
            rid,
            row,
            new[(rid, row)] if (rid, row) in new else asked.made[(rid, row)],
            (rid, row) in new,
        )
        for rid, row in asked.keys
    )
    problem_result = None
    if the_problem is not None:
        pids = [p.pattern_id for p in patterns]
        problem_result = problems.add(
            the_problem.slug,
            positive=pids if polarity == "positive" else (),
            negative=pids if polarity == "negative" else (),
            progress=progress,
        )
    return ToPatterns(tuple(ds.name for ds in datasets.values()), patterns, problem, problem_result)


def _import(
    engine: Engine,
    asked: _Asked,
    datasets: dict[int, Dataset],
    source: str,
    labelled_by: str | None,
) -> dict[Key, int]:
    """Import the labelled rows that are no pattern yet, one import per dataset (all
    checked first); returns the pattern of each (imported now, or by a run cut short)."""
    pending = [k for k in asked.keys if k not in asked.made]
    new = _imported_before(engine, pending, [d.id for d in datasets.values()], source)
    to_import = [k for k in pending if k not in new]
    frames = {
        d: _frame(ds, [k for k in to_import if asked.requests[k[0]].dataset_id == d], asked)
        for d, ds in datasets.items()
    }
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
        new.update(zip(rows, done.pattern_ids, strict=True))
    return new


def _frame(dataset: Dataset, keys: list[Key], asked: _Asked) -> tuple[pd.DataFrame, list[Key]]:
    """The rows ``keys`` of their requests as a frame of inputs and labels, checked
    against the dataset's columns and label type before anything is stored."""
    import pandas as pd

    if not keys:
        return pd.DataFrame(), []
    rids = list(dict.fromkeys(rid for rid, _ in keys))
    inputs = dict(zip(rids, json_column(asked.requests[r].inputs for r in rids), strict=True))
    labels = json_column(asked.labelled[k][1] for k in keys)
    records = []
    for (rid, row), label in zip(keys, labels, strict=True):
        columns = _columns(dataset, rid, inputs[rid])
        record = dict(zip(columns, inputs[rid]["data"][row], strict=True))
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


def _columns(dataset: Dataset, rid: str, inputs: dict[str, Any]) -> list[str]:
    """The columns of a request's logged inputs, if they are the dataset's."""
    if inputs.get("error") or not inputs.get("columns"):
        raise InvalidInput(
            f"request {rid}: its inputs were not logged ({inputs.get('error')}); nothing was stored"
        )
    columns: list[str] = inputs["columns"]
    names = dataset.schema.names if dataset.schema is not None else None
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
    return columns


def _imported_before(
    engine: Engine, keys: list[Key], dataset_ids: list[int], source: str
) -> dict[Key, int]:
    """Rows imported by an earlier run that stopped before linking them to their
    feedback: found by the note on the import."""
    if not keys:
        return {}
    b = t.import_batches.c
    wanted = set(keys)
    out: dict[Key, int] = {}
    with read(engine) as conn:
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
            first = conn.execute(select(b.first_pattern_id).where(b.id == batch_id)).scalar_one()
            for k, key in enumerate(rows):
                if key in wanted:
                    out.setdefault(key, int(first) + k)
    return out
