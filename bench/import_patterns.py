"""Import throughput: trenches ``Dataset.add_file`` against a raw DB-API ``executemany``.

What it measures
----------------
A fixed-seed table of ``--rows`` patterns (``--columns`` float64 inputs ``f0``, ``f1``, ...
plus an integer 0/1 ``label``) is written once to a Parquet file in a fresh temporary
folder (``tempfile``, so ``$TMPDIR`` is honoured). Then, ``--repeats`` times:

- **trenches**: a new store (SQLite: a new store folder; PostgreSQL: a new dataset in the
  given database), then the wall time of ``ds.add_file(path, source="expert")``: reading
  the Parquet file, checking and encoding every pattern, hashing, and the one write
  transaction. The stored count is checked against ``--rows``.
- **raw**: the same rows from the same Parquet file, read with pyarrow, turned into
  tuples and inserted with the driver's own ``executemany`` (``sqlite3`` with the same
  pragmas as trenches, journal_mode=WAL and synchronous=NORMAL; psycopg for
  PostgreSQL) into a plain table (an integer primary key, one REAL / double precision
  column per input and the label) in one transaction. The time covers reading the file,
  building the tuples and the insert, up to the commit.

It prints patterns per second (wall clock) for both, their ratio, and whether the targets
hold: at least 100,000 patterns/s for trenches, and at least half the raw rate. With
several repeats the best run of each is compared. The process's CPU seconds are shown
too: on a busy machine they say how much of the wall time was this import's own work.

How to run
----------
::

    python bench/import_patterns.py [--rows N]
    python bench/import_patterns.py --rows 200000 --repeats 3 --json
    python bench/import_patterns.py --db-url postgresql+psycopg://user@host:5432/scratch

Options: ``--rows`` (default 1,000,000), ``--columns`` (20), ``--repeats`` (1), ``--keep``
(keep the temporary folder), ``--db-url`` (PostgreSQL instead of SQLite), ``--json`` (one
JSON line after the table).

With ``--db-url`` use a throwaway database: the raw table ``bench_raw`` is dropped at
the end, but the trenches datasets stay (patterns are never deleted).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text
from sqlalchemy.engine import make_url

import trenches

SEED = 20_240_601
#: Rows turned into tuples and handed to ``executemany`` at a time in the raw run; the
#: same chunk size as trenches' own import (``trenches.patterns.imports.CHUNK_ROWS``).
RAW_CHUNK_ROWS = 50_000
TARGET_RATE = 100_000.0
TARGET_RATIO = 0.5
RAW_TABLE = "bench_raw"


@dataclass(frozen=True)
class Run:
    """One timed import."""

    kind: str  # trenches | raw
    repeat: int
    rows: int
    seconds: float  # wall time
    cpu_seconds: float  # this process's CPU time; less sensitive to a busy machine

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


# --- data -----------------------------------------------------------------------------


def input_names(columns: int) -> list[str]:
    return [f"f{i}" for i in range(columns)]


def write_patterns(path: Path, rows: int, columns: int) -> None:
    """The benchmark's patterns, from a fixed seed, as one Parquet file."""
    rng = np.random.default_rng(SEED)
    values = rng.standard_normal((rows, columns))
    data: dict[str, Any] = {name: values[:, j] for j, name in enumerate(input_names(columns))}
    data["label"] = rng.integers(0, 2, size=rows, dtype=np.int64)
    pq.write_table(pa.table(data), path)


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def row_tuples(table: pa.Table, names: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``table`` as tuples of Python values, ``RAW_CHUNK_ROWS`` at a time."""
    for batch in table.to_batches(max_chunksize=RAW_CHUNK_ROWS):
        columns = [batch.column(name).to_numpy(zero_copy_only=False).tolist() for name in names]
        yield list(zip(*columns, strict=True))


# --- trenches -------------------------------------------------------------------------


def run_trenches(parquet: Path, rows: int, repeat: int, workdir: Path, db_url: str | None) -> Run:
    """Time ``add_file`` into a fresh dataset and check what it stored."""
    if db_url is None:
        store = trenches.open(workdir / f"store-{repeat}")
        name = "bench"
    else:
        store = trenches.open(db_url)
        name = f"bench-{os.getpid()}-{time.time_ns()}-{repeat}"
    try:
        ds = store.datasets.create(name, task="classification", label="label")
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        result = ds.add_file(parquet, source="expert", progress=None)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        with store.engine.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM patterns WHERE batch_id = :b"),
                {"b": result.batch_id},
            ).scalar_one()
    finally:
        store.close()
    if result.rows != rows or stored != rows:
        raise SystemExit(f"trenches stored {stored} patterns (reported {result.rows}), not {rows}")
    return Run("trenches", repeat, rows, seconds, cpu)


# --- raw executemany ------------------------------------------------------------------


def _raw_insert_sql(names: Sequence[str], placeholder: str) -> str:
    columns = [*names, "label"]
    return (
        f"INSERT INTO {RAW_TABLE} ({', '.join(columns)}) "
        f"VALUES ({', '.join([placeholder] * len(columns))})"
    )


def _timed_raw_load(parquet: Path, names: Sequence[str], insert: Any) -> None:
    """Read the file and feed its rows to ``insert(chunk)``; the caller commits."""
    table = pq.read_table(parquet)
    # trenches pauses the cyclic GC while it builds and inserts its rows (see
    # trenches.patterns.frames.no_gc); for a fair comparison the raw run pauses it
    # around the same steps. Both read the Parquet file with the GC running.
    with gc_paused():
        for chunk in row_tuples(table, [*names, "label"]):
            insert(chunk)


def run_raw_sqlite(parquet: Path, rows: int, repeat: int, workdir: Path, columns: int) -> Run:
    names = input_names(columns)
    path = workdir / f"raw-{repeat}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        defs = ", ".join(f"{n} REAL" for n in names)
        conn.execute(f"CREATE TABLE {RAW_TABLE} (id INTEGER PRIMARY KEY, {defs}, label INTEGER)")
        sql = _raw_insert_sql(names, "?")
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        conn.execute("BEGIN IMMEDIATE")
        _timed_raw_load(parquet, names, lambda chunk: conn.executemany(sql, chunk))
        conn.execute("COMMIT")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        stored = conn.execute(f"SELECT count(*) FROM {RAW_TABLE}").fetchone()[0]
    finally:
        conn.close()
    if stored != rows:
        raise SystemExit(f"the raw insert stored {stored} rows, not {rows}")
    return Run("raw", repeat, rows, seconds, cpu)


def libpq_url(db_url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) as a libpq connection string."""
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


def run_raw_postgres(parquet: Path, rows: int, repeat: int, db_url: str, columns: int) -> Run:
    import psycopg

    names = input_names(columns)
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        defs = ", ".join(f"{n} double precision" for n in names)
        conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        conn.execute(
            f"CREATE TABLE {RAW_TABLE} "
            f"(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {defs}, label bigint)"
        )
        sql = _raw_insert_sql(names, "%s")
        try:
            gc.collect()
            with conn.cursor() as cur:
                start, cpu_start = time.perf_counter(), time.process_time()
                with conn.transaction():
                    _timed_raw_load(parquet, names, lambda chunk: cur.executemany(sql, chunk))
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                cur.execute(f"SELECT count(*) FROM {RAW_TABLE}")
                row = cur.fetchone()
                stored = row[0] if row else -1
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
    if stored != rows:
        raise SystemExit(f"the raw insert stored {stored} rows, not {rows}")
    return Run("raw", repeat, rows, seconds, cpu)


# --- report ---------------------------------------------------------------------------


def versions(db_url: str | None) -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "trenches": getattr(trenches, "__version__", "?"),
    }
    if db_url is not None:
        import psycopg

        with psycopg.connect(libpq_url(db_url)) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        out["postgresql"] = str(row[0]) if row else "?"
        out["psycopg"] = psycopg.__version__
    return out


