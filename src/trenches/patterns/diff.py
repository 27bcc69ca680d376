"""What changed in a dataset's patterns between two snapshots: the patterns added,
removed and relabelled, by source, labeller and import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import id_in, read
from trenches.errors import InvalidInput
from trenches.json_form import json_shape
from trenches.patterns import inputs as inp
from trenches.patterns.datasets import Dataset
from trenches.patterns.frames import Members, read_patterns

if TYPE_CHECKING:
    from trenches.patterns.snapshots import Snapshot

#: The kinds of change, in the order they are listed.
KINDS = ("added", "removed", "relabelled")
#: Why a member of A is not a member of B (the ``why`` column of ``removed``).
DEACTIVATED, NOT_IN_SOURCES, AFTER_B = "deactivated", "not in B's sources", "after B"
PATTERN_COLUMNS = ("split", "source", "labelled_by", "batch_id", "label", "created_at")
RELABEL_COLUMNS = (
    "old_id",
    "new_id",
    "old_label",
    "new_label",
    "source",
    "labelled_by",
    "batch_id",
    "reason",
    "changed_at",
)
SUMMARY_COLUMNS = ("change", "source", "labelled_by", "batch_id", "patterns")
_PROVENANCE = ["source", "labelled_by", "batch_id"]


@dataclass(frozen=True)
class DataChange:
    """How one pattern id figures in a :class:`SnapshotDiff`.

    ``kind`` is ``"added"`` (a member of B only: ``new_id``, ``new_label``),
    ``"removed"`` (a member of A only: ``old_id``, ``old_label``, and in ``reason`` why
    it is not in B) or ``"relabelled"`` (one version of an example whose label changed:
    ``old_id`` in A, ``new_id`` in B, or an id in the chain between them). ``source``,
    ``labelled_by`` and ``batch_id`` are those of the pattern's import, or for a
    relabel those of the relabel that made the later of the two versions.
    """

    pattern_id: int
    kind: str
    source: str
    labelled_by: str | None
    batch_id: int
    old_id: int | None
    new_id: int | None
    old_label: str | None
    new_label: str | None
    reason: str | None

    def describe(self) -> str:
        """One line, e.g. ``relabelled benign -> malignant by dr.house (expert) in
        import 7: second opinion``."""
        who = (
            f"by {self.labelled_by} ({self.source})" if self.labelled_by else f"from {self.source}"
        )
        where = f"{who} in import {self.batch_id}"
        if self.kind == "added":
            return f"added {where}"
        if self.kind == "removed":
            return f"removed ({self.reason}); labelled {self.old_label} {where}"
        why = f": {self.reason}" if self.reason else ""
        if self.old_id is not None and self.new_id is not None and self.new_id < self.old_id:
            # A relabel always makes a new, higher id: B holds the version before it.
            return (
                f"relabelled {self.old_label} -> {self.new_label} (B is older: relabelled "
                f"{self.new_label} -> {self.old_label} {where}{why})"
            )
        return f"relabelled {self.old_label} -> {self.new_label} {where}{why}"


@json_shape(
    computed={"counts": lambda diff: _records(diff.summary())},
    encode={
        "added": lambda frame: _records(frame),
        "removed": lambda frame: _records(frame),
        "relabelled": lambda frame: _records(frame),
    },
    order=("a", "b", "counts"),
)
@dataclass(frozen=True, eq=False, repr=False)
class SnapshotDiff:
    """What changed in a dataset's patterns from snapshot ``a`` to snapshot ``b``.

    Every member of B is in A, in ``added`` or the ``new_id`` of a relabel; every member
    of A is in B, in ``removed`` or the ``old_id`` of a relabel. ``a`` and ``b`` may
    come in either order: when B is the older snapshot, ``removed`` says "after B" and a
    relabel's ``old_id`` is the later version.

    - ``added``, indexed by ``pattern_id``: split, source, labelled_by, batch_id, label
      (as stored, as text) and created_at of the members of B that A lacks;
    - ``removed``: the same for the members of A that B lacks, with ``why``
      ("deactivated", "not in B's sources" or "after B") and ``reason`` (the
      deactivation's reason; for a pattern relabelled into a source B leaves out, the
      relabel);
    - ``relabelled``: one row per example whose version in A was replaced by a relabel
      (or a chain of them) by its version in B: old_id, new_id, old_label, new_label,
      and the source, labelled_by, batch_id, reason and changed_at of the relabel that
      made the later version (a chain that comes back to its first label keeps its
      row, with old_label equal to new_label);
    - ``held_out_added``, ``held_out_removed``: pattern ids held out of training in B
      and not in A, and the other way round.
    """

    a: Snapshot
    b: Snapshot
    added: pd.DataFrame
    removed: pd.DataFrame
    relabelled: pd.DataFrame
    held_out_added: tuple[int, ...]
    held_out_removed: tuple[int, ...]
    #: Every id of each relabel chain (A's version, those between, B's version) -> the
    #: position of its row in ``relabelled``.
    _chain_rows: pd.Series

    def __repr__(self) -> str:
        return (
            f"<SnapshotDiff {self.a.id} -> {self.b.id}: {len(self.added)} added, "
            f"{len(self.removed)} removed, {len(self.relabelled)} relabelled>"
        )

    @property
    def empty(self) -> bool:
        """True when A and B have the same patterns and hold out the same ones."""
        return not (
            len(self.added)
            or len(self.removed)
            or len(self.relabelled)
            or self.held_out_added
            or self.held_out_removed
        )

    def summary(self) -> pd.DataFrame:
        """Pattern counts by change, source, labelled_by and batch_id (the import), sorted."""
        parts = [
            frame[_PROVENANCE].assign(change=kind)
            for kind, frame in zip(KINDS, self._frames(), strict=True)
            if len(frame)
        ]
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in SUMMARY_COLUMNS})
        counts = (
            pd.concat(parts, ignore_index=True)
            .groupby(["change", *_PROVENANCE], dropna=False)
            .size()
            .rename("patterns")
            .reset_index()
        )
        counts["labelled_by"] = _nones(counts["labelled_by"])
        return counts.sort_values(list(SUMMARY_COLUMNS[:-1]), ignore_index=True)[
            list(SUMMARY_COLUMNS)
        ]

    def change(self, pattern_id: int) -> DataChange | None:
        """How ``pattern_id`` figures in the diff, or None when it does not. An id of a
        relabel chain (A's version, B's version or one in between) gives the relabel."""
        pid = int(pattern_id)
        if pid in self.added.index:
            row = self.added.loc[pid]
            return _change(pid, "added", row, new_id=pid, new_label=row["label"])
        if pid in self.removed.index:
            row = self.removed.loc[pid]
            reason = f"{row['why']}: {row['reason']}" if _given(row["reason"]) else row["why"]
            return _change(pid, "removed", row, old_id=pid, old_label=row["label"], reason=reason)
        if pid in self._chain_rows.index:
            row = self.relabelled.iloc[int(self._chain_rows.loc[pid])]
            return _change(
                pid,
                "relabelled",
                row,
                old_id=int(row["old_id"]),
                new_id=int(row["new_id"]),
                old_label=row["old_label"],
                new_label=row["new_label"],
                reason=row["reason"],
            )
        return None

    def _frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        return self.added, self.removed, self.relabelled


def diff_snapshots(engine: Engine, dataset: Dataset, a: Snapshot, b: Snapshot) -> SnapshotDiff:
    """What changed from snapshot ``a`` to snapshot ``b`` of ``dataset``."""
    if a.dataset_id != b.dataset_id:
        raise InvalidInput(
            f"snapshot {a.id} is of dataset {a.dataset!r} and snapshot {b.id} of dataset "
            f"{b.dataset!r}; a diff compares two snapshots of the same dataset"
        )
    in_a, in_b = a.pattern_ids(), b.pattern_ids()
    # Read after the memberships, so every member is in it (patterns are never deleted).
    labels, info = read_patterns(dataset, Members(include_inactive=True), with_inputs=False)
    text = _LabelText(labels[dataset.label_column], dataset.label_type or "string")
    only_a = np.setdiff1d(in_a, in_b, assume_unique=True)
    only_b = np.setdiff1d(in_b, in_a, assume_unique=True)
    replaces = info["replaces_id"].dropna()
    previous = dict(
        zip(replaces.index.tolist(), replaces.to_numpy(dtype=np.int64).tolist(), strict=True)
    )
    pairs, chains = _relabel_pairs(previous, only_a, only_b)
    removed_ids = np.setdiff1d(only_a, pairs["old_id"].to_numpy(), assume_unique=True)
    added_ids = np.setdiff1d(only_b, pairs["new_id"].to_numpy(), assume_unique=True)
    fates = _fates(info, removed_ids, b, previous)
    # One read of the changes wanted: each relabel's, and the deactivations that took
    # patterns out of B.
    wanted = [previous[i] for i in pairs["later_id"].tolist()] + fates["change_of"].tolist()
    changes = _changes(engine, wanted)
    removed = _pattern_frame(info, text, removed_ids)
    removed["why"] = fates["why"].to_numpy()
    removed["reason"] = _reasons(info, fates, changes)
    relabelled = _relabel_frame(info, text, pairs, previous, changes)
    return SnapshotDiff(
        a=a,
        b=b,
        added=_pattern_frame(info, text, added_ids),
        removed=removed,
        relabelled=relabelled,
        held_out_added=_ids(np.setdiff1d(b.held_out, a.held_out)),
        held_out_removed=_ids(np.setdiff1d(a.held_out, b.held_out)),
        _chain_rows=_chain_rows(chains, relabelled, pairs),
    )


class _LabelText:
    """Labels of chosen patterns as stored (text), converted only for those asked for."""

    def __init__(self, labels: pd.Series, label_type: str) -> None:
        self._labels, self._type = labels, label_type

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        values = self._labels.loc[ids].to_numpy()
        return np.array(inp.label_to_text(values, self._type), dtype=object)


def _walk_back(starts: np.ndarray, previous: dict[int, int]) -> pd.DataFrame:
    """Every ancestor ``id`` of each of ``starts`` through ``replaces_id``, ``depth``
    steps back. Only relabelled patterns are walked, and chains are short."""
    start: list[int] = []
    ancestor: list[int] = []
    depth: list[int] = []
    for s in starts.tolist():
        v, d = s, 0
        while v in previous:
            v, d = previous[v], d + 1
            start.append(s)
            ancestor.append(v)
            depth.append(d)
    return pd.DataFrame(
        {
            "start": np.array(start, dtype=np.int64),
            "id": np.array(ancestor, dtype=np.int64),
            "depth": np.array(depth, dtype=np.int64),
        }
    )


def _relabel_pairs(
    previous: dict[int, int], only_a: np.ndarray, only_b: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The relabels between A and B: (old_id in A, new_id in B, later_id: the one a
    relabel made), sorted by old_id; and every id of each chain with its later_id.

    A relabel deactivates the old version as it creates the new one, so no two versions
    of an example are ever members of one snapshot: the later version's chain meets the
    other snapshot at most once.
    """
    relabels = np.fromiter(previous, dtype=np.int64, count=len(previous))
    pairs: list[pd.DataFrame] = []
    chains: list[pd.DataFrame] = []
    for later, other, b_is_later in ((only_b, only_a, True), (only_a, only_b, False)):
        walk = _walk_back(later[np.isin(later, relabels)], previous)
        hit = walk[np.isin(walk["id"].to_numpy(), other)]
        stop = walk["start"].map(hit.set_index("start")["depth"])
        inner = walk[(walk["depth"] <= stop).to_numpy(dtype=bool)]
        chains += [
            pd.DataFrame({"id": inner["id"], "later_id": inner["start"]}),
            pd.DataFrame({"id": hit["start"], "later_id": hit["start"]}),
        ]
        found, start = hit["id"].to_numpy(), hit["start"].to_numpy()
        old, new = (found, start) if b_is_later else (start, found)
        pairs.append(pd.DataFrame({"old_id": old, "new_id": new, "later_id": start}))
    return (
        pd.concat(pairs, ignore_index=True).sort_values("old_id", ignore_index=True),
        pd.concat(chains, ignore_index=True),
    )


