"""A content-addressed file store over fsspec: the same bytes are stored once, under
their SHA-256, and every read checks them against it.

Files live at ``<root>/sha256/ab/cd/abcd...``; the root is a local folder by default
(``.trenches/artifacts``) or any fsspec URL (``s3://bucket/trenches``). A blob is
written before any database row names it, and never changed or removed afterwards
(except by an explicit purge), so a copy of the root taken after a database backup
holds everything the backup refers to.

A blob appears whole or not at all: it is written aside, checked against its name,
flushed to the disk and renamed into place. A name found holding other bytes (a copy
cut short by a crash, a damaged disk) is written again when the right bytes are stored.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import posixpath
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import fsspec

from trenches.errors import (
    ArtifactCorrupted,
    DiskFull,
    InvalidInput,
    NotFound,
    StoreError,
)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 1 << 20
#: ``errno`` of a write that found no room: the disk, or the user's quota, is full.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
#: fsspec protocols whose uploads show up whole or not at all: written in place.
_WHOLE_OBJECT_WRITES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci", "oss", "memory"}
)


@dataclass(frozen=True)
class Artifact:
    """A stored blob: its SHA-256 (its name) and its size in bytes."""

    sha256: str
    size: int


def safe_name(name: str) -> str:
    """A relative POSIX path that stays inside whatever folder it is joined to.

    Names of files a run or a model version keeps (``model.onnx``, ``plots/roc.png``)
    are used as paths when they are written out again; ``..``, absolute paths, drive
    letters and backslashes would let one escape, so they are refused.
    """
    if not name or "\\" in name or "\x00" in name:
        raise InvalidInput(f"artifact name {name!r} must be a non-empty relative path")
    path = PurePosixPath(name)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise InvalidInput(f"artifact name {name!r} must be relative, not absolute")
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise InvalidInput(f"artifact name {name!r} must not contain '..', '.' or '//'")
    return str(path)


def write_error(e: OSError, what: str) -> StoreError:
    """The error to raise for ``e``, met while writing ``what``: :class:`DiskFull` when
    the disk is full, else a :class:`StoreError` naming the cause."""
    if e.errno in NO_SPACE:
        return DiskFull(
            f"the disk is full: no space left on it to write {what}; nothing of it was "
            "kept: free some space and try again"
        )
    return StoreError(f"cannot write {what}: {e.strerror or e}")


def write_file(
    path: str | os.PathLike[str],
    blocks: Iterable[bytes],
    *,
    what: str,
    sha256: str | None = None,
    source: str = "the bytes given",
) -> tuple[str, int]:
    """Write ``blocks`` (from ``source``) to the local file ``path`` (``what``, in
    messages), all or nothing: into a file beside it, flushed to the disk, checked
    against ``sha256`` when given, then renamed over ``path``. Returns the SHA-256 and
    size of what was written; a full disk is :class:`DiskFull`, and leaves nothing
    behind."""
    target = Path(path)
    tmp = target.with_name(f".{target.name[:40]}.{uuid.uuid4().hex}.tmp")
    h = hashlib.sha256()
    size = 0
    try:
        with tmp.open("wb") as out:
            for block in blocks:
                h.update(block)
                out.write(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if sha256 is not None and actual != sha256:
            raise ArtifactCorrupted(
                f"{source} hashes to {actual}, not {sha256}: it is damaged, or changed while "
                f"it was copied; nothing was written to {what}"
            )
        os.replace(tmp, target)
        sync_folder(target.parent)
    except OSError as e:
        raise write_error(e, what) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return actual, size


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to the disk, where the OS allows it."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def blocks_of(f: IO[bytes]) -> Iterator[bytes]:
    """The bytes of an open file, a block (1 MiB) at a time."""
    return iter(lambda: f.read(_BLOCK), b"")


class ArtifactStore:
    """Blobs by SHA-256 under one fsspec root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fs, base = fsspec.core.url_to_fs(root)
        self._base = base.rstrip("/")
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else self.fs.protocol
        self._local = bool({"file", "local"} & set(protocols))
        self._whole_objects = bool(_WHOLE_OBJECT_WRITES & set(protocols))

    def __repr__(self) -> str:
        return f"<ArtifactStore {self.root}>"

    def _path(self, sha256: str) -> str:
        if not _HEX64.match(sha256):
            raise InvalidInput(f"{sha256!r} is not a SHA-256 (64 lowercase hex digits)")
        return posixpath.join(self._base, "sha256", sha256[:2], sha256[2:4], sha256)

    def exists(self, sha256: str) -> bool:
        return bool(self.fs.exists(self._path(sha256)))

    def blobs(self) -> Iterator[str]:
        """The SHA-256 of every blob stored, in no order. Files that are not blobs (the
        ``.tmp`` file of a write cut short) are left out."""
        try:
            found = self.fs.find(posixpath.join(self._base, "sha256"))
        except FileNotFoundError:
            return
        for path in found:
            name = posixpath.basename(path)
            if _HEX64.match(name) and path.endswith(f"{name[:2]}/{name[2:4]}/{name}"):
                yield name

    def put_bytes(self, data: bytes) -> Artifact:
        """Store ``data``; a blob that is there already, whole, is not written again."""
        sha = hashlib.sha256(data).hexdigest()
        path = self._path(sha)
        if not self._holds(path, sha, len(data)):
            self._write(path, sha, [data], "the bytes given")
        return Artifact(sha, len(data))

    def put_file(self, source: str | os.PathLike[str], *, sha256: str | None = None) -> Artifact:
        """Store a local file, streaming it; the same content is stored once.

        ``sha256``: the hash the file must have (a restore has checked it already); the
        file is then read once, and refused if its bytes do not hash to it.
        """
        src = Path(source)
        if not src.is_file():
            raise InvalidInput("no such file", file=str(source))
        if sha256 is None:
            with src.open("rb") as f:
                sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        path = self._path(sha256)
        size = src.stat().st_size
        if not self._holds(path, sha256, size):
            with src.open("rb") as f:
                size = self._write(path, sha256, blocks_of(f), str(source))
        return Artifact(sha256, size)

    def _holds(self, path: str, sha256: str, size: int) -> bool:
        """Whether ``path`` holds the blob whole: its size first, then its hash. A name
        holding other bytes (a copy cut short, a damaged disk) is written again."""
        try:
            if self.fs.size(path) != size:
                return False
            with self.fs.open(path, "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest() == sha256
        except FileNotFoundError:
            return False

    def _write(self, path: str, sha256: str, blocks: Iterable[bytes], source: str) -> int:
        """Write the blob ``sha256`` at ``path``, all or nothing; returns its size."""
        what = f"artifact {sha256} under {self.root}"
        try:
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            if self._local:
                return write_file(path, blocks, what=what, sha256=sha256, source=source)[1]
            if self._whole_objects:
                # An upload shows up whole or not at all: written in place, and taken
                # back if the bytes were not the ones named.
                return self._write_checked(path, sha256, blocks, what, source)
            # Other remote file systems (SFTP, HDFS, ...) can show half a file: aside,
            # then moved into place.
            tmp = f"{posixpath.dirname(path)}/.{uuid.uuid4().hex}.tmp"
            try:
                size = self._write_checked(tmp, sha256, blocks, what, source)
                self.fs.mv(tmp, path)
            finally:
                with contextlib.suppress(OSError):
                    if self.fs.exists(tmp):
                        self.fs.rm(tmp)
            return size
        except OSError as e:
            raise write_error(e, what) from None

    def _write_checked(
        self, path: str, sha256: str, blocks: Iterable[bytes], what: str, source: str
    ) -> int:
        h = hashlib.sha256()
        size = 0
        with self.fs.open(path, "wb") as out:
            for block in blocks:
                h.update(block)
                out.write(block)
                size += len(block)
        if h.hexdigest() != sha256:
            self.fs.rm(path)
            raise ArtifactCorrupted(
                f"{source} hashes to {h.hexdigest()}, not {sha256}: it is damaged, or "
                f"changed while it was copied; nothing was kept of {what}"
            )
        return size

    def discard(self, sha256: str) -> None:
        """Remove a blob that no database row names (one a failed restore brought in);
        a blob a row names must never be removed."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(sha256))

    def get_bytes(self, sha256: str) -> bytes:
        """The blob's bytes, checked against its SHA-256."""
        path = self._path(sha256)
        try:
            with self.fs.open(path, "rb") as f:
                data: bytes = f.read()
        except FileNotFoundError:
            raise NotFound(f"artifact {sha256} is missing from {self.root}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ArtifactCorrupted(
                f"artifact {path} is corrupted: its content hashes to {actual}, not "
                f"{sha256}; restore it from a backup"
            )
        return data

    def copy_to(self, sha256: str, dest: str | os.PathLike[str]) -> Path:
        """Write the blob to a local file, streamed and checked against its SHA-256, all
        or nothing (a damaged blob leaves no file)."""
        out = Path(dest)
        path = self._path(sha256)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open(path, "rb") as f:
                write_file(
                    out,
                    blocks_of(f),
                    what=str(out),
                    sha256=sha256,
                    source=f"artifact {path}",
                )
        except FileNotFoundError:
            raise NotFound(f"artifact {sha256} is missing from {self.root}") from None
        except OSError as e:
            raise write_error(e, str(out)) from None
        return out

    def open_checked(self, sha256: str) -> IO[bytes]:
        """A readable binary file of the blob's (checked) bytes."""
        return io.BytesIO(self.get_bytes(sha256))
