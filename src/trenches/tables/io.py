"""Where a store's Iceberg tables keep their files: ``trenches:///tables/...`` paths,
relative to the store's artifacts location (a local folder or an object store).

Iceberg records absolute file paths in its metadata and manifests. A store's folder is
copied, backed up and restored elsewhere, so its tables name their files by a path of
its own, ``trenches:///``, that this FileIO resolves against wherever the store is now
(``trenches.root``: the artifacts location, as fsspec takes it)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import fsspec
from fsspec.implementations.dirfs import DirFileSystem
from pyiceberg.io.fsspec import FsspecFileIO
from pyiceberg.typedef import Properties

SCHEME = "trenches"
PREFIX = f"{SCHEME}:///"
#: The catalog property naming the artifacts location the paths are relative to.
ROOT = "trenches.root"


class StoreFileSystem(DirFileSystem):  # type: ignore[misc]
    """An fsspec file system over the store's artifacts location that takes
    ``trenches:///x`` (or plain ``x``) for the file ``x`` under it."""

    protocol = SCHEME

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str):
            if path.startswith(f"{SCHEME}://"):
                path = path[len(SCHEME) + 3 :]
            return path.lstrip("/")
        return path


def file_system(root: str) -> StoreFileSystem:
    """The file system of a store whose artifacts are at ``root``."""
    fs, base = fsspec.core.url_to_fs(root)
    if is_local(fs):  # Iceberg writes below folders nobody made
        fs = fsspec.filesystem("file", auto_mkdir=True)
    return StoreFileSystem(path=base, fs=fs)


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    return bool({"file", "local"} & protocols)


def relative(location: str) -> str:
    """The path under the artifacts location of a ``trenches:///`` location."""
    if not location.startswith(PREFIX):
        raise ValueError(f"{location!r} is not a path of a trenches store ({PREFIX}...)")
    return location[len(PREFIX) :]


class StoreIO(FsspecFileIO):
    """pyiceberg's fsspec FileIO, with ``trenches:///`` resolved against the store's
    artifacts location (the catalog's ``trenches.root`` property)."""

    def __init__(self, properties: Properties):
        super().__init__(properties)
        if ROOT not in properties:
            raise ValueError(f"a trenches table's FileIO needs the {ROOT!r} property")

    @cached_property
    def store_fs(self) -> StoreFileSystem:
        return file_system(self.properties[ROOT])

    def _get_fs(self, scheme: str, hostname: str | None = None) -> Any:
        if scheme == SCHEME:
            return self.store_fs
        return super()._get_fs(scheme, hostname)
