"""Backups of the embedded store: SQLite's online backup plus the artifacts and the
files of the store's Iceberg tables.

A backup is a folder holding ``trenches.db``, ``artifacts/``, ``tables/`` and
``manifest.json``. The tables' files are those the copied database's catalog rows
reach (every snapshot kept); table files are never rewritten, and a commit's files are
written before its catalog row, so everything the copy names is there to be copied.
SQLite's backup API copies a consistent image of the database even while other
processes write to it. PostgreSQL stores are backed up with ``pg_dump`` (see
docs/deploying.md).

Neither side trusts the other. A backup is written into a folder beside its name and
renamed to it once whole, so one that fails (a full disk) leaves nothing; it copies the
artifacts the database names, each checked against its SHA-256. A restore checks
everything first (the manifest, the database's checksum and integrity, every artifact's
bytes against its name, and that every artifact the database names is there) and only
then replaces the store: artifacts first, then the database, upgraded aside and renamed
over the old one, so a restore that is killed or fails leaves the old store, and one
that ends leaves the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trenches import __version__ as _version
from trenches import config, timestamps
from trenches.artifacts import (
    ArtifactStore,
    blocks_of,
    sync_folder,
    write_error,
    write_file,
)
from trenches.db import migrate
from trenches.db.engine import BUSY_TIMEOUT_S, make_engine
from trenches.db.faults import disk_is_full
from trenches.errors import (
    ArtifactCorrupted,
    Conflict,
    DiskFull,
    InvalidInput,
    NotFound,
    SchemaTooNew,
    StoreBusy,
    StoreError,
)

MANIFEST = "manifest.json"
_PG_HINT = (
    "backup and restore handle the embedded SQLite store; for PostgreSQL use "
    "pg_dump / pg_restore (see docs/deploying.md)"
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: Seconds a restore waits for others to let go of the store it replaces.
_IN_USE_WAIT_S = 2.0


@dataclass(frozen=True)
class BackupResult:
    path: Path
    database_bytes: int
    artifact_files: int
    schema_revision: str | None


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read_only(database: Path) -> sqlite3.Connection:
    """A connection that cannot change ``database`` (a backup is only read)."""
    return sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)


def _blob_path(folder: Path, sha256: str) -> Path:
    return folder / "sha256" / sha256[:2] / sha256[2:4] / sha256


def _remove_leftovers(folder: Path, pattern: str) -> None:
    """Remove what a backup or restore killed half way left (``pattern``) in ``folder``."""
    for stale in folder.glob(pattern):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


# --- backup -------------------------------------------------------------------------


def backup(location: config.Location, dest: str | os.PathLike[str]) -> BackupResult:
    """Copy the store at ``location`` into the new folder ``dest``, all or nothing."""
    if location.sqlite_path is None:
        raise StoreError(_PG_HINT)
    if not location.sqlite_path.exists():
        raise InvalidInput(f"no store at {location.sqlite_path} to back up")
    out = Path(dest)
    if out.exists() and not out.is_dir():
        raise Conflict(f"{out} is a file; name a new folder for the backup")
    try:
        if out.exists() and any(out.iterdir()):
            raise Conflict(f"{out} exists and is not empty; name a new folder for the backup")
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(out.parent, f".{out.name}.partial-*")
    except OSError as e:
        raise write_error(e, f"the backup folder {out}") from None
    work = out.parent / f".{out.name}.partial-{uuid.uuid4().hex}"
    try:
        work.mkdir()
        revision = _copy_database(location.sqlite_path, work / config.DB_FILE)
        try:
            shas = _copy_artifacts(location, work)
            table_files = _copy_tables(location, work)
        except DiskFull:
            raise DiskFull(
                f"no space left on the disk to write the backup {out}; nothing of it was "
                "kept: free some space and try again"
            ) from None
        manifest = {
            "trenches": _version,
            "schema_revision": revision,
            "taken_at": timestamps.iso(timestamps.now_us()),
            "source": str(location.sqlite_path),
            "database_sha256": _sha256(work / config.DB_FILE),
            "artifact_files": len(shas),
            "artifacts": shas,
            "table_files": table_files,
        }
        text = json.dumps(manifest, indent=2) + "\n"
        write_file(work / MANIFEST, [text.encode()], what=f"the backup's {MANIFEST} in {out}")
        size = (work / config.DB_FILE).stat().st_size
        if out.exists():
            out.rmdir()  # the empty folder named for it
        os.replace(work, out)
        sync_folder(out.parent)
    except OSError as e:
        raise write_error(e, f"the backup {out}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BackupResult(out, size, len(shas), revision)


def _copy_database(source: Path, copy: Path) -> str | None:
    """Copy the database with SQLite's online backup; returns its schema revision."""
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)
    dst = sqlite3.connect(copy)
    try:
        # One step (-1 pages): the copy is a single consistent read of the database.
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=DELETE")
        row = dst.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error as e:
        if disk_is_full(e, str(copy)) or disk_is_full(e, str(source)):
            raise DiskFull(
                f"no space left on the disk to copy {source} into the backup ({e}); nothing "
                "was kept: free some space (on the backup's disk, or the store's) and try "
                "again"
            ) from None
        raise StoreError(f"cannot back up {source}: {e}") from None
    finally:
        dst.close()
        src.close()
    with copy.open("rb+") as f:
        os.fsync(f.fileno())
    return str(row[0]) if row else None


