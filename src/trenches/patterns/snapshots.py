"""Snapshots: the patterns active in a dataset at an instant, with a content digest."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, Engine

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import change
from trenches.db.engine import id_in, lock_patterns, read, write
from trenches.errors import InvalidInput, NotFound
from trenches.json_form import json_shape
from trenches.names import SPLITS, check_source
from trenches.patterns import columnar, digests
from trenches.patterns.datasets import Dataset, dataset_by_id
from trenches.patterns.diff import SnapshotDiff, diff_snapshots
from trenches.patterns.frames import Members, ids_of, membership, read_patterns
from trenches.patterns.members import member_rows
from trenches.tables.arrays import ascending_unique

WEIGHTINGS = ("none", "exponential", "inverse-age")
_DAY_US = 86_400 * 1_000_000


class TrainingData(NamedTuple):
    """What a model is fitted on:
    ``X, y, sample_weight, pattern_ids = snapshot.training_data()``."""

    X: pd.DataFrame
    y: np.ndarray
    sample_weight: np.ndarray
    pattern_ids: np.ndarray


@json_shape(
    omit=("dataset_id", "created_at"),
    order=("id", "dataset", "as_of", "sources", "patterns", "digest", "max_pattern_id", "held_out"),
)
@dataclass(frozen=True)
class Snapshot:
    """The patterns of a dataset active at ``as_of``, frozen by their digest.

    Membership is rebuilt from timestamps alone (created_at, deactivated_at and the
    highest pattern id at the time), so a snapshot stores no list of patterns. What it
    does store is ``held_out``: the patterns of the problems open when it was made
    (unless a problem was marked trainable). Its training data leaves them out, and
    every pattern with the same inputs, so a model fitted on it is scored on problems
    it has not seen; the digest covers them.
    """

    id: int
    dataset: str
    dataset_id: int
    as_of: datetime
    max_pattern_id: int
    sources: tuple[str, ...] | None
    digest: str
    patterns: int
    note: str | None
    created_at: datetime
    _engine: Engine = field(repr=False, compare=False)
    #: Pattern ids held out of the training data (problem patterns), ascending.
    held_out: tuple[int, ...] = ()

    @property
    def _as_of_us(self) -> int:
        return timestamps.to_us(self.as_of)

    def _dataset(self) -> Dataset:
        return dataset_by_id(self._engine, self.dataset_id)

    def data(
        self, split: str | None = None, *, full_info: bool = True
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(inputs and label, provenance) of the snapshot's patterns, by pattern id."""
        return read_patterns(self._dataset(), self._selection(), split=split, full_info=full_info)

    def _selection(self) -> Members:
        """Which of the dataset's patterns are the snapshot's members."""
        return Members(as_of=self._as_of_us, max_id=self.max_pattern_id, sources=self.sources)

    def pattern_ids(self, split: str | None = None) -> np.ndarray:
        """The ids of the snapshot's members (of one split), ascending."""
        return ids_of(self._dataset(), self._selection(), split)

    def training_data(
        self,
        split: str | None = "train",
        *,
        weighting: str = "none",
        half_life_days: float = 30.0,
        age_offset_days: float = 1.0,
        include_held_out: bool = False,
    ) -> TrainingData:
        """``X, y, sample_weight, pattern_ids`` of one split (``None``: all), for
        scikit-learn. The patterns held out for open problems (and every pattern with
        the same inputs) are left out unless ``include_held_out``.

        ``weighting``:
        - ``"none"``: every weight is 1;
        - ``"exponential"``: a pattern ``half_life_days`` older than the snapshot
          counts half as much as a new one;
        - ``"inverse-age"``: weight proportional to ``1 / (age_days + age_offset_days)``.

        Recency weights are scaled so that they average 1.
        """
        if weighting not in WEIGHTINGS:
            raise InvalidInput(f"weighting {weighting!r} must be one of {', '.join(WEIGHTINGS)}")
        dataset = self._dataset()
        frame, info = self.data(split, full_info=False)
        if self.held_out and not include_held_out:
            keep = ~np.isin(frame.index.to_numpy(), self.excluded_ids())
            frame, info = frame[keep], info[keep]
        y = frame.pop(dataset.label_column).to_numpy()
        age = self.as_of - info["created_at"]
        age_days = np.maximum((age / pd.Timedelta(days=1)).to_numpy(dtype=np.float64), 0.0)
        if weighting == "none":
            weights = np.ones(len(frame))
        elif weighting == "exponential":
            if half_life_days <= 0:
                raise InvalidInput("half_life_days must be positive")
            weights = np.power(0.5, age_days / half_life_days)
        else:
            if age_offset_days <= 0:
                raise InvalidInput("age_offset_days must be positive")
            weights = 1.0 / (age_days + age_offset_days)
        if len(weights) and weighting != "none":
            weights = weights / weights.mean()
        return TrainingData(frame, y, weights, frame.index.to_numpy())

    def counts(self) -> pd.DataFrame:
        """Pattern counts by split, source and label."""
        frame, info = self.data(full_info=False)
        dataset = self._dataset()
        return (
            pd.DataFrame(
                {
                    "split": info["split"].astype(str),
                    "source": info["source"],
                    "label": frame[dataset.label_column].astype(str),
                }
            )
            .value_counts()
            .rename("patterns")
            .reset_index()
            .sort_values(["split", "source", "label"], ignore_index=True)
        )

    def verify(self) -> bool:
        """Check the snapshot against the stored rows: rebuild its membership from
        timestamps; work out each member's content hash again from its stored inputs,
        label, source and time, and its input key and split from its inputs; and check
        those, and the digest over them, against what is stored. ``False`` when a row
        was changed behind trenches' back (plain SQL, a damaged file) or the membership
        moved."""
        dataset = self._dataset()
        held_out = np.asarray(self.held_out, dtype=np.int64)
        with read(self._engine) as conn:
            hashes = digests.rechecked_members(conn, dataset, self._selection())
            if hashes is None or len(hashes) != self.patterns:
                return False
            # The held-out inputs are part of the digest: their keys must hold too.
            if len(held_out) and digests.rechecked_ids(conn, dataset, held_out) is None:
                return False
            held_keys = digests.input_keys(conn, dataset, held_out) if len(held_out) else []
            return digests.digest_of(hashes, held_keys) == self.digest

    def _members(self) -> list[Any]:
        """The WHERE clauses of the members of an earlier release's dataset."""
        return membership(
            self.dataset_id,
            as_of=self._as_of_us,
            max_id=self.max_pattern_id,
            sources=self.sources,
        )

    def excluded_ids(self) -> np.ndarray:
        """The members left out of the training data: the held-out patterns and every
        member with the same inputs as one of them, ascending."""
        if not self.held_out:
            return np.zeros(0, dtype=np.int64)
        dataset = self._dataset()
        if dataset.columnar:
            return self._excluded_columnar(dataset)
        p = t.patterns.c
        with read(self._engine) as conn:
            held = _keys_of(conn, self.held_out)
            rows = conn.execute(
                select(p.id).where(*self._members(), p.input_key.in_(held)).order_by(p.id)
            ).scalars()
            return np.fromiter(rows, dtype=np.int64)

    def _excluded_columnar(self, dataset: Dataset) -> np.ndarray:
        """:meth:`excluded_ids` of a columnar dataset, from its table."""
        import pyarrow as pa
        import pyarrow.compute as pc

        held = np.asarray(self.held_out, dtype=np.int64)
        with read(self._engine) as conn:
            keys = digests.input_keys(conn, dataset, held)
            data = member_rows(conn, dataset.id, self._selection(), ["input_key"])
        if data is None or not keys:
            return np.zeros(0, dtype=np.int64)
        same = pc.is_in(data["input_key"], value_set=pa.array(keys, type=pa.binary()))
        ids = data["pattern_id"].to_numpy()[same.to_numpy(zero_copy_only=False)]
        return np.sort(ids)

    def trained_on(self, pattern_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """For each of ``pattern_ids``, whether a model fitted on this snapshot's train
        split saw it: the pattern, or one with the same inputs, is in the split and is
        not held out. The patterns need not be members (a problem pattern added later
        may repeat the inputs of a training pattern)."""
        ids = np.asarray(pattern_ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros(0, dtype=bool)
        dataset = self._dataset()
        if dataset.columnar:
            return self._trained_on_columnar(dataset, ids)
        p = t.patterns.c
        train = SPLITS.index("train")
        with read(self._engine) as conn:
            # The split is a function of the inputs: only a pattern of the train split
            # has copies in it.
            key_of = {
                int(pid): bytes(key)
                for pid, key in conn.execute(
                    select(p.id, p.input_key).where(
                        id_in(conn.dialect.name, p.id, ids.tolist()), p.split == train
                    )
                )
            }
            seen = select(p.input_key).where(
                *self._members(),
                p.split == train,
                p.input_key.in_(_keys_of(conn, key_of)),
                p.input_key.not_in(_keys_of(conn, self.held_out)),
            )
            present = {bytes(k) for k in conn.execute(seen.distinct()).scalars()}
        return np.array([key_of.get(int(i)) in present for i in ids], dtype=bool)

    def _trained_on_columnar(self, dataset: Dataset, ids: np.ndarray) -> np.ndarray:
        """:meth:`trained_on` of a columnar dataset, from its table."""
        import pyarrow as pa
        import pyarrow.compute as pc

        train = SPLITS.index("train")
        held = np.asarray(self.held_out, dtype=np.int64)
        with read(self._engine) as conn:
            # The split is a function of the inputs: only a pattern of the train split
            # has copies in it.
            asked = columnar.read(
                conn,
                dataset.id,
                columns=["pattern_id", "input_key"],
                ids=ascending_unique(ids),
                split=train,
            )
            if asked is None or not asked.num_rows:
                return np.zeros(len(ids), dtype=bool)
            held_keys = digests.input_keys(conn, dataset, held) if len(held) else []
            data = member_rows(conn, dataset.id, self._selection(), ["input_key"], split=train)
        keys = asked["input_key"].combine_chunks()
        if data is None:
            return np.zeros(len(ids), dtype=bool)
        # The members' keys that any of the asked patterns has, then whether each has one.
        copies = data["input_key"].filter(pc.is_in(data["input_key"], value_set=keys))
        seen = pc.is_in(keys, value_set=copies.combine_chunks()).to_numpy(zero_copy_only=False)
        if held_keys:
            out = pc.is_in(keys, value_set=pa.array(held_keys, type=pa.binary()))
            seen &= ~out.to_numpy(zero_copy_only=False)
        found = asked["pattern_id"].to_numpy()
        order = np.argsort(found, kind="stable")
        found, seen = found[order], seen[order]
        at = np.minimum(np.searchsorted(found, ids), len(found) - 1)
        answer: np.ndarray = (found[at] == ids) & seen[at]
        return answer


def _keys_of(conn: Connection, ids: Iterable[int]) -> Any:
    """The input keys of the patterns ``ids``, as a subquery."""
    p = t.patterns.c
    return select(p.input_key).where(id_in(conn.dialect.name, p.id, [int(i) for i in ids]))


def held_out_now(conn: Connection, dataset_id: int) -> np.ndarray:
    """The patterns a snapshot made now holds out: those of the dataset's open problems
    that are not marked trainable, ascending."""
    pp, pr = t.problem_patterns.c, t.problems.c
    ids = conn.execute(
        select(pp.pattern_id)
        .join(t.problems, pp.problem_id == pr.id)
        .where(pr.dataset_id == dataset_id, pr.status == "open", pr.trainable.is_(False))
        .distinct()
    ).scalars()
    return np.unique(np.asarray(list(ids), dtype=np.int64))


def _snapshot(engine: Engine, row: Any, dataset_name: str) -> Snapshot:
    return Snapshot(
        id=row.id,
        dataset=dataset_name,
        dataset_id=row.dataset_id,
        as_of=timestamps.from_us(row.as_of),
        max_pattern_id=row.max_pattern_id,
        sources=tuple(orjson.loads(row.sources)) if row.sources else None,
        digest=row.digest,
        patterns=row.patterns,
        note=row.note,
        created_at=timestamps.from_us(row.created_at),
        _engine=engine,
        held_out=tuple(np.frombuffer(row.held_out, dtype="<i8").tolist()) if row.held_out else (),
    )


def take_snapshot(
    engine: Engine,
    dataset: Dataset,
    *,
    as_of: str | datetime | int | None = None,
    sources: Sequence[str] | None = None,
    note: str | None = None,
) -> Snapshot:
    now = timestamps.now_us()
    when = timestamps.parse(as_of, what="as_of")
    if when is None:
        when = now
    elif when > now:
        raise InvalidInput(
            f"as_of {timestamps.iso(when)} is in the future; a snapshot can only freeze "
            "what has happened"
        )
    src = sorted({check_source(s) for s in sources}) if sources else None
    marking = change("snapshots.create", f"dataset:{dataset.name}")
    with marking, write(engine) as conn:
        lock_patterns(conn, for_snapshot=True)
        now = timestamps.now_us()  # after the lock: see lock_patterns
        if as_of is None:
            when = now
        # The last id the dataset's imports (and relabels) took by now: a pattern
        # imported later with a backdated time is no member.
        b = t.import_batches.c
        max_id = (
            conn.execute(
                select(func.max(b.last_pattern_id)).where(b.dataset_id == dataset.id)
            ).scalar()
            or 0
        )
        held_out = held_out_now(conn, dataset.id)
        members = Members(as_of=when, max_id=max_id, sources=src)
        digest, count = digests.digest(conn, dataset, members, held_out)
        if count == 0:
            what = f" from {', '.join(src)}" if src else ""
            raise InvalidInput(
                f"dataset {dataset.name!r} had no active patterns{what} at "
                f"{timestamps.iso(when)}; nothing to snapshot"
            )
        snapshot_id = conn.execute(
            insert(t.snapshots).values(
                dataset_id=dataset.id,
                as_of=when,
                max_pattern_id=max_id,
                sources=orjson.dumps(src).decode() if src else None,
                digest=digest,
                patterns=count,
                note=note,
                created_at=now,
                held_out=held_out.astype("<i8").tobytes() if len(held_out) else None,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        row = conn.execute(select(t.snapshots).where(t.snapshots.c.id == snapshot_id)).one()
    return _snapshot(engine, row, dataset.name)


def list_snapshots(engine: Engine, dataset: Dataset) -> list[Snapshot]:
    with read(engine) as conn:
        rows = conn.execute(
            select(t.snapshots)
            .where(t.snapshots.c.dataset_id == dataset.id)
            .order_by(t.snapshots.c.id)
        ).all()
    return [_snapshot(engine, r, dataset.name) for r in rows]


def snapshot_by_id(engine: Engine, snapshot_id: int) -> Snapshot:
    """The snapshot with id ``snapshot_id``."""
    with read(engine) as conn:
        row = conn.execute(select(t.snapshots).where(t.snapshots.c.id == snapshot_id)).first()
        if row is None:
            raise NotFound(f"no snapshot with id {snapshot_id}")
        name = conn.execute(
            select(t.datasets.c.name).where(t.datasets.c.id == row.dataset_id)
        ).scalar_one()
    return _snapshot(engine, row, name)


class Snapshots:
    """Snapshots by id: ``store.snapshots``."""

    #: How many answers of :meth:`trained_on` are kept.
    KEPT = 256

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._trained: OrderedDict[tuple[int, bytes], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, snapshot_id: int) -> Snapshot:
        return snapshot_by_id(self._engine, snapshot_id)

    def trained_on(self, snapshot_id: int, pattern_ids: np.ndarray) -> np.ndarray:
        """:meth:`Snapshot.trained_on`, remembered: a snapshot's members and every
        pattern's inputs never change, so neither does the answer. (On a million
        patterns it takes a third of a second, and every problem page asks it of every
        version.)"""
        ids = np.asarray(pattern_ids, dtype=np.int64)
        key = (snapshot_id, hashlib.sha256(ids.tobytes()).digest())
        with self._lock:
            if key in self._trained:
                self._trained.move_to_end(key)
                return self._trained[key].copy()
        found = self.get(snapshot_id).trained_on(ids)
        with self._lock:
            self._trained[key] = found
            while len(self._trained) > self.KEPT:
                self._trained.popitem(last=False)
        return found.copy()

    def diff(self, a: int | Snapshot, b: int | Snapshot) -> SnapshotDiff:
        """What changed in the data from snapshot ``a`` to snapshot ``b`` (ids or
        snapshots of one dataset, in either order): the patterns added, removed and
        relabelled, by source, labeller and import."""
        first = a if isinstance(a, Snapshot) else self.get(a)
        second = b if isinstance(b, Snapshot) else self.get(b)
        dataset = dataset_by_id(self._engine, first.dataset_id)
        return diff_snapshots(self._engine, dataset, first, second)


__all__ = ["SPLITS", "WEIGHTINGS", "Snapshot", "Snapshots", "TrainingData"]
