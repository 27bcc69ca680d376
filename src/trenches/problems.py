"""The problem database: known failure modes, each with positive patterns (that show
the problem) and negative ones (controls), and every model version's score on them.

Adding a problem's patterns predicts them with every version of the dataset at once
(the backfill), so the versions x problems x patterns table is always complete.
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, update

from trenches import predictions as store_of
from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read, write
from trenches.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from trenches.store import Store

SEVERITIES = ("low", "medium", "high", "critical")
POLARITIES = ("positive", "negative")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9\-_]{0,99}$")


@dataclass(frozen=True)
class Problem:
    """A known failure mode of the models of one dataset."""

    id: int
    slug: str
    dataset: str
    title: str
    description: str | None
    severity: str
    status: str
    created_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    positive: tuple[int, ...]
    negative: tuple[int, ...]

    def patterns(self, polarity: str | None = None) -> tuple[int, ...]:
        if polarity is None:
            return self.positive + self.negative
        if polarity not in POLARITIES:
            raise InvalidInput(f"polarity {polarity!r} must be positive or negative")
        return self.positive if polarity == "positive" else self.negative


@dataclass(frozen=True)
class ProblemScore:
    """How one model version does on one problem: the share of its patterns it gets
    right, overall and for positive and negative patterns apart."""

    problem: str
    predictor: str
    created_at: datetime
    positive_right: int
    positive_total: int
    negative_right: int
    negative_total: int
    #: Patterns of the problem that the predictor has no prediction for (baselines).
    missing: int

    @property
    def right(self) -> int:
        return self.positive_right + self.negative_right

    @property
    def total(self) -> int:
        return self.positive_total + self.negative_total

    @property
    def score(self) -> float:
        return self.right / self.total if self.total else float("nan")

    @property
    def positive_score(self) -> float:
        return self.positive_right / self.positive_total if self.positive_total else float("nan")

    @property
    def negative_score(self) -> float:
        return self.negative_right / self.negative_total if self.negative_total else float("nan")


@dataclass(frozen=True)
class AddResult:
    """What adding patterns to a problem did, backfill included."""

    added: int
    already: int
    predicted: int
    versions: int


def _parse_ids(values: Sequence[int | str]) -> list[int]:
    out: list[int] = []
    for v in values:
        for part in str(v).replace(",", " ").split():
            try:
                out.append(int(part))
            except ValueError:
                raise InvalidInput(f"{part!r} is not a pattern id") from None
    return out


class Problems:
    """The problem database of a store: ``store.problems``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(
        self,
        slug: str,
        *,
        dataset: str,
        title: str,
        description: str | None = None,
        severity: str = "medium",
    ) -> Problem:
        """Record a known failure mode of the models of ``dataset``."""
        if not _SLUG.match(slug or ""):
            raise InvalidInput(
                f"problem slug {slug!r} must be lowercase letters, digits, '-' and '_'"
            )
        if severity not in SEVERITIES:
            raise InvalidInput(f"severity {severity!r} must be one of {', '.join(SEVERITIES)}")
        if not title or not title.strip():
            raise InvalidInput("a problem needs a title")
        ds = self._store.datasets.get(dataset)
        with write(self._store.engine) as conn:
            if conn.execute(select(t.problems.c.id).where(t.problems.c.slug == slug)).first():
                raise Conflict(f"a problem {slug!r} exists already")
            conn.execute(
                insert(t.problems).values(
                    slug=slug,
                    dataset_id=ds.id,
                    title=title,
                    description=description,
                    severity=severity,
                    status="open",
                    created_at=timestamps.now_us(),
                )
            )
        return self.get(slug)

    def get(self, slug: str) -> Problem:
        with read(self._store.engine) as conn:
            row = conn.execute(select(t.problems).where(t.problems.c.slug == slug)).first()
            if row is None:
                raise NotFound(f"no problem {slug!r}")
            dataset = conn.execute(
                select(t.datasets.c.name).where(t.datasets.c.id == row.dataset_id)
            ).scalar_one()
            pp = t.problem_patterns.c
            members = conn.execute(
                select(pp.pattern_id, pp.polarity)
                .where(pp.problem_id == row.id)
                .order_by(pp.pattern_id)
            ).all()
        return Problem(
            id=row.id,
            slug=row.slug,
            dataset=dataset,
            title=row.title,
            description=row.description,
            severity=row.severity,
            status=row.status,
            created_at=timestamps.from_us(row.created_at),
            closed_at=timestamps.from_us(row.closed_at) if row.closed_at else None,
            close_reason=row.close_reason,
            positive=tuple(p for p, pol in members if pol == "positive"),
            negative=tuple(p for p, pol in members if pol == "negative"),
        )

    def list(
        self, *, dataset: str | None = None, status: str | None = None
    ) -> builtins.list[Problem]:
        c = t.problems.c
        query = select(c.slug).order_by(c.id)
        if status is not None:
            query = query.where(c.status == status)
        if dataset is not None:
            query = query.where(c.dataset_id == self._store.datasets.get(dataset).id)
        with read(self._store.engine) as conn:
            slugs = list(conn.execute(query).scalars())
        return [self.get(s) for s in slugs]

    def add(
        self,
        slug: str,
        *,
        positive: Sequence[int | str] = (),
        negative: Sequence[int | str] = (),
        backfill: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> AddResult:
        """Add patterns to a problem, then predict them with every version of its
        dataset (unless ``backfill=False``; ``trenches backfill`` does it later)."""
        problem = self.get(slug)
        pos, neg = _parse_ids(positive), _parse_ids(negative)
        if not pos and not neg:
            raise InvalidInput("name at least one pattern (--positive or --negative)")
        both = set(pos) & set(neg)
        if both:
            raise InvalidInput(f"pattern {min(both)} cannot be both positive and negative")
        wanted = {p: "positive" for p in pos} | {p: "negative" for p in neg}
        ds = self._store.datasets.get(problem.dataset)
        now = timestamps.now_us()
        added = already = 0
        with write(self._store.engine) as conn:
            p = t.patterns.c
            found = dict(
                conn.execute(select(p.id, p.dataset_id).where(p.id.in_(list(wanted)))).all()
            )
            for pid in wanted:
                if pid not in found:
                    raise NotFound(f"there is no pattern {pid}; nothing was added")
                if found[pid] != ds.id:
                    raise InvalidInput(
                        f"pattern {pid} belongs to another dataset than {problem.dataset!r}"
                    )
            pp = t.problem_patterns.c
            current = dict(
                conn.execute(
                    select(pp.pattern_id, pp.polarity).where(pp.problem_id == problem.id)
                ).all()
            )
            rows = []
            for pid, polarity in wanted.items():
                if pid in current:
                    if current[pid] != polarity:
                        raise Conflict(
                            f"pattern {pid} is a {current[pid]} pattern of {slug!r} already"
                        )
                    already += 1
                    continue
                rows.append(
                    {
                        "problem_id": problem.id,
                        "pattern_id": pid,
                        "polarity": polarity,
                        "added_at": now,
                    }
                )
            if rows:
                conn.execute(insert(t.problem_patterns), rows)
                added = len(rows)
        predicted = versions = 0
        if backfill:
            predicted, versions = self._backfill_patterns(ds.id, sorted(wanted), progress)
        return AddResult(added, already, predicted, versions)

    def add_from_file(
        self,
        slug: str,
        path: str | os.PathLike[str] | pd.DataFrame,
        *,
        source: str = "contrived",
        polarity: str = "positive",
        labelled_by: str | None = None,
        backfill: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> AddResult:
        """The tester's way: new inputs with their labels (CSV, Parquet, JSONL or a
        DataFrame) become patterns of the problem's dataset (source ``contrived`` or
        ``production``) and patterns of the problem, and the backfill follows.

        A ``polarity`` column (positive / negative) sets each row's side; without one,
        every row takes ``polarity``.
        """
        from trenches.patterns.ingest import read_file

        if polarity not in POLARITIES:
            raise InvalidInput(f"polarity {polarity!r} must be positive or negative")
        problem = self.get(slug)
        ds = self._store.datasets.get(problem.dataset)
        file = None
        if isinstance(path, pd.DataFrame):
            frame = path.reset_index(drop=True)
        else:
            file = str(path)
            frame = read_file(path)
        sides = [polarity] * len(frame)
        if "polarity" in frame.columns:
            sides = []
            for row, value in enumerate(frame["polarity"].tolist(), start=1):
                side = str(value).strip().lower() if isinstance(value, str) else None
                if side not in POLARITIES:
                    raise InvalidInput(
                        f"{value!r} is not positive or negative",
                        file=file,
                        row=row,
                        field="polarity",
                    )
                sides.append(side)
            frame = frame.drop(columns=["polarity"])
        if file is not None:
            imported = ds.add_file_frame(
                frame, file=file, source=source, labelled_by=labelled_by, note=f"problem {slug}"
            )
        else:
            imported = ds.add(frame, source=source, labelled_by=labelled_by, note=f"problem {slug}")
        ids = list(range(imported.first_id, imported.last_id + 1))
        return self.add(
            slug,
            positive=[i for i, side in zip(ids, sides, strict=True) if side == "positive"],
            negative=[i for i, side in zip(ids, sides, strict=True) if side == "negative"],
            backfill=backfill,
            progress=progress,
        )

    def close(self, slug: str, *, reason: str) -> Problem:
        if not reason or not reason.strip():
            raise InvalidInput("closing a problem needs a reason (--reason)")
        problem = self.get(slug)
        if problem.status == "closed":
            raise Conflict(f"problem {slug!r} is closed already")
        with write(self._store.engine) as conn:
            conn.execute(
                update(t.problems)
                .where(t.problems.c.id == problem.id)
                .values(status="closed", closed_at=timestamps.now_us(), close_reason=reason)
            )
        return self.get(slug)

    # --- backfill and scores ------------------------------------------------------

    def _version_refs(self, dataset_id: int) -> builtins.list[tuple[str, datetime]]:
        v, m = t.model_versions.c, t.models.c
        with read(self._store.engine) as conn:
            rows = conn.execute(
                select(m.name, v.version, v.created_at)
                .join(t.models, v.model_id == m.id)
                .where(v.dataset_id == dataset_id)
                .order_by(v.created_at, v.id)
            ).all()
        return [(f"{name}@{version}", timestamps.from_us(at)) for name, version, at in rows]

    def _backfill_patterns(
        self,
        dataset_id: int,
        pattern_ids: Sequence[int],
        progress: Callable[[int], None] | None,
    ) -> tuple[int, int]:
        from trenches.predict import predict

        refs = self._version_refs(dataset_id)
        computed = 0
        for ref, _ in refs:
            computed += predict(self._store, ref, pattern_ids).computed
            if progress is not None:
                progress(1)
        return computed, len(refs)

    def backfill(
        self, *, dataset: str | None = None, progress: Callable[[int], None] | None = None
    ) -> tuple[int, int]:
        """Predict every problem pattern with every version that lacks a prediction.
        Returns (predictions computed, versions visited)."""
        problems = self.list(dataset=dataset)
        by_dataset: dict[str, set[int]] = {}
        for problem in problems:
            by_dataset.setdefault(problem.dataset, set()).update(problem.patterns())
        computed = visited = 0
        for name, ids in by_dataset.items():
            ds = self._store.datasets.get(name)
            c, v = self._backfill_patterns(ds.id, sorted(ids), progress)
            computed += c
            visited += v
        return computed, visited

    def history(self, dataset: str | None = None) -> Any:
        """Each problem's score for every model version, in creation order, as a
        DataFrame (the table behind ``trenches report problems``)."""
        from trenches.report.problems import history

        return history(self._store, dataset)

    def scores(self, slug: str) -> builtins.list[ProblemScore]:
        """Every version's (and baseline's) score on the problem, oldest version first."""
        from trenches.evaluation import resolve_predictor

        problem = self.get(slug)
        ds = self._store.datasets.get(problem.dataset)
        out = []
        entries: list[tuple[str, datetime]] = list(self._version_refs(ds.id))
        for baseline in self._store.baselines.list():
            if baseline.dataset == ds.name:
                entries.append((baseline.name, baseline.created_at))
        pos = np.array(problem.positive, dtype=np.int64)
        neg = np.array(problem.negative, dtype=np.int64)
        for ref, created in entries:
            predictor = resolve_predictor(self._store, ref)
            with read(self._store.engine) as conn:
                found = store_of.read(conn, predictor.id)
            counts: list[Any] = []
            missing = 0
            for ids in (pos, neg):
                have = np.isin(ids, found.pattern_ids)
                missing += int((~have).sum())
                rows = np.searchsorted(found.pattern_ids, ids[have])
                right = int(found.correct[rows].sum()) if found.correct is not None else 0
                counts += [right, int(have.sum())]
            out.append(
                ProblemScore(
                    slug, ref, created, counts[0], counts[1], counts[2], counts[3], missing
                )
            )
        return out
