"""Where the store lives: defaults, environment variables, and explicit paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


PROJECT_FILE = "trenches.toml"


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``trenches.toml`` in ``start`` (default: the working directory) or
    a folder above it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def read_project_file(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """The text of a ``trenches.toml`` and its parsed TOML. Whatever keeps it from being
    read (no such file, a folder, no permission, not UTF-8, not TOML) is an
    ``InvalidInput`` naming the file."""
    import tomllib

    from trenches.errors import InvalidInput

    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"not UTF-8 text ({e.reason})", file=name) from None
    except OSError as e:
        raise InvalidInput(f"cannot read it: {e.strerror or e}", file=name) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(str(e), file=name) from None


def project_settings(start: Path | None = None) -> dict[str, Any]:
    """The parsed ``trenches.toml``, or an empty dict when there is none."""
    path = find_project_file(start)
    if path is None:
        return {}
    return read_project_file(path)[1]


def current_user() -> str | None:
    """Who is running this (recorded as who labelled, moved an alias, checked gates)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in some containers
        return None


def setting_line(path: Path, table: str, key: str | None = None) -> int | None:
    """The 1-based line of ``key`` under the ``[table]`` header of a TOML file (of the
    header itself when ``key`` is None), or None. tomllib gives values, not lines, and
    an error in ``trenches.toml`` should say where it is.

    ``table`` is dotted, as in the header: ``"monitor"``, ``"monitor.columns.age"``.
    Quoted parts of a header are compared without their quotes.
    """
    import re

    want = [part.strip() for part in table.split(".")]
    header = re.compile(r"^\s*\[(?!\[)(?P<name>[^\]]+)\]\s*(?:#.*)?$")
    assign = re.compile(r"""^\s*(?:"(?P<dq>[^"]+)"|'(?P<sq>[^']+)'|(?P<bare>[A-Za-z0-9_-]+))\s*=""")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    inside = False
    for number, text in enumerate(lines, start=1):
        if text.lstrip().startswith("["):
            match = header.match(text)
            parts = [p.strip().strip("\"'") for p in match["name"].split(".")] if match else None
            inside = parts == want
            if inside and key is None:
                return number
            continue
        if inside and key is not None:
            found = assign.match(text)
            if found and (found["dq"] or found["sq"] or found["bare"]) == key:
                return number
    return None
