"""The problem database: known failure modes, each with positive patterns (that show
the problem) and negative ones (controls), and every model version's score on them.

Adding a problem's patterns predicts them with every version of the dataset at once
(the backfill), so the versions x problems x patterns table is always complete.
"""

from __future__ import annotations

import builtins
import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import insert, select, update

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import change
from trenches.db.engine import read, write
from trenches.errors import Conflict, InvalidInput, NotFound
from trenches.names import SPLITS, in_int64
from trenches.patterns.lookup import stored_rows
from trenches.problems.scores import ProblemScore, Scorer
from trenches.verdicts import Tolerance, tolerance_for

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.backfill import Backfill, BackfillResult, SkippedVersion
    from trenches.baselines import Baselines
    from trenches.patterns.datasets import Datasets
    from trenches.patterns.snapshots import Snapshots
    from trenches.predictors import Predictors

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
    #: Regression: the tolerance of this problem, over the dataset's; None: the dataset's.
    tolerance: Tolerance | None = None
    #: Whether new snapshots may train on its patterns; else, while it is open, they are
    #: held out of every new snapshot's training data.
    trainable: bool = False

    def patterns(self, polarity: str | None = None) -> tuple[int, ...]:
        if polarity is None:
            return self.positive + self.negative
        if polarity not in POLARITIES:
            raise InvalidInput(f"polarity {polarity!r} must be positive or negative")
        return self.positive if polarity == "positive" else self.negative


@dataclass(frozen=True)
class AddResult:
    """What adding patterns to a problem did, backfill included."""

    added: int
    already: int
    predicted: int
    versions: int
    #: The added patterns that are in the train split: versions trained before now may
    #: have seen them (their held-out score leaves them out).
    training: tuple[int, ...] = ()
    #: Versions the backfill could not predict with (a model that can run code, without
    #: ``trusted=True``, ...), each with why: the patterns are stored all the same.
    skipped: tuple[SkippedVersion, ...] = ()
    #: From a file: its rows that the dataset held already (the same inputs, label and
    #: source), stored again as new patterns of the problem.
    already_stored: int = 0


def _parse_ids(values: Sequence[int | str]) -> list[int]:
    out: list[int] = []
    for v in values:
        for part in str(v).replace(",", " ").split():
            try:
                pid = int(part)
            except ValueError:
                raise InvalidInput(f"{part!r} is not a pattern id") from None
            if not in_int64(pid):
                raise InvalidInput(f"pattern id {part} is out of range (beyond 64 bits)")
            out.append(pid)
    return out