def _fates(
    info: pd.DataFrame, ids: np.ndarray, b: Snapshot, previous: dict[int, int]
) -> pd.DataFrame:
    """Why each of ``ids`` (members of A only, not relabelled into B) is not in B, by
    pattern id: ``why``; ``change_of``, the pattern whose change (a deactivation, or the
    relabel into a source B leaves out) says why, -1 for none; ``became``, for such a
    relabel, the version current at B, -1 otherwise."""
    rows = info.loc[ids]
    as_of = pd.Timestamp(b.as_of)
    after = (rows["created_at"] > as_of).to_numpy(dtype=bool) | (ids > b.max_pattern_id)
    gone = (rows["deactivated_at"] <= as_of).to_numpy(dtype=bool) & ~after
    why = np.where(after, AFTER_B, np.where(gone, DEACTIVATED, NOT_IN_SOURCES)).astype(object)
    change_of = np.where(gone, ids, -1)
    became = np.full(len(ids), -1, dtype=np.int64)
    following = {old: new for new, old in previous.items()}
    deactivated = info["deactivated_at"]
    # Follow the relabels of an example to its version current at B: deactivated by
    # then, or out of B's sources (were it in B, this would be a relabel).
    for k in np.flatnonzero(gone & np.isin(ids, list(following))).tolist():
        v = int(ids[k])
        while v in following and deactivated.at[v] <= as_of:
            v = following[v]
        if deactivated.at[v] <= as_of:
            change_of[k] = v
        else:
            why[k], change_of[k], became[k] = NOT_IN_SOURCES, previous[v], v
    return pd.DataFrame({"why": why, "change_of": change_of, "became": became}, index=ids)


