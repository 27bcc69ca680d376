"""How much of an Iceberg table's history its commits keep.

Each commit of a table adds a snapshot to its metadata, and pyiceberg copies the whole
metadata, every snapshot in it, several times in each commit: the predictions table of
a store that had evaluated and backfilled 500 versions held 436 snapshots, and a commit
of it took 0.9 s, nearly all of it those copies (a cluster's client spent a third of a
core on them). So a commit also forgets the oldest snapshots beyond the newest
:data:`KEPT` that only appends followed. Every file such a snapshot reaches, the current
snapshot still reaches: nothing ``trenches compact`` may remove is taken from a reader
of the table as it is. (A snapshot before a merge, whose files the merge replaced, is
left to ``trenches compact``'s rules.) trenches reads its tables as of their current
snapshot only; no Iceberg snapshot id is kept anywhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update import (
    RemoveSnapshotsUpdate,
    UpdatesAndRequirements,
    UpdateTableMetadata,
)

if TYPE_CHECKING:
    from collections.abc import Collection

    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata

#: The snapshots of appends a commit leaves in a table's history.
KEPT = 32


def forgettable(metadata: TableMetadata, kept: int | None = None) -> list[int]:
    """The snapshots of ``metadata``'s history, oldest first, beyond its newest ``kept``
    (:data:`KEPT`) that nothing but appends followed (never the current one)."""
    kept = KEPT if kept is None else kept
    log = metadata.snapshot_log
    snapshots = {s.snapshot_id: s for s in metadata.snapshots}
    first = 0
    for k in range(len(log) - 1, -1, -1):
        snapshot = snapshots.get(log[k].snapshot_id)
        if snapshot is None or snapshot.summary is None:
            first = k + 1
            break
        if snapshot.summary.operation != Operation.APPEND:
            first = k + 1  # it, and what came before, are compact's to expire
            break
    current = metadata.current_snapshot_id
    return [
        entry.snapshot_id
        for entry in log[first : max(first, len(log) - kept)]
        if entry.snapshot_id in snapshots and entry.snapshot_id != current
    ]


def trim(tx: Transaction, table: Table, kept: int | None = None) -> int:
    """In the transaction ``tx`` of ``table`` (as loaded for it): forget what
    :func:`forgettable` finds. How many snapshots."""
    doomed = forgettable(table.metadata, kept)
    if doomed:
        forget(tx, doomed)
    return len(doomed)


def forget(tx: Transaction, snapshot_ids: Collection[int]) -> None:
    """Expire ``snapshot_ids`` in the transaction ``tx``, all in one change of its
    metadata (pyiceberg's ``ExpireSnapshots.by_ids`` copies the metadata twice for
    each id: hundreds of ids took minutes)."""
    with _Forget(tx, set(snapshot_ids)):
        pass


class _Forget(UpdateTableMetadata["_Forget"]):
    """One ``remove-snapshots`` change of a table's metadata."""

    def __init__(self, transaction: Transaction, snapshot_ids: set[int]) -> None:
        super().__init__(transaction)
        self._ids = snapshot_ids

    def _commit(self) -> UpdatesAndRequirements:
        return (RemoveSnapshotsUpdate.model_validate({"snapshot-ids": sorted(self._ids)}),), ()