class Problems:
    """The problem database of a store: ``store.problems``."""

    def __init__(
        self,
        engine: Engine,
        datasets: Datasets,
        predictors: Predictors,
        baselines: Baselines,
        snapshots: Snapshots,
        backfill: Backfill,
    ) -> None:
        self._engine = engine
        self._datasets = datasets
        self._predictors = predictors
        self._baselines = baselines
        self._snapshots = snapshots
        self._backfill = backfill

    def _scorer(self) -> Scorer:
        return Scorer(self._engine, self, self._predictors, self._baselines, self._snapshots)

    def create(
        self,
        slug: str,
        *,
        dataset: str,
        title: str,
        description: str | None = None,
        severity: str = "medium",
        tolerance: Tolerance | str | float | None = None,
        trainable: bool = False,
    ) -> Problem:
        """Record a known failure mode of the models of ``dataset``.

        ``tolerance`` (regression) overrides the dataset's for this problem's scores.
        While the problem is open, new snapshots hold its patterns out of their training
        data, so that new models are scored on what they did not see; ``trainable=True``
        lets them be trained on."""
        if not _SLUG.match(slug or ""):
            raise InvalidInput(
                f"problem slug {slug!r} must be lowercase letters, digits, '-' and '_'"
            )
        if severity not in SEVERITIES:
            raise InvalidInput(f"severity {severity!r} must be one of {', '.join(SEVERITIES)}")
        if not title or not title.strip():
            raise InvalidInput("a problem needs a title")
        ds = self._datasets.get(dataset)
        tol = tolerance_for(ds.name, ds.task, tolerance)
        with write(self._engine) as conn:
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
                    tolerance_abs=tol.absolute if tol else None,
                    tolerance_rel=tol.relative if tol else None,
                    trainable=bool(trainable),
                )
            )
        return self.get(slug)

    def edit(
        self,
        slug: str,
        *,
        title: str | None = None,
        description: str | None = None,
        severity: str | None = None,
        tolerance: Tolerance | str | float | None = None,
        clear_tolerance: bool = False,
        trainable: bool | None = None,
    ) -> Problem:
        """Change what is given of a problem; the rest stays. ``clear_tolerance`` goes
        back to the dataset's tolerance."""
        problem = self.get(slug)
        values: dict[str, Any] = {}
        if title is not None:
            if not title.strip():
                raise InvalidInput("a problem needs a title")
            values["title"] = title
        if description is not None:
            values["description"] = description
        if severity is not None:
            if severity not in SEVERITIES:
                raise InvalidInput(f"severity {severity!r} must be one of {', '.join(SEVERITIES)}")
            values["severity"] = severity
        if tolerance is not None and clear_tolerance:
            raise InvalidInput("give a tolerance or clear it, not both")
        if tolerance is not None or clear_tolerance:
            ds = self._datasets.get(problem.dataset)
            tol = tolerance_for(ds.name, ds.task, tolerance)
            values["tolerance_abs"] = tol.absolute if tol else None
            values["tolerance_rel"] = tol.relative if tol else None
        if trainable is not None:
            values["trainable"] = bool(trainable)
        if not values:
            raise InvalidInput("nothing to change: give what to edit")
        with write(self._engine) as conn:
            conn.execute(update(t.problems).where(t.problems.c.id == problem.id).values(**values))
        return self.get(slug)

    def get(self, slug: str) -> Problem:
        with read(self._engine) as conn:
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
            tolerance=Tolerance.from_columns(row.tolerance_abs, row.tolerance_rel),
            trainable=bool(row.trainable),
        )

    def list(
        self, *, dataset: str | None = None, status: str | None = None
    ) -> builtins.list[Problem]:
        c = t.problems.c
        query = select(c.slug).order_by(c.id)
        if status is not None:
            query = query.where(c.status == status)
        if dataset is not None:
            query = query.where(c.dataset_id == self._datasets.get(dataset).id)
        with read(self._engine) as conn:
            slugs = list(conn.execute(query).scalars())
        return [self.get(s) for s in slugs]

    def add(
        self,
        slug: str,
        *,
        positive: Sequence[int | str] = (),
        negative: Sequence[int | str] = (),
        backfill: bool = True,
        trusted: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> AddResult:
        """Add patterns to a problem, then predict them with every version of its
        dataset (unless ``backfill=False``; ``trenches backfill`` does it later).

        A version that cannot predict (a model that can run code, without ``trusted=True``) is
        skipped, and named in ``result.skipped``; the patterns are added all the same."""
        problem = self.get(slug)
        pos, neg = _parse_ids(positive), _parse_ids(negative)
        if not pos and not neg:
            raise InvalidInput("name at least one pattern (--positive or --negative)")
        both = set(pos) & set(neg)
        if both:
            raise InvalidInput(f"pattern {min(both)} cannot be both positive and negative")
        wanted = {p: "positive" for p in pos} | {p: "negative" for p in neg}
        ds = self._datasets.get(problem.dataset)
        now = timestamps.now_us()
        added = already = 0
        detail = {"positive": pos, "negative": neg}
        with change("problems.add", f"problem:{slug}", detail), write(self._engine) as conn:
            found = stored_rows(conn, list(wanted))
            for pid in wanted:
                if pid not in found:
                    raise NotFound(f"there is no pattern {pid}; nothing was added")
                if found[pid].dataset_id != ds.id:
                    raise InvalidInput(
                        f"pattern {pid} belongs to another dataset than {problem.dataset!r}"
                    )
            train = SPLITS.index("train")
            training = tuple(sorted(pid for pid, r in found.items() if r.split == train))
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
        if not backfill:
            return AddResult(added, already, 0, 0, training)
        done = self._backfill.patterns(
            {ds.name: sorted(wanted)}, trusted=trusted, progress=progress
        )
        return AddResult(added, already, done.computed, done.versions, training, done.skipped)

    def add_from_file(
        self,
        slug: str,
        path: str | os.PathLike[str] | pd.DataFrame,
        *,
        source: str = "contrived",
        polarity: str = "positive",
        labelled_by: str | None = None,
        backfill: bool = True,
        trusted: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> AddResult:
        """The tester's way: new inputs with their labels (CSV, Parquet, JSONL or a
        DataFrame) become patterns of the problem's dataset (source ``contrived`` or
        ``production``) and patterns of the problem, and the backfill follows.

        A ``polarity`` column (positive / negative) sets each row's side; without one,
        every row takes ``polarity``.
        """
        given = {"rows": len(path)} if isinstance(path, pd.DataFrame) else {"file": str(path)}
        with change("problems.add", f"problem:{slug}", given):
            return self._add_from_file(
                slug,
                path,
                source=source,
                polarity=polarity,
                labelled_by=labelled_by,
                backfill=backfill,
                trusted=trusted,
                progress=progress,
            )

    def _add_from_file(
        self,
        slug: str,
        path: str | os.PathLike[str] | pd.DataFrame,
        *,
        source: str,
        polarity: str,
        labelled_by: str | None,
        backfill: bool,
        trusted: bool,
        progress: Callable[[int], None] | None,
    ) -> AddResult:
        # The patterns' import is the change's first transaction: its audit row goes there.
        from trenches.patterns.ingest import read_file

        if polarity not in POLARITIES:
            raise InvalidInput(f"polarity {polarity!r} must be positive or negative")
        problem = self.get(slug)
        ds = self._datasets.get(problem.dataset)
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
        ids = list(imported.pattern_ids)
        added = self.add(
            slug,
            positive=[i for i, side in zip(ids, sides, strict=True) if side == "positive"],
            negative=[i for i, side in zip(ids, sides, strict=True) if side == "negative"],
            backfill=backfill,
            trusted=trusted,
            progress=progress,
        )
        return dataclasses.replace(added, already_stored=imported.already_stored)

    def close(self, slug: str, *, reason: str) -> Problem:
        if not reason or not reason.strip():
            raise InvalidInput("closing a problem needs a reason (--reason)")
        problem = self.get(slug)
        if problem.status == "closed":
            raise Conflict(f"problem {slug!r} is closed already")
        with write(self._engine) as conn:
            conn.execute(
                update(t.problems)
                .where(t.problems.c.id == problem.id)
                .values(status="closed", closed_at=timestamps.now_us(), close_reason=reason)
            )
        return self.get(slug)

    # --- backfill and scores ------------------------------------------------------

    def backfill(
        self,
        *,
        dataset: str | None = None,
        trusted: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> BackfillResult:
        """Predict every problem pattern with every version that lacks a prediction;
        a version that cannot predict is skipped, with why. ``trenches.backfill.backfill``
        does the validation and test splits as well."""
        by_dataset: dict[str, set[int]] = {}
        for problem in self.list(dataset=dataset):
            by_dataset.setdefault(problem.dataset, set()).update(problem.patterns())
        return self._backfill.patterns(
            {name: sorted(ids) for name, ids in by_dataset.items()},
            trusted=trusted,
            progress=progress,
        )

    def history(self, dataset: str | None = None, *, with_accuracy: bool = True) -> pd.DataFrame:
        """Each problem's score for every model version, in creation order, as a
        DataFrame (the table behind ``trenches report problems``); without
        ``with_accuracy``, the versions' validation accuracy is not measured (a page
        that shows only the problems' scores spares reading the split)."""
        from trenches.problems.history import history

        return history(
            self,
            self._datasets,
            self._predictors,
            self._scorer(),
            dataset,
            with_accuracy=with_accuracy,
        )

    def scores(self, slug: str) -> builtins.list[ProblemScore]:
        """Every version's (and baseline's) score on the problem, oldest version first:
        over all its patterns, and over those each version did not train on."""
        problem = self.get(slug)
        ds = self._datasets.get(problem.dataset)
        scorer = self._scorer()
        return [scorer.score(problem, ds, entry) for entry in scorer.entries(ds)]