def _named_artifacts(database: Path) -> dict[str, int]:
    """The artifacts a (copied) database names: SHA-256 and size."""
    con = _read_only(database)
    try:
        has_table = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'artifacts'"
        ).fetchone()
        rows = con.execute("SELECT sha256, size FROM artifacts").fetchall() if has_table else []
    finally:
        con.close()
    return {str(sha): int(size) for sha, size in rows}


def _copy_artifacts(location: config.Location, work: Path) -> list[str]:
    """Copy every artifact the copied database names, each checked against its SHA-256
    as it streams. Returns their SHA-256, sorted. Blobs no row names (left by a write
    that failed after its file was stored) are not needed and not copied."""
    store = ArtifactStore(location.artifacts)
    named = sorted(_named_artifacts(work / config.DB_FILE))
    folder = work / config.ARTIFACTS_DIR
    folder.mkdir()
    for sha in named:
        try:
            store.copy_to(sha, _blob_path(folder, sha))
        except NotFound:
            raise StoreError(
                f"artifact {sha}, which the database names, is missing from {store.root}; "
                "the store is damaged and a backup of it would not restore: restore the "
                "file from an earlier backup"
            ) from None
        except ArtifactCorrupted:
            raise ArtifactCorrupted(
                f"artifact {sha} in {store.root} is damaged: its bytes no longer hash to its "
                "name, so no backup was written; restore the file from an earlier backup"
            ) from None
    return named


def _table_locations(database: Path) -> list[str]:
    """The metadata file of each Iceberg table a (copied) database's catalog names."""
    con = _read_only(database)
    try:
        has_table = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'iceberg_tables'"
        ).fetchone()
        rows = (
            con.execute(
                "SELECT metadata_location FROM iceberg_tables "
                "WHERE metadata_location IS NOT NULL ORDER BY table_name"
            ).fetchall()
            if has_table
            else []
        )
    finally:
        con.close()
    return [str(r[0]) for r in rows]


def _copy_tables(location: config.Location, work: Path) -> dict[str, str]:
    """Copy every file of the Iceberg tables the copied database names into
    ``work/tables/...`` (the same path as under the artifacts location). Returns each
    file's path and SHA-256."""
    locations = _table_locations(work / config.DB_FILE)
    if not locations:
        return {}
    from trenches.tables.catalog import Tables
    from trenches.tables.io import relative

    tables = Tables(location.artifacts)
    copied: dict[str, str] = {}
    for file in tables.reachable(locations):
        rel = relative(file)
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with tables.fs.open(rel, "rb") as f:
                sha, _ = write_file(
                    dest, blocks_of(f), what=f"the backup's copy of {rel}", source=file
                )
        except FileNotFoundError:
            raise StoreError(
                f"{file}, a file of the store's tables, is missing from {location.artifacts}; "
                "the store is damaged and a backup of it would not restore: restore it from "
                "an earlier backup"
            ) from None
        copied[rel] = sha
    return dict(sorted(copied.items()))


def _restore_tables(
    folder: Path, files: dict[str, str], location: config.Location, added: list[str]
) -> None:
    """Put the backup's table files back under the artifacts location (before the
    database that names them), naming in ``added`` each one that was not there."""
    if not files:
        return
    from trenches.tables.io import file_system, is_local

    fs = file_system(location.artifacts)
    local = is_local(fs.fs)
    for rel, sha in files.items():
        if not fs.exists(rel):
            added.append(rel)
        with (folder / rel).open("rb") as src:
            if local:  # written aside and renamed: a killed restore damages nothing
                dest = Path(fs.path) / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_file(
                    dest, blocks_of(src), what=str(dest), sha256=sha, source=str(folder / rel)
                )
            else:  # an object appears whole or not at all
                with fs.open(rel, "wb") as out:
                    for block in blocks_of(src):
                        out.write(block)


