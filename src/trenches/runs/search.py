"""Finding runs: by id, or by a filter over params, tags, metrics and attributes."""

from __future__ import annotations

import builtins
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Float, and_, cast, select
from sqlalchemy.sql import ColumnElement

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import InvalidInput, NotFound
from trenches.json_form import json_shape

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_CLAUSE = re.compile(
    r"""^\s*(?P<kind>params|param|metrics|metric|tags|tag|attributes|attribute|run)
        \.(?P<key>`[^`]+`|"[^"]+"|[A-Za-z0-9_.\-/:@\[\]]+)
        \s*(?P<op>=|==|!=|<>|<=|>=|<|>|like|LIKE)\s*
        (?P<value>'(?:[^']|'')*'|"[^"]*"|[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$""",
    re.VERBOSE,
)
_ATTRIBUTES = {
    "id": t.runs.c.id,
    "name": t.runs.c.name,
    "status": t.runs.c.status,
    "started_at": t.runs.c.started_at,
    "ended_at": t.runs.c.ended_at,
    "snapshot": t.runs.c.snapshot_id,
    "git_commit": t.runs.c.git_commit,
    "git_state": t.runs.c.git_state,
}


def _git(run: RunInfo) -> dict[str, str | None]:
    return {
        "state": run.git_state,
        "commit": run.git_commit,
        "branch": run.git_branch,
        "tag": run.git_tag,
        "diff_sha256": run.git_diff_sha256,
    }


@json_shape(
    rename={"snapshot_id": "snapshot", "environment_id": "environment"},
    omit=("git_state", "git_commit", "git_branch", "git_tag", "git_diff_sha256"),
    computed={"git": _git},
    order=("id", "name", "status", "started_at", "ended_at", "snapshot", "error", "git"),
)
@dataclass(frozen=True)
class RunInfo:
    """A stored run: what it was given, what it measured, what it ran with."""

    id: int
    name: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    snapshot_id: int | None
    error: str | None
    git_state: str
    git_commit: str | None
    git_branch: str | None
    git_tag: str | None
    git_diff_sha256: str | None
    environment_id: int | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: The last value of each metric (the one at the highest step).
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


def _unquote(text: str) -> str:
    if text[:1] in '`"' and text[-1:] == text[:1]:
        return text[1:-1]
    if text[:1] == "'" and text[-1:] == "'":
        return text[1:-1].replace("''", "'")
    return text


def _latest_metric(key: str) -> Any:
    m = t.latest_metrics.c
    return select(m.value).where(m.run_id == t.runs.c.id, m.key == key).scalar_subquery()


def _keyed_value(table: Any, key: str) -> Any:
    return (
        select(table.c.value)
        .where(table.c.run_id == t.runs.c.id, table.c.key == key)
        .scalar_subquery()
    )


def _operand(kind: str, key: str) -> tuple[Any, bool]:
    """The SQL expression a clause compares, and whether it is numeric."""
    kind = kind.rstrip("s") if kind not in ("attributes", "attribute") else "attribute"
    if kind == "metric":
        return _latest_metric(key), True
    if kind == "param":
        return _keyed_value(t.run_params, key), False
    if kind == "tag":
        return _keyed_value(t.run_tags, key), False
    column = _ATTRIBUTES.get(key)
    if column is None:
        raise InvalidInput(f"attribute {key!r} is not one of {', '.join(_ATTRIBUTES)}")
    return column, key in ("id", "started_at", "ended_at", "snapshot")


#: The tables of keyed values a clause's kind names (the others name attributes).
_KEYED_TABLES = {"metric": t.latest_metrics, "param": t.run_params, "tag": t.run_tags}

#: A clause's comparison, by its operator (lower case).
_COMPARISONS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "like": lambda operand, value: operand.like(value),
}


def parse_filter(text: str) -> list[ColumnElement[bool]]:
    """``params.model = 'lr' and metrics.acc > 0.9`` as SQL conditions on runs."""
    return [
        _condition(part)
        for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE)
        if part.strip()
    ]


def _condition(part: str) -> ColumnElement[bool]:
    """One clause of a filter as a SQL condition on runs."""
    m = _CLAUSE.match(part)
    if m is None:
        raise InvalidInput(
            f"cannot read the filter clause {part.strip()!r}; write clauses like "
            "params.model = 'lr', metrics.acc > 0.9, tags.team != 'x', "
            "attributes.status = 'finished', joined by 'and'"
        )
    kind, key = m["kind"], _unquote(m["key"])
    operand, numeric = _operand(kind, key)
    table = _KEYED_TABLES.get(kind.rstrip("s"))
    if table is not None:
        # "run id IN (rows of this key whose value compares)": an index on (key, value)
        # finds them without visiting every run.
        operand = table.c.value
    operand, value = _compared(operand, m["value"], numeric, kind, part)
    condition = _COMPARISONS[m["op"].lower()](operand, value)
    if table is None:
        return condition
    matching = select(table.c.run_id).where(table.c.key == key, condition)
    return t.runs.c.id.in_(matching)


def _compared(operand: Any, raw: str, numeric: bool, kind: str, part: str) -> tuple[Any, Any]:
    """The operand and the value a clause compares, given the value as written."""
    quoted = raw[:1] in "'\""
    value: Any = _unquote(raw) if quoted else raw
    if numeric:
        if quoted:
            raise InvalidInput(f"{part.strip()!r}: compare a metric with a number")
        return operand, _number(value, part)
    if kind.startswith("param") and not quoted:
        # Params are stored as text; compare numbers as numbers.
        return cast(operand, Float), _number(value, part)
    return operand, value


def _number(text: str, clause: str) -> float:
    # The pattern lets "1.2.3" and "." through: digits and dots in any order.
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{clause.strip()!r}: {text!r} is not a number") from None
    if not np.isfinite(value):
        raise InvalidInput(f"{clause.strip()!r}: {text} is too large a number")
    return value