def _changes(engine: Engine, ids: list[int]) -> pd.DataFrame:
    """The change of each of ``ids`` (a pattern changes once: it is inactive after),
    indexed by pattern_id: kind, reason, changed_at."""
    c = t.pattern_changes.c
    wanted = sorted({i for i in ids if i >= 0})
    rows: list[Any] = []
    if wanted:
        with read(engine) as conn:
            rows = list(
                conn.execute(
                    select(c.pattern_id, c.kind, c.reason, c.changed_at)
                    .where(id_in(conn.dialect.name, c.pattern_id, wanted))
                    .order_by(c.changed_at, c.id)
                ).all()
            )
    frame = pd.DataFrame(rows, columns=["pattern_id", "kind", "reason", "changed_at"]).astype(
        {"pattern_id": np.int64, "reason": object}
    )
    frame = frame.set_index("pattern_id")
    return frame[~frame.index.duplicated(keep="last")]


def _reasons(info: pd.DataFrame, fates: pd.DataFrame, changes: pd.DataFrame) -> np.ndarray:
    """The ``reason`` column of ``removed``: the change's own reason, and for a relabel
    into a source B leaves out, which pattern it became."""
    reason = _nones(changes["reason"].reindex(fates["change_of"].to_numpy())).to_numpy(copy=True)
    became = fates["became"].to_numpy()
    for k in np.flatnonzero(became >= 0).tolist():
        source = info.at[int(became[k]), "source"]
        reason[k] = f"relabelled as pattern {became[k]}, source {source}: {reason[k]}"
    return np.asarray(reason)