def _discard_tables(location: config.Location, added: list[str]) -> None:
    """Remove the table files a failed restore put there (no database names them)."""
    if not added:
        return
    from trenches.tables.io import file_system

    fs = file_system(location.artifacts)
    for rel in added:
        with contextlib.suppress(OSError):
            fs.rm(rel)


# --- restore ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Checked:
    """A backup folder that passed every check."""

    database: Path
    database_sha256: str
    schema_revision: str | None
    #: Each artifact's SHA-256 and its file in the backup.
    blobs: dict[str, Path]
    #: The backup folder, and each table file's path in it and SHA-256.
    folder: Path
    table_files: dict[str, str]


def restore(
    src: str | os.PathLike[str], location: config.Location, *, force: bool = False
) -> BackupResult:
    """Restore a backup folder into the store at ``location``, or leave it as it was."""
    if location.sqlite_path is None:
        raise StoreError(_PG_HINT)
    backup = _check(Path(src))
    target = location.sqlite_path
    if target.exists() and not force:
        raise Conflict(f"a store exists at {target}; pass --force to replace it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(target.parent, f".{target.name}.restoring-*")
    except OSError as e:
        raise write_error(e, f"the store folder {target.parent}") from None
    aside = target.with_name(f".{target.name}.restoring-{uuid.uuid4().hex}")
    artifacts = ArtifactStore(location.artifacts)
    added: list[str] = []
    added_tables: list[str] = []
    try:
        # The database is made ready beside the store, where a failure costs nothing.
        with backup.database.open("rb") as f:
            write_file(
                aside,
                blocks_of(f),
                what=f"the restored database beside {target}",
                sha256=backup.database_sha256,
                source=str(backup.database),
            )
        _upgrade(aside)
        # Then the artifacts: a database never names a file that is not there yet.
        # Storing the right bytes under a name also mends a file left damaged there.
        for sha, path in backup.blobs.items():
            if not artifacts.exists(sha):
                added.append(sha)
            artifacts.put_file(path, sha256=sha)
        _restore_tables(backup.folder, backup.table_files, location, added_tables)
        _retire(target)
        os.replace(aside, target)
    except BaseException as e:
        for sha in added:
            artifacts.discard(sha)
        _discard_tables(location, added_tables)
        if isinstance(e, OSError):
            raise write_error(e, f"the restored database {target}") from None
        raise
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{aside}{suffix}").unlink(missing_ok=True)
    # Restored: the new store stands whatever happens now.
    with contextlib.suppress(OSError):
        sync_folder(target.parent)
    return BackupResult(target, target.stat().st_size, len(backup.blobs), backup.schema_revision)


def _upgrade(database: Path) -> None:
    """Bring a database to this code's schema, and leave it one self-contained file."""
    full = DiskFull(
        f"no space left on the disk of {database.parent} to prepare the restored "
        "database; nothing was replaced: free some space and try again"
    )
    engine = make_engine(f"sqlite:///{database}")
    try:
        migrate.upgrade(engine)  # refuses a backup from a newer trenches
    except DiskFull:
        raise full from None
    finally:
        engine.dispose()
    con = sqlite3.connect(database)
    try:
        con.execute("PRAGMA journal_mode=DELETE").fetchone()
    except sqlite3.Error as e:
        if disk_is_full(e, str(database)):
            raise full from None
        raise StoreError(f"cannot prepare the restored database: {e}") from None
    finally:
        con.close()


def _retire(target: Path) -> None:
    """Make the store about to be replaced one self-contained file (its write-ahead log
    folded in), so that removing the log loses nothing if the replacement never comes;
    refuse while another process uses it."""
    if target.exists():
        con = sqlite3.connect(target, timeout=_IN_USE_WAIT_S)
        try:
            con.execute("PRAGMA journal_mode=DELETE").fetchone()
        except sqlite3.DatabaseError as e:
            # Locked: someone uses it. Anything else: a store too damaged to open,
            # which is replaced as it is.
            if "locked" in str(e) or "busy" in str(e):
                raise StoreBusy(
                    f"the store at {target} is in use by another process (a server, an "
                    "import); stop it, then restore"
                ) from None
        finally:
            con.close()
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)


