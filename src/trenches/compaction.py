"""``trenches compact`` and ``trenches migrate``: the housekeeping of the store's bulk
facts, and moving an earlier release's blobs into the tables.

First the predictions still kept inline (small batches, as rows of SQL) move into the
Iceberg table, a million at a time, each move one transaction. Then each table's small
files are merged partition by partition, Iceberg snapshots replaced before the cutoff
are expired, and files no kept snapshot reaches are removed
(:mod:`trenches.tables.housekeeping`). Everything is safe to run while others read
and write; a compaction that is killed leaves the store as its last finished step did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import Engine, select

from trenches import prediction_commits, predictions, tables
from trenches.db import schema as t
from trenches.db.engine import read, write
from trenches.json_form import from_json
from trenches.patterns import columnar
from trenches.patterns.inputs import InputSchema
from trenches.requests import stored
from trenches.tables import TableCompaction

if TYPE_CHECKING:
    from trenches.tables.catalog import TableSpec

#: How far back ``trenches compact`` leaves snapshots and files alone by default: a
#: reader or writer in progress for less than this never loses a file.
DEFAULT_OLDER_THAN = "3d"


@dataclass(frozen=True)
class Compaction:
    """What ``trenches compact`` did: predictions moved out of SQL, and each table."""

    predictions_moved: int
    #: Requests moved from the database's staging rows into the request log's tables.
    requests_moved: int
    tables: list[TableCompaction]


def compact(
    engine: Engine, *, before_us: int, progress: Callable[[str], None] | None = None
) -> Compaction:
    """Compact the store's tables (see the module's notes); ``before_us``: snapshots
    replaced and files written before this moment may go."""
    from trenches.tables import housekeeping

    say = progress or (lambda _: None)
    moved = move_predictions(engine, say)
    requests_moved = move_requests(engine, say)
    with read(engine) as conn:
        store_tables = tables.of(conn)
    done = []
    for name in housekeeping.names(engine):
        spec, sort_by = _spec_of(engine, name)
        result = housekeeping.compact(
            engine, store_tables, name, spec, before_us=before_us, sort_by=sort_by, progress=say
        )
        done.append(result)
    done += housekeeping.remove_strays(engine, store_tables, before_us=before_us, progress=say)
    return Compaction(moved, requests_moved, done)


def _spec_of(engine: Engine, name: str) -> tuple[TableSpec | None, tuple[str, ...]]:
    """How the table ``name`` is made and sorted, for merging its files (None: a table
    this release does not know; its files are kept as they are)."""
    if name == predictions.TABLE:
        return predictions.table_spec(), ("predictor_id", "pattern_id")
    with read(engine) as conn:
        logged = stored.spec_of(conn, name)
    if logged is not None:
        return logged
    dataset_id = columnar.dataset_of(name)
    if dataset_id is not None:
        d = t.datasets.c
        with read(engine) as conn:
            schema = conn.execute(select(d.input_schema).where(d.id == dataset_id)).scalar()
        if schema:
            parsed = from_json(InputSchema, orjson.loads(schema))
            return columnar.table_spec(dataset_id, parsed), ("split", "pattern_id")
    return None, ()


def move_predictions(engine: Engine, say: Callable[[str], None]) -> int:
    """Move every prediction kept in the database into the Iceberg table, a million at
    a time, each move one transaction (a killed move loses nothing, and the next run
    goes on from there); returns how many moved."""
    moved = 0
    while True:
        with write(engine) as conn:
            step = prediction_commits.move_inline(conn)
        if step == 0:
            return moved
        moved += step
        say(f"predictions: moved {moved:,} from the database into the table")


def move_requests(engine: Engine, say: Callable[[str], None]) -> int:
    """Move every request staged in the database into the request log's tables, each
    move one transaction; returns how many moved."""
    return stored.move_all(
        engine, progress=lambda n: say(f"requests: moved {n:,} from the database into the tables")
    )


@dataclass(frozen=True)
class Migration:
    """What ``trenches migrate`` moved out of the database into the tables."""

    #: Datasets whose pattern inputs moved into their tables, and how many patterns.
    datasets_moved: int
    patterns_moved: int
    predictions_moved: int
    requests_moved: int


def migrate(engine: Engine, *, progress: Callable[[str], None] | None = None) -> Migration:
    """Move what an earlier release kept as blobs in the database into the Iceberg
    tables: each dataset's pattern inputs (one transaction a dataset), every stored
    prediction (a million per transaction), then every logged request's inputs and
    outputs. A migration that is stopped can be
    run again and goes on where it was."""
    say = progress or (lambda _: None)
    d = t.datasets.c
    with read(engine) as conn:
        todo = conn.execute(select(d.id, d.name).where(d.columnar.is_(False)).order_by(d.id)).all()
    datasets = patterns = 0
    for dataset_id, name in todo:
        with write(engine) as conn:
            moved = columnar.move_dataset(conn, dataset_id)
        datasets += 1
        patterns += moved
        say(f"dataset {name}: moved the inputs of {moved:,} patterns into its table")
    moved = move_predictions(engine, say)
    return Migration(datasets, patterns, moved, move_requests(engine, say))
