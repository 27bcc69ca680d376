"""Where the store lives: defaults, environment variables, and explicit paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trenches.errors import NotFound, StoreError

DEFAULT_DIR = ".trenches"
DB_FILE = "trenches.db"
ARTIFACTS_DIR = "artifacts"

ENV_DB_URL = "TRENCHES_DB_URL"
ENV_ARTIFACTS = "TRENCHES_ARTIFACTS"


@dataclass(frozen=True)
class Location:
    """The database URL and artifact root a store is opened with."""

    db_url: str
    artifacts: str
    #: The SQLite file, when the store is embedded; ``None`` for a server.
    sqlite_path: Path | None


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def resolve(path_or_url: str | os.PathLike[str] | None = None) -> Location:
    """Resolve where a store lives.

    - ``None``: ``$TRENCHES_DB_URL`` if set, else ``.trenches/trenches.db`` under
      the working directory;
    - a URL (``postgresql+psycopg://...``, ``sqlite:///...``): that database;
    - a path ending in ``.db`` or ``.sqlite``: that SQLite file;
    - any other path: a store folder holding ``trenches.db`` and ``artifacts/``.

    Artifacts go to ``$TRENCHES_ARTIFACTS`` when set, else to ``artifacts/`` beside
    the SQLite file (or under ``.trenches/`` for a server database).
    """
    env_artifacts = os.environ.get(ENV_ARTIFACTS) or None
    if path_or_url is None:
        env_url = os.environ.get(ENV_DB_URL)
        path_or_url = env_url or Path.cwd() / DEFAULT_DIR
    text = os.fspath(path_or_url)
    if "\x00" in text:
        from trenches.errors import InvalidInput

        raise InvalidInput(f"the store location {text!r} holds a NUL character")
    if "://" in text:
        url = text
        sqlite_path = None
        if url.startswith("sqlite") and ":///" in url:
            file_part = url.split(":///", 1)[1].split("?", 1)[0]
            if file_part and file_part != ":memory:":
                sqlite_path = Path(file_part).resolve()
                url = url.replace(file_part, str(sqlite_path), 1)
        if sqlite_path is not None:
            default_artifacts = sqlite_path.parent / ARTIFACTS_DIR
        else:
            default_artifacts = Path.cwd() / DEFAULT_DIR / ARTIFACTS_DIR
        return Location(url, env_artifacts or str(default_artifacts), sqlite_path)
    path = Path(text).expanduser().resolve()
    db_path = path if path.suffix in {".db", ".sqlite", ".sqlite3"} else path / DB_FILE
    return Location(
        _sqlite_url(db_path), env_artifacts or str(db_path.parent / ARTIFACTS_DIR), db_path
    )


def current_user() -> str | None:
    """Who is running this (recorded as who labelled, moved an alias, checked gates)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in some containers
        return None


def check_sqlite_path(path: Path, *, create: bool) -> None:
    """Refuse, naming it, a database path that cannot be a store: a folder, or a path
    below a file (``--store notes.txt`` is read as the folder ``notes.txt/``)."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a database file")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise StoreError(
            f"{blocker} is a file, not a store folder; name a store folder, a .db or "
            ".sqlite file, or a database URL"
        )
    if path.exists():
        return
    if not create:
        raise NotFound(
            f"no trenches store at {path}; run `trenches init` first, or set {ENV_DB_URL}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot make the store folder {path.parent}: {e.strerror}") from None