def parse_order(items: Sequence[str]) -> list[Any]:
    """``metrics.acc DESC``, ``params.lr``, ``attributes.started_at`` as ORDER BY terms."""
    terms = []
    for item in items:
        m = re.match(
            r"^\s*(\w+)\.(`[^`]+`|\"[^\"]+\"|[^\s]+)(?:\s+(asc|desc))?\s*$", item, re.IGNORECASE
        )
        if m is None:
            raise InvalidInput(f"cannot read the order {item!r}; write e.g. 'metrics.acc DESC'")
        operand, _ = _operand(m[1], _unquote(m[2]))
        descending = (m[3] or "asc").lower() == "desc"
        term = operand.desc() if descending else operand.asc()
        terms.append(term.nulls_last())
    return terms


class Runs:
    """The runs of a store: ``store.runs``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, run_id: int) -> RunInfo:
        found = self._load([run_id])
        if not found:
            raise NotFound(f"no run with id {run_id}")
        return found[0]

    def list(
        self,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = None,
    ) -> builtins.list[RunInfo]:
        """Runs matching ``filter``, newest first unless ``order_by`` says otherwise."""
        r = t.runs.c
        query = select(r.id)
        if filter:
            query = query.where(and_(*parse_filter(filter)))
        orders = [order_by] if isinstance(order_by, str) else list(order_by or [])
        query = query.order_by(*parse_order(orders), r.id.desc())
        if limit is not None:
            if limit < 0:
                raise InvalidInput(f"limit {limit} must be 0 or more")
            query = query.limit(limit)
        with read(self._engine) as conn:
            ids = [row[0] for row in conn.execute(query).cursor.fetchall()]
            return self._load(ids, conn)

    def _load(self, ids: Sequence[int], conn: Any = None) -> builtins.list[RunInfo]:
        if not ids:
            return []
        if conn is None:
            with read(self._engine) as c:
                return self._load(ids, c)
        wanted = [int(i) for i in ids]
        params: dict[int, dict[str, str]] = {i: {} for i in wanted}
        tags: dict[int, dict[str, str]] = {i: {} for i in wanted}
        metrics: dict[int, dict[str, float]] = {i: {} for i in wanted}
        rows: dict[int, Any] = {}
        names = [c.name for c in t.runs.columns]
        cursor = conn.connection.cursor()
        for start in range(0, len(wanted), 5_000):
            # The ids are integers read from the database, so they are written into the
            # statements: four plain queries on the driver, with no per-row processing.
            id_list = ", ".join(str(i) for i in wanted[start : start + 5_000])
            cursor.execute(f"SELECT {', '.join(names)} FROM runs WHERE id IN ({id_list})")
            for row in cursor.fetchall():
                rows[row[0]] = row
            for table, into in (("run_params", params), ("run_tags", tags)):
                cursor.execute(
                    f"SELECT run_id, key, value FROM {table} WHERE run_id IN ({id_list})"
                )
                for run_id, key, value in cursor.fetchall():
                    into[run_id][key] = value
            cursor.execute(
                f"SELECT run_id, key, value FROM latest_metrics WHERE run_id IN ({id_list})"
            )
            for run_id, key, value in cursor.fetchall():
                metrics[run_id][key] = np.nan if value is None else float(value)
        out = []
        for i in wanted:
            raw = rows.get(i)
            if raw is None:
                continue
            row = dict(zip(names, raw, strict=True))
            out.append(
                RunInfo(
                    id=row["id"],
                    name=row["name"],
                    status=row["status"],
                    started_at=timestamps.from_us(row["started_at"]),
                    ended_at=timestamps.from_us(row["ended_at"]) if row["ended_at"] else None,
                    snapshot_id=row["snapshot_id"],
                    error=row["error"],
                    git_state=row["git_state"],
                    git_commit=row["git_commit"],
                    git_branch=row["git_branch"],
                    git_tag=row["git_tag"],
                    git_diff_sha256=row["git_diff_sha256"],
                    environment_id=row["environment_id"],
                    params=params[i],
                    tags=tags[i],
                    metrics=metrics[i],
                )
            )
        return out

    def metric_history(self, run_id: int, key: str) -> pd.DataFrame:
        """Every point of one metric of a run: step, value, logged_at, by step."""
        m = t.metric_points.c
        with read(self._engine) as conn:
            rows = conn.execute(
                select(m.step, m.value, m.logged_at)
                .where(m.run_id == run_id, m.key == key)
                .order_by(m.step, m.logged_at)
            ).all()
        steps, values, logged = zip(*rows, strict=True) if rows else ((), (), ())
        return pd.DataFrame(
            {
                "step": np.array(steps, dtype=np.int64),
                "value": np.array([np.nan if v is None else v for v in values], dtype=float),
                "logged_at": pd.to_datetime(np.array(logged, dtype=np.int64), unit="us", utc=True),
            }
        )

    def to_frame(self, runs: Sequence[RunInfo]) -> pd.DataFrame:
        """Runs as a table: id, name, status, times, then params.*, metrics.*, tags.*."""
        columns: dict[str, Any] = {
            "id": [r.id for r in runs],
            "name": [r.name for r in runs],
            "status": [r.status for r in runs],
            "started_at": [r.started_at for r in runs],
            "ended_at": [r.ended_at for r in runs],
        }
        for prefix, attr in (("params", "params"), ("metrics", "metrics"), ("tags", "tags")):
            keys = sorted({k for r in runs for k in getattr(r, attr)})
            for k in keys:
                columns[f"{prefix}.{k}"] = [getattr(r, attr).get(k) for r in runs]
        return pd.DataFrame(columns)