def best(runs: Sequence[Run], kind: str) -> Run:
    return max((r for r in runs if r.kind == kind), key=lambda r: r.rate)


def report(args: argparse.Namespace, engine: str, runs: Sequence[Run]) -> dict[str, Any]:
    info = versions(args.db_url)
    trench, raw = best(runs, "trenches"), best(runs, "raw")
    ratio = trench.rate / raw.rate
    rate_ok = trench.rate >= TARGET_RATE
    ratio_ok = ratio >= TARGET_RATIO

    print()
    print(
        f"import of {args.rows:,} patterns x {args.columns} numeric columns from Parquet"
        f" into {engine}"
    )
    print(
        "  "
        + ", ".join(f"{k} {v}" for k, v in info.items())
        + f", cpu_count {os.cpu_count()}, {platform.machine()}"
    )
    print()
    print(
        f"  {'run':<10}{'engine':<12}{'repeat':>7}{'rows':>12}{'seconds':>10}{'cpu s':>8}"
        f"{'patterns/s':>13}"
    )
    lines = [(r, str(r.repeat)) for r in runs]
    if args.repeats > 1:
        lines += [(trench, "best"), (raw, "best")]
    for r, label in lines:
        print(
            f"  {r.kind:<10}{engine:<12}{label:>7}{r.rows:>12,}{r.seconds:>10.2f}"
            f"{r.cpu_seconds:>8.2f}{r.rate:>13,.0f}"
        )
    load = os.getloadavg()
    print(f"  load average (1, 5, 15 min) at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print()
    print(f"  ratio trenches/raw: {ratio:.2f}")
    print(
        f"  target trenches >= {TARGET_RATE:,.0f} patterns/s: {trench.rate:,.0f}"
        f"  {'holds' if rate_ok else 'MISSED'}"
    )
    print(
        f"  target trenches/raw >= {TARGET_RATIO}: {ratio:.2f}  {'holds' if ratio_ok else 'MISSED'}"
    )
    return {
        "engine": engine,
        "rows": args.rows,
        "columns": args.columns,
        "repeats": args.repeats,
        "runs": [asdict(r) | {"rate": r.rate} for r in runs],
        "trenches_rate": trench.rate,
        "raw_rate": raw.rate,
        "ratio": ratio,
        "target_rate_holds": rate_ok,
        "target_ratio_holds": ratio_ok,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        **info,
    }


# --- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="patterns to import")
    parser.add_argument("--columns", type=int, default=20, help="numeric input columns")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each kind")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--db-url",
        help="a PostgreSQL SQLAlchemy URL (postgresql+psycopg://...); default SQLite in a "
        "temporary folder",
    )
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.columns < 1 or args.repeats < 1:
        parser.error("--rows, --columns and --repeats must be positive")
    if args.db_url is not None and not args.db_url.startswith(("postgresql", "postgres:")):
        parser.error("--db-url must be a PostgreSQL URL; SQLite is the default")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    engine = "sqlite" if args.db_url is None else "postgresql"
    workdir = Path(tempfile.mkdtemp(prefix="trenches-bench-"))
    if args.db_url is not None:
        # A server store keeps its artifacts under ./.trenches by default; keep the
        # working directory clean.
        os.environ.setdefault("TRENCHES_ARTIFACTS", str(workdir / "artifacts"))
    try:
        parquet = workdir / "patterns.parquet"
        start = time.perf_counter()
        write_patterns(parquet, args.rows, args.columns)
        print(
            f"wrote {args.rows:,} patterns to {parquet} "
            f"({parquet.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
        runs: list[Run] = []
        for repeat in range(1, args.repeats + 1):
            run = run_trenches(parquet, args.rows, repeat, workdir, args.db_url)
            print(f"trenches, repeat {repeat}: {run.seconds:.2f} s", file=sys.stderr)
            runs.append(run)
            if args.db_url is None:
                run = run_raw_sqlite(parquet, args.rows, repeat, workdir, args.columns)
            else:
                run = run_raw_postgres(parquet, args.rows, repeat, args.db_url, args.columns)
            print(f"raw, repeat {repeat}: {run.seconds:.2f} s", file=sys.stderr)
            runs.append(run)
        summary = report(args, engine, runs)
        if args.json:
            print(json.dumps(summary, sort_keys=True))
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
