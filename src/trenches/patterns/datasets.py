"""Datasets: a named collection of patterns for one task (``Dataset``), and the
store's datasets (``store.datasets``). How rows are imported into one is
:mod:`trenches.patterns.imports`; how its patterns are read, :mod:`trenches.patterns.frames`."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import change
from trenches.db.engine import read, write
from trenches.errors import Conflict, InvalidInput, NotFound
from trenches.json_form import from_json, json_shape, to_json
from trenches.names import SPLITS
from trenches.names import check_source as check_source
from trenches.patterns import imports
from trenches.patterns import inputs as inp
from trenches.patterns.frames import Members, ids_of
from trenches.patterns.frames import read_patterns as read_patterns
from trenches.patterns.imports import ImportResult, ProgressCallback
from trenches.patterns.members import member_rows, value_counts
from trenches.patterns.tolerance import Tolerance, tolerance_for

if TYPE_CHECKING:
    from trenches.patterns.folds import Opener
    from trenches.patterns.quality import QualityReport
    from trenches.patterns.snapshots import Snapshot

# read_patterns and check_source are imported "as" themselves: they lived here before
# frames.py and imports.py were split out, and modules outside patterns/ still import
# them from here.

TASKS = ("classification", "regression")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


def check_name(name: str, what: str = "dataset name") -> str:
    if not _NAME.match(name or ""):
        raise InvalidInput(
            f"{what} {name!r} must start with a letter or digit and hold only letters, "
            "digits, '_', '.' and '-'"
        )
    return name


@json_shape(rename={"label_column": "label"})
@dataclass(frozen=True)
class DatasetSummary:
    """What ``trenches data show`` prints."""

    name: str
    task: str
    label_column: str
    schema: inp.InputSchema | None
    active: int
    inactive: int
    imports: int
    snapshots: int
    by_split: dict[str, int]
    by_source: dict[str, int]
    by_label: dict[str, int]
    by_month: dict[str, int]


class Dataset:
    """A named collection of patterns for one task, with an input schema and a label."""

    def __init__(self, engine: Engine, row: Any, *, elsewhere: Opener | None = None) -> None:
        self._engine = engine
        # Where the folds of its label-error check are fitted (None: this process).
        self._elsewhere = elsewhere
        self.id: int = row.id
        self.name: str = row.name
        self.task: str = row.task
        self.label_column: str = row.label_column
        self.label_type: str | None = row.label_type
        self.text_column: str | None = row.text_column
        self.schema: inp.InputSchema | None = (
            from_json(inp.InputSchema, orjson.loads(row.input_schema)) if row.input_schema else None
        )
        self.salt: bytes = bytes.fromhex(row.salt)
        self.split_ratios: tuple[float, float, float] = (
            row.split_train,
            row.split_validation,
            row.split_test,
        )
        self.description: str | None = row.description
        self.created_at: datetime = timestamps.from_us(row.created_at)
        #: Regression: how near a prediction must come to its label to be right.
        self.tolerance: Tolerance | None = Tolerance.from_columns(
            row.tolerance_abs, row.tolerance_rel
        )
        #: Whether its patterns' inputs live in its Iceberg table (see
        #: :mod:`trenches.patterns.columnar`), or packed in its rows (an earlier release's).
        self.columnar: bool = bool(row.columnar)

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r} {self.task} label={self.label_column!r}>"

    @property
    def engine(self) -> Engine:
        """The database the dataset lives in."""
        return self._engine

    # --- import ---------------------------------------------------------------

    # The keyword options of a public method are its API (``Dataset.add_file``).
    def add_file(  # noqa: PLR0913
        self,
        path: str | os.PathLike[str],
        *,
        source: str,
        labelled_by: str | None = None,
        note: str | None = None,
        created_at: str | datetime | int | None = None,
        tags: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        skip_existing: bool = False,
        file_name: str | None = None,
    ) -> ImportResult:
        """Import a CSV, Parquet or JSONL file; one transaction, all or nothing.

        A row the dataset holds already (the same inputs, label and source) is stored
        again, and counted in ``already_stored``, unless ``skip_existing``: then only
        the new rows are. ``file_name`` is what errors and the import's record call the
        file (by default its path): a server gives the name a client sent, as text, and
        reads the upload from a path of its own."""
        return imports.add_file(
            self._engine,
            self,
            path,
            imports.Provenance(
                source, labelled_by=labelled_by, note=note, created_at=created_at, tags=tags
            ),
            progress=progress,
            skip_existing=skip_existing,
            file_name=file_name,
        )

    def add_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        source: str,
        labelled_by: str | None = None,
        note: str | None = None,
        created_at: str | datetime | int | None = None,
        tags: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        skip_existing: bool = False,
    ) -> list[ImportResult]:
        """Import several files (paths or URLs such as ``s3://...``), in order: an
        import batch a file, all in one transaction, all or nothing. A row of a later
        file the same as one of an earlier file counts as stored already, as when they
        are imported one after the other. On a Dask cluster (``[compute] scheduler``),
        each file is read and written by a worker, with the same result (see
        :mod:`trenches.patterns.file_imports`). A result a file, in order."""
        from trenches.patterns.file_imports import add_files

        return add_files(
            self._engine,
            self,
            paths,
            imports.Provenance(
                source, labelled_by=labelled_by, note=note, created_at=created_at, tags=tags
            ),
            progress=progress,
            skip_existing=skip_existing,
            elsewhere=self._elsewhere,
        )

    def add_file_frame(
        self,
        frame: pd.DataFrame,
        *,
        file: str,
        source: str,
        labelled_by: str | None = None,
        note: str | None = None,
    ) -> ImportResult:
        """Import rows read from ``file`` (errors name the file; CSV rules for missing)."""
        return imports.add_frame(
            self._engine,
            self,
            frame.reset_index(drop=True),
            imports.Provenance(source, labelled_by=labelled_by, note=note),
            file=file,
            text_file=file.lower().endswith(".csv"),
            progress=None,
            skip_existing=False,
        )

    def add(
        self,
        frame: pd.DataFrame,
        *,
        source: str,
        labelled_by: str | None = None,
        note: str | None = None,
        created_at: str | datetime | int | None = None,
        tags: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        skip_existing: bool = False,
    ) -> ImportResult:
        """Import the rows of a DataFrame (inputs and the label column) as patterns.

        A row the dataset holds already (the same inputs, label and source) is stored
        again, and counted in ``already_stored``, unless ``skip_existing``: then only
        the new rows are."""
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(f"expected a pandas DataFrame, got {type(frame).__name__}")
        if len(frame) == 0:
            raise InvalidInput("the DataFrame has no rows")
        return imports.add_frame(
            self._engine,
            self,
            frame.reset_index(drop=True),
            imports.Provenance(
                source, labelled_by=labelled_by, note=note, created_at=created_at, tags=tags
            ),
            file=None,
            text_file=False,
            progress=progress,
            skip_existing=skip_existing,
        )

    def split_of(self, frame: pd.DataFrame) -> pd.Series:
        """The split each row of ``frame`` lands in when imported (train, validation or
        test), indexed as ``frame``. It depends on the inputs and the dataset's salt
        alone: copies, and inputs equal to about 11 significant digits, land together.
        Nothing is stored."""
        return imports.split_of(self, frame)

    def coerce_label(self, value: Any) -> Any:
        """One label converted to this dataset's label type, or ``InvalidInput``."""
        if self.label_type is None:
            raise Conflict(f"dataset {self.name!r} has no patterns yet")
        values = imports.coerce_labels(
            self, pd.Series([value], dtype=object), self.label_type, None
        )
        return values[0]

    # --- reading ----------------------------------------------------------------

    def patterns(
        self,
        *,
        as_of: str | datetime | int | None = None,
        split: str | None = None,
        include_inactive: bool = False,
        ids: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        """Patterns as a DataFrame indexed by ``pattern_id``: the input columns and the
        label column, exactly as imported. ``as_of`` selects those active at a time."""
        frame, _ = read_patterns(
            self,
            Members(timestamps.parse(as_of, what="as_of"), include_inactive=include_inactive),
            split=split,
            ids=ids,
        )
        return frame

    def pattern_ids(self, split: str | None = None) -> np.ndarray:
        """The ids of the active patterns (of one split), ascending."""
        return ids_of(self, Members(), split)

    def pattern_info(
        self,
        *,
        as_of: str | datetime | int | None = None,
        include_inactive: bool = False,
    ) -> pd.DataFrame:
        """Provenance of each pattern, indexed by ``pattern_id``: split, source,
        labeller, batch, created_at, deactivated_at, replaces_id."""
        _, info = read_patterns(
            self,
            Members(timestamps.parse(as_of, what="as_of"), include_inactive=include_inactive),
            with_inputs=False,
        )
        return info

    def summary(self) -> DatasetSummary:
        """Counts of the active patterns by split, source, label and month of arrival."""
        with read(self._engine) as conn:
            batches = conn.execute(
                select(func.count()).where(t.import_batches.c.dataset_id == self.id)
            ).scalar_one()
            snaps = conn.execute(
                select(func.count()).where(t.snapshots.c.dataset_id == self.id)
            ).scalar_one()
        counts = _table_counts(self) if self.columnar else _row_counts(self)
        return DatasetSummary(
            name=self.name,
            task=self.task,
            label_column=self.label_column,
            schema=self.schema,
            imports=int(batches),
            snapshots=int(snaps),
            **counts._asdict(),
        )

    def set_tolerance(self, tolerance: Tolerance | str | float | None) -> Tolerance | None:
        """Set (or with None clear) the regression tolerance: a prediction within it of
        its label is right, for problem scores, flips and gates. ``"0.5"`` is
        absolute, ``"10%"`` relative to the label, ``"0.5 or 10%"`` the looser of both."""
        value = tolerance_for(self.name, self.task, tolerance)
        with write(self._engine) as conn:
            conn.execute(
                update(t.datasets)
                .where(t.datasets.c.id == self.id)
                .values(
                    tolerance_abs=value.absolute if value else None,
                    tolerance_rel=value.relative if value else None,
                )
            )
        self.tolerance = value
        return value

    # --- snapshots and quality --------------------------------------------------

    def snapshot(
        self,
        *,
        as_of: str | datetime | int | None = None,
        sources: Sequence[str] | None = None,
        note: str | None = None,
    ) -> Snapshot:
        """Freeze the patterns active at ``as_of`` (default now) into a snapshot."""
        from trenches.patterns.snapshots import take_snapshot

        return take_snapshot(self._engine, self, as_of=as_of, sources=sources, note=note)

    def snapshots(self) -> list[Snapshot]:
        from trenches.patterns.snapshots import list_snapshots

        return list_snapshots(self._engine, self)

    def check(
        self,
        *,
        snapshot: int | None = None,
        precision: int = 4,
        progress: Callable[[int, int], None] | None = None,
    ) -> QualityReport:
        """Run the data quality checks on the active patterns, or on a snapshot. The
        label-error check's folds are fitted on the store's Dask cluster when
        ``[compute] scheduler`` names one (a fold a task), else in this process, with
        the same result; ``progress(done, folds)`` hears of each fold."""
        from trenches.patterns.quality import check_dataset

        return check_dataset(
            self._engine,
            self,
            snapshot_id=snapshot,
            precision=precision,
            elsewhere=self._elsewhere,
            progress=progress,
        )


class _Counts(NamedTuple):
    """A dataset's patterns counted, as a summary shows them."""

    active: int
    inactive: int
    by_split: dict[str, int]
    by_source: dict[str, int]
    by_label: dict[str, int]
    by_month: dict[str, int]


def _row_counts(dataset: Dataset) -> _Counts:
    """:class:`_Counts` of an earlier release's dataset, from its ``patterns`` rows."""
    p = t.patterns.c
    active = [p.dataset_id == dataset.id, p.deactivated_at.is_(None)]

    def counts(column: Any) -> dict[Any, int]:
        with read(dataset.engine) as conn:
            rows = conn.execute(
                select(column, func.count()).where(*active).group_by(column).order_by(column)
            ).all()
        return {k: int(n) for k, n in rows}

    with read(dataset.engine) as conn:
        total, inactive = conn.execute(
            select(
                func.count(),
                func.count(p.deactivated_at),
            ).where(p.dataset_id == dataset.id)
        ).one()
        times = conn.execute(
            select(p.created_at, func.count()).where(*active).group_by(p.created_at)
        ).all()
    by_month: dict[str, int] = {}
    for us, n in sorted(times):
        month = timestamps.from_us(us).strftime("%Y-%m")
        by_month[month] = by_month.get(month, 0) + int(n)
    return _Counts(
        active=int(total) - int(inactive),
        inactive=int(inactive),
        by_split={SPLITS[k]: v for k, v in counts(p.split).items()},
        by_source=counts(p.source),
        by_label=counts(p.label),
        by_month=by_month,
    )


def _table_counts(dataset: Dataset) -> _Counts:
    """:class:`_Counts` of a columnar dataset: its active patterns from its table, the
    inactive ones counted by their changes (a pattern changes once)."""
    c = t.pattern_changes.c
    with read(dataset.engine) as conn:
        data = member_rows(
            conn,
            dataset.id,
            Members(),
            ["split", "source", "label", "created_at"],
            dictionary=("source", "label"),
        )
        inactive = conn.execute(select(func.count()).where(c.dataset_id == dataset.id)).scalar_one()
    if data is None or not data.num_rows:
        return _Counts(0, int(inactive), {}, {}, {}, {})
    split = np.bincount(data["split"].to_numpy(), minlength=len(SPLITS))
    return _Counts(
        active=data.num_rows,
        inactive=int(inactive),
        by_split={SPLITS[k]: int(split[k]) for k in np.flatnonzero(split).tolist()},
        by_source=value_counts(data["source"]),
        by_label=value_counts(data["label"]),
        by_month=_by_month(data["created_at"].to_numpy()),
    )


def _by_month(created_at: np.ndarray) -> dict[str, int]:
    """How many of the times ``created_at`` (microseconds) fall in each month (UTC),
    by month in order."""
    times, n = np.unique(created_at, return_counts=True)
    months = times.astype("datetime64[us]").astype("datetime64[M]")
    firsts, at = np.unique(months, return_inverse=True)
    sums = np.bincount(at, weights=n)
    starts = firsts.astype("datetime64[us]").astype(np.int64).tolist()
    return {
        timestamps.from_us(us).strftime("%Y-%m"): int(total)
        for us, total in zip(starts, sums.tolist(), strict=True)
    }


def dataset_by_id(
    engine: Engine,
    dataset_id: int,
    conn: Connection | None = None,
    *,
    elsewhere: Opener | None = None,
) -> Dataset:
    """The dataset with id ``dataset_id`` (read on ``conn`` when given)."""
    if conn is None:
        with read(engine) as c:
            return dataset_by_id(engine, dataset_id, c, elsewhere=elsewhere)
    row = conn.execute(select(t.datasets).where(t.datasets.c.id == dataset_id)).first()
    if row is None:
        raise NotFound(f"no dataset with id {dataset_id}")
    return Dataset(engine, row, elsewhere=elsewhere)


class Datasets:
    """The datasets of a store: ``store.datasets``. ``elsewhere`` opens where the folds
    of a dataset's label-error check are fitted (see :meth:`Dataset.check`)."""

    def __init__(self, engine: Engine, *, elsewhere: Opener | None = None) -> None:
        self._engine = engine
        self._elsewhere = elsewhere

    # The keyword options of a public method are its API (``store.datasets.create``).
    def create(  # noqa: PLR0913
        self,
        name: str,
        *,
        task: str,
        label: str,
        text: str | None = None,
        schema: inp.InputSchema | str | None = None,
        splits: tuple[float, float, float] = (0.7, 0.15, 0.15),
        description: str | None = None,
        salt: str | None = None,
        tolerance: Tolerance | str | float | None = None,
    ) -> Dataset:
        """Create a dataset. The input schema is given, or inferred from the first import.

        ``tolerance`` (regression): how near a prediction must come to its label to
        count as right, e.g. ``"0.5"``, ``"10%"`` or ``"0.5 or 10%"``."""
        check_name(name)
        if task not in TASKS:
            raise InvalidInput(f"task {task!r} must be one of {', '.join(TASKS)}")
        tol = tolerance_for(name, task, tolerance)
        if not label:
            raise InvalidInput("the label column must be named")
        if len(splits) != 3 or any(s < 0 for s in splits) or abs(sum(splits) - 1) > 1e-9:
            raise InvalidInput(
                f"split ratios {splits} must be three non-negative numbers adding up to 1"
            )
        if isinstance(schema, str):
            schema = inp.InputSchema.parse(schema)
        if schema is not None:
            if label in schema.names:
                raise InvalidInput(f"the label column {label!r} cannot also be an input")
            if text and text not in schema.names:
                raise InvalidInput(f"the text column {text!r} is not in the schema")
            if text:
                schema = inp.InputSchema(
                    tuple(
                        inp.InputColumn(c.name, "text") if c.name == text else c
                        for c in schema.columns
                    )
                )
        if salt is not None and not re.fullmatch(r"[0-9a-f]{32}", salt):
            raise InvalidInput("salt must be 32 hexadecimal digits")
        marking = change("datasets.create", f"dataset:{name}", {"task": task})
        with marking, write(self._engine) as conn:
            if conn.execute(select(t.datasets.c.id).where(t.datasets.c.name == name)).first():
                raise Conflict(f"a dataset named {name!r} exists already")
            conn.execute(
                insert(t.datasets).values(
                    name=name,
                    task=task,
                    label_column=label,
                    label_type="number" if task == "regression" else None,
                    text_column=text,
                    input_schema=None if schema is None else orjson.dumps(to_json(schema)).decode(),
                    salt=salt or secrets.token_hex(16),
                    split_train=splits[0],
                    split_validation=splits[1],
                    split_test=splits[2],
                    description=description,
                    created_at=timestamps.now_us(),
                    tolerance_abs=tol.absolute if tol else None,
                    tolerance_rel=tol.relative if tol else None,
                    columnar=True,
                )
            )
        return self.get(name)

    def get(self, name: str) -> Dataset:
        with read(self._engine) as conn:
            row = conn.execute(select(t.datasets).where(t.datasets.c.name == name)).first()
        if row is None:
            known = [d.name for d in self.list()]
            hint = f"; datasets here: {', '.join(known)}" if known else "; there are none yet"
            raise NotFound(f"no dataset named {name!r}{hint}")
        return Dataset(self._engine, row, elsewhere=self._elsewhere)

    def by_id(self, dataset_id: int, conn: Connection | None = None) -> Dataset:
        return dataset_by_id(self._engine, dataset_id, conn, elsewhere=self._elsewhere)

    def __getitem__(self, name: str) -> Dataset:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        with read(self._engine) as conn:
            return (
                conn.execute(select(t.datasets.c.id).where(t.datasets.c.name == name)).first()
                is not None
            )

    def list(self) -> list[Dataset]:
        with read(self._engine) as conn:
            rows = conn.execute(select(t.datasets).order_by(t.datasets.c.name)).all()
        return [Dataset(self._engine, r, elsewhere=self._elsewhere) for r in rows]
