"""Backups of the embedded store: SQLite's online backup plus the artifacts.

A backup is a folder holding ``trenches.db``, ``artifacts/`` and
``manifest.json``. SQLite's backup API copies a consistent image of the
database even while other processes write to it. PostgreSQL stores are backed
up with ``pg_dump`` (see docs/deploying.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from trenches import __version__ as _version
from trenches import config, timestamps
from trenches.db import migrate
from trenches.db.engine import BUSY_TIMEOUT_S, make_engine
from trenches.errors import Conflict, InvalidInput, SchemaTooNew, StoreError

MANIFEST = "manifest.json"
_PG_HINT = (
    "backup and restore handle the embedded SQLite store; for PostgreSQL use "
    "pg_dump / pg_restore (see docs/deploying.md)"
)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    database_bytes: int
    artifact_files: int
    schema_revision: str | None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_tree(src: Path, dst: Path) -> int:
    count = 0
    if not src.exists():
        dst.mkdir(parents=True, exist_ok=True)
        return 0
    for root, _dirs, files in os.walk(src):
        target = dst / Path(root).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copy2(Path(root) / name, target / name)
            count += 1
    return count


def backup(location: config.Location, dest: str | os.PathLike[str]) -> BackupResult:
    """Copy the store at ``location`` into the new folder ``dest``."""
    if location.sqlite_path is None:
        raise StoreError(_PG_HINT)
    if not location.sqlite_path.exists():
        raise InvalidInput(f"no store at {location.sqlite_path} to back up")
    out = Path(dest)
    if out.exists() and any(out.iterdir()):
        raise Conflict(f"{out} exists and is not empty; name a new folder for the backup")
    out.mkdir(parents=True, exist_ok=True)
    db_copy = out / config.DB_FILE
    src = sqlite3.connect(location.sqlite_path, timeout=BUSY_TIMEOUT_S)
    dst = sqlite3.connect(db_copy)
    try:
        # One step (-1 pages): the copy is a single consistent read of the database.
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=DELETE")
        revision = dst.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        dst.close()
        src.close()
    # Artifacts are content-addressed and written before the rows that name them,
    # so copying them after the database misses nothing the copy refers to.
    files = _copy_tree(Path(location.artifacts), out / config.ARTIFACTS_DIR)
    manifest = {
        "trenches": _version,
        "schema_revision": revision[0] if revision else None,
        "taken_at": timestamps.iso(timestamps.now_us()),
        "source": str(location.sqlite_path),
        "database_sha256": _sha256(db_copy),
        "artifact_files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return BackupResult(out, db_copy.stat().st_size, files, revision[0] if revision else None)


def restore(
    src: str | os.PathLike[str], location: config.Location, *, force: bool = False
) -> BackupResult:
    """Restore a backup folder into the store at ``location``."""
    if location.sqlite_path is None:
        raise StoreError(_PG_HINT)
    folder = Path(src)
    db_file = folder / config.DB_FILE
    manifest_file = folder / MANIFEST
    if not db_file.exists() or not manifest_file.exists():
        raise InvalidInput(
            f"{folder} is not a trenches backup (no {config.DB_FILE} and {MANIFEST})"
        )
    manifest = json.loads(manifest_file.read_text())
    if _sha256(db_file) != manifest.get("database_sha256"):
        raise InvalidInput(f"{db_file} does not match the checksum in {MANIFEST}; it is damaged")
    check = sqlite3.connect(db_file)
    try:
        ok = check.execute("PRAGMA integrity_check").fetchone()[0]
        row = check.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as e:
        raise InvalidInput(f"{db_file} is not a readable trenches database: {e}") from None
    finally:
        check.close()
    if ok != "ok":
        raise InvalidInput(f"{db_file} fails SQLite's integrity check: {ok}")
    if row is None or not migrate.is_known(row[0]):
        raise SchemaTooNew(
            f"the backup's schema revision {row[0] if row else None!r} is unknown to this "
            "version of trenches; restore it with the trenches that wrote it, or a newer one"
        )
    target = location.sqlite_path
    if target.exists() and not force:
        raise Conflict(f"a store exists at {target}; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".restoring")
    shutil.copy2(db_file, tmp)
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    os.replace(tmp, target)
    files = _copy_tree(folder / config.ARTIFACTS_DIR, Path(location.artifacts))
    engine = make_engine(location.db_url)
    try:
        migrate.upgrade(engine)  # refuses a backup from a newer trenches
    finally:
        engine.dispose()
    revision = manifest.get("schema_revision")
    return BackupResult(target, target.stat().st_size, files, str(revision) if revision else None)