def _pattern_frame(info: pd.DataFrame, text: _LabelText, ids: np.ndarray) -> pd.DataFrame:
    frame = info.loc[ids, ["split", "source", "labelled_by", "batch_id", "created_at"]]
    frame.insert(4, "label", text(ids))
    return frame


def _relabel_frame(
    info: pd.DataFrame,
    text: _LabelText,
    pairs: pd.DataFrame,
    previous: dict[int, int],
    changes: pd.DataFrame,
) -> pd.DataFrame:
    later = info.loc[pairs["later_id"].to_numpy()]
    change = changes.reindex([previous[i] for i in pairs["later_id"].tolist()])
    return pd.DataFrame(
        {
            "old_id": pairs["old_id"].to_numpy(dtype=np.int64),
            "new_id": pairs["new_id"].to_numpy(dtype=np.int64),
            "old_label": text(pairs["old_id"].to_numpy()),
            "new_label": text(pairs["new_id"].to_numpy()),
            "source": later["source"].to_numpy(),
            "labelled_by": later["labelled_by"].to_numpy(),
            "batch_id": later["batch_id"].to_numpy(dtype=np.int64),
            "reason": _nones(change["reason"]).to_numpy(),
            "changed_at": pd.to_datetime(
                change["changed_at"].to_numpy(), unit="us", utc=True
            ).astype(info["created_at"].dtype),
        }
    )


def _chain_rows(chains: pd.DataFrame, relabelled: pd.DataFrame, pairs: pd.DataFrame) -> pd.Series:
    row_of_later = pd.Series(np.arange(len(relabelled)), index=pairs["later_id"].to_numpy())
    return pd.Series(
        row_of_later.reindex(chains["later_id"].to_numpy()).to_numpy(dtype=np.int64),
        index=chains["id"].to_numpy(dtype=np.int64),
        dtype=np.int64,
    )


def _change(pid: int, kind: str, row: pd.Series, **sides: Any) -> DataChange:
    values = {
        "old_id": None,
        "new_id": None,
        "old_label": None,
        "new_label": None,
        "reason": None,
    }
    values.update({k: v if _given(v) else None for k, v in sides.items()})
    return DataChange(
        pattern_id=pid,
        kind=kind,
        source=str(row["source"]),
        labelled_by=str(row["labelled_by"]) if _given(row["labelled_by"]) else None,
        batch_id=int(row["batch_id"]),
        **values,
    )


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def _nones(series: pd.Series) -> pd.Series:
    """``series`` as objects, with None where a value is missing."""
    return series.astype(object).where(series.notna(), None)


def _ids(values: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in values.tolist())


def _dtype(column: str) -> Any:
    return np.int64 if column in ("batch_id", "patterns") else object


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain values for JSON: ids as ints, times in ISO 8601, None for missing."""
    if frame.index.name is not None:
        frame = frame.reset_index()
    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            columns[str(name)] = [
                timestamps.iso(timestamps.to_us(v.to_pydatetime())) if pd.notna(v) else None
                for v in series
            ]
        else:
            columns[str(name)] = _nones(series).tolist()
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


__all__ = ["KINDS", "DataChange", "SnapshotDiff", "diff_snapshots"]