def _check(folder: Path) -> _Checked:
    if not folder.exists():
        raise NotFound(f"no backup at {folder}: no such folder")
    if not folder.is_dir():
        raise InvalidInput(
            f"{folder} is a file, not a backup (a folder written by trenches backup)"
        )
    db_file = folder / config.DB_FILE
    manifest_file = folder / MANIFEST
    if not db_file.is_file() or not manifest_file.is_file():
        raise InvalidInput(
            f"{folder} is not a trenches backup (no {config.DB_FILE} and {MANIFEST})"
        )
    manifest = _read_manifest(manifest_file)
    if _sha256(db_file) != manifest["database_sha256"]:
        raise InvalidInput(f"{db_file} does not match the checksum in {MANIFEST}; it is damaged")
    revision = _check_database(db_file)
    blobs, strays = _backup_blobs(folder / config.ARTIFACTS_DIR)
    count = manifest["artifact_files"]
    if len(blobs) + strays != count:
        raise InvalidInput(
            f"{manifest_file} counts {count} artifact files, but "
            f"{folder / config.ARTIFACTS_DIR} holds {len(blobs) + strays}; the backup is "
            "incomplete or was changed"
        )
    listed = manifest.get("artifacts")
    wanted = set(listed or []) | set(_named_artifacts(db_file))
    missing = sorted(wanted - set(blobs))
    if missing:
        raise InvalidInput(
            f"artifact {missing[0]}, which the backup's {MANIFEST} or database names, is "
            f"missing from {folder / config.ARTIFACTS_DIR}"
            + (f" ({len(missing) - 1} more are missing too)" if len(missing) > 1 else "")
        )
    table_files = manifest.get("table_files") or {}
    for rel, sha in table_files.items():
        path = folder / rel
        if not path.is_file():
            raise InvalidInput(
                f"{path}, a file of the store's tables that the backup's {MANIFEST} names, "
                "is missing"
            )
        if _sha256(path) != sha:
            raise InvalidInput(
                f"{path} is damaged: its bytes no longer hash to the SHA-256 the backup's "
                f"{MANIFEST} gives it; the backup cannot be restored as it is"
            )
    return _Checked(
        db_file, manifest["database_sha256"], revision, blobs, folder, dict(table_files)
    )


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(f"not JSON ({e}); it is damaged", file=str(path)) from None
    if not isinstance(manifest, dict):
        raise InvalidInput(
            f"must be a JSON object, found {type(manifest).__name__}", file=str(path)
        )
    sha = manifest.get("database_sha256")
    if not isinstance(sha, str) or not _HEX64.match(sha):
        raise InvalidInput(
            f'"database_sha256" must be a SHA-256 (64 hex digits), found {sha!r}', file=str(path)
        )
    count = manifest.get("artifact_files")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InvalidInput(
            f'"artifact_files" must be a count of files, found {count!r}', file=str(path)
        )
    listed = manifest.get("artifacts")
    if listed is not None and (
        not isinstance(listed, list)
        or not all(isinstance(s, str) and _HEX64.match(s) for s in listed)
    ):
        raise InvalidInput('"artifacts" must be a list of SHA-256s', file=str(path))
    tables = manifest.get("table_files")
    if tables is not None and (
        not isinstance(tables, dict)
        or not all(
            isinstance(rel, str)
            and rel.startswith("tables/")
            and ".." not in rel.split("/")
            and isinstance(sha, str)
            and _HEX64.match(sha)
            for rel, sha in tables.items()
        )
    ):
        raise InvalidInput('"table_files" must map paths under tables/ to SHA-256s', file=str(path))
    return manifest


def _check_database(db_file: Path) -> str:
    """Check that the backup's database is a sound trenches store this code can open;
    returns its schema revision."""
    con = _read_only(db_file)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as e:
        raise InvalidInput(f"{db_file} is not a readable trenches database: {e}") from None
    finally:
        con.close()
    if ok != "ok":
        raise InvalidInput(f"{db_file} fails SQLite's integrity check: {ok}")
    if row is None or not migrate.is_known(row[0]):
        raise SchemaTooNew(
            f"the backup's schema revision {row[0] if row else None!r} is unknown to this "
            "version of trenches; restore it with the trenches that wrote it, or a newer one"
        )
    return str(row[0])


def _backup_blobs(folder: Path) -> tuple[dict[str, Path], int]:
    """The artifacts in a backup's folder, each checked against its name, and the number
    of leftovers beside them (``.tmp`` files an older trenches copied from a write in
    progress). Anything else is refused, naming the file."""
    blobs: dict[str, Path] = {}
    strays = 0
    if not folder.is_dir():
        return blobs, strays
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if name.startswith(".") and name.endswith(".tmp"):
                strays += 1
                continue
            if not _HEX64.match(name) or path != _blob_path(folder, name):
                raise InvalidInput(
                    f"{path} is not an artifact of a trenches backup "
                    "(artifacts/sha256/ab/cd/<its SHA-256>)"
                )
            actual = _sha256(path)
            if actual != name:
                raise InvalidInput(
                    f"{path} is damaged: its bytes hash to {actual}, not to its name; the "
                    "backup cannot be restored as it is"
                )
            blobs[name] = path
    return blobs, strays
