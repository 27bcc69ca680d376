"""A content-addressed file store over fsspec: the same bytes are stored once, under
their SHA-256, and every read checks them against it.

Files live at ``<root>/sha256/ab/cd/abcd...``; the root is a local folder by default
(``.trenches/artifacts``) or any fsspec URL (``s3://bucket/trenches``). A blob is
written before any database row names it, and never changed or removed afterwards
(except by an explicit purge), so a copy of the root taken after a database backup
holds everything the backup refers to.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import fsspec

from trenches.errors import ArtifactCorrupted, InvalidInput, NotFound

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 1 << 20


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


class ArtifactStore:
    """Blobs by SHA-256 under one fsspec root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fs, base = fsspec.core.url_to_fs(root)
        self._base = base.rstrip("/")
        self._local = self.fs.protocol in ("file", "local") or "file" in self.fs.protocol

    def __repr__(self) -> str:
        return f"<ArtifactStore {self.root}>"

    def _path(self, sha256: str) -> str:
        if not _HEX64.match(sha256):
            raise InvalidInput(f"{sha256!r} is not a SHA-256 (64 lowercase hex digits)")
        return posixpath.join(self._base, "sha256", sha256[:2], sha256[2:4], sha256)

    def exists(self, sha256: str) -> bool:
        return bool(self.fs.exists(self._path(sha256)))

    def put_bytes(self, data: bytes) -> Artifact:
        """Store ``data``; a blob that is there already is not written again."""
        sha = hashlib.sha256(data).hexdigest()
        path = self._path(sha)
        if not self.fs.exists(path):
            self._write_atomically(path, [data])
        return Artifact(sha, len(data))

    def put_file(self, source: str | os.PathLike[str]) -> Artifact:
        """Store a local file, streaming it; the same content is stored once."""
        src = Path(source)
        if not src.is_file():
            raise InvalidInput("no such file", file=str(source))
        h = hashlib.sha256()
        size = 0
        with src.open("rb") as f:
            for block in iter(lambda: f.read(_BLOCK), b""):
                h.update(block)
                size += len(block)
        sha = h.hexdigest()
        path = self._path(sha)
        if not self.fs.exists(path):
            with src.open("rb") as f:
                self._write_atomically(path, iter(lambda: f.read(_BLOCK), b""))
        return Artifact(sha, size)

    def _write_atomically(self, path: str, blocks: Iterator[bytes] | list[bytes]) -> None:
        parent = posixpath.dirname(path)
        self.fs.makedirs(parent, exist_ok=True)
        if not self._local:
            # Object stores write a whole object at once: there is no partial file.
            with self.fs.open(path, "wb") as out:
                for block in blocks:
                    out.write(block)
            return
        # A reader must never see half a blob: write aside, then rename into place.
        tmp = posixpath.join(parent, f".{uuid.uuid4().hex}.tmp")
        try:
            with self.fs.open(tmp, "wb") as out:
                for block in blocks:
                    out.write(block)
            os.replace(tmp, path)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

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
                f"artifact {path} is corrupted: its content hashes to {actual}, not {sha256}; "
                "restore it from a backup"
            )
        return data

    def copy_to(self, sha256: str, dest: str | os.PathLike[str]) -> Path:
        """Write the blob (checked) to a local file."""
        out = Path(dest)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(self.get_bytes(sha256))
        return out

    def open_checked(self, sha256: str) -> IO[bytes]:
        """A readable binary file of the blob's (checked) bytes."""
        import io

        return io.BytesIO(self.get_bytes(sha256))
