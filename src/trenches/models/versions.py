"""A registered version of a model, and a move of one of its aliases, as handed out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import orjson

from trenches.errors import InvalidInput
from trenches.models import formats, trust

if TYPE_CHECKING:
    from trenches.patterns.snapshots import Snapshot

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
#: The format of a version's file that is a file of its service's source ("source/app.R").
SOURCE = "source/"


class MadeBy(Protocol):
    """What the registry reads of the run a version comes from (a
    :class:`trenches.Run` is one): its id, and the snapshot it trained on."""

    @property
    def id(self) -> int: ...
    @property
    def snapshot(self) -> Snapshot | None: ...


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, with its files and where it came from."""

    id: int
    model: str
    version: int
    run_id: int | None
    dataset: str | None
    task: str | None
    flavor: str
    signature: formats.Signature
    formats: tuple[str, ...]
    onnx_error: str | None
    aliases: tuple[str, ...]
    created_at: datetime
    #: What makes this version load only with ``trusted=True``: the names its skops file
    #: holds outside trenches' fixed list (``trenches.models.trust``), or ``pickle``.
    #: Empty when it loads untrusted.
    needs_trust: tuple[str, ...] = ()
    #: The files of its service's source kept with an endpoint version (their names;
    #: ``file_bytes(version, "source/" + name)`` reads one).
    sources: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: from which version to which, who, when and why."""

    alias: str
    from_version: int | None
    to_version: int | None
    moved_by: str | None
    reason: str
    forced: bool
    moved_at: datetime


def needs_trust(details: dict[str, str | None]) -> tuple[str, ...]:
    """What forces ``trusted=True`` on a version with these files (format -> details)."""
    if "skops" in details:
        recorded = orjson.loads(details["skops"]) if details["skops"] else {}
        if "needs_trust" in recorded:
            return tuple(recorded["needs_trust"])
        # Written before the fixed list: every name it held was recorded as trusted.
        return tuple(trust.needing_trust(recorded.get("trusted_types", [])))
    return ("pickle",) if "pickle" in details else ()


def check_name(name: str) -> None:
    if not _NAME.match(name or ""):
        raise InvalidInput(
            f"model name {name!r} must start with a letter or digit and hold only "
            "letters, digits, '_', '.' and '-'"
        )
