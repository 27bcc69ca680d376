"""How a model server serves (``trenches serve``'s options): a dataclass of plain values,
light to import, so that the parent of ``--workers N`` hands them to its workers
without loading the application itself (each worker does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Largest request body accepted by default (bytes).
MAX_BODY = 16 * 1024 * 1024


@dataclass
class Settings:
    """How to serve: which version (or alias), from which store, with what limits."""

    ref: str  # name@production (follows the alias) or name@3 (fixed)
    store: str | None = None  # folder, file or URL; None: .trenches here / $TRENCHES_DB_URL
    token: str | None = None  # bearer token; None: no auth
    max_body: int = MAX_BODY
    poll: float = 2.0  # seconds between looks at the alias
    trusted: bool = False
    spool_dir: str | None = None
    log_requests: bool = True
    #: Each logged request written ahead to a file before its answer leaves (a killed
    #: server loses none it answered); off: what the log holds in memory is lost with it.
    write_ahead: bool = True
    workers: int = 1  # worker processes serving together (feedback may be another's)
    #: The trenches.toml of the guard's bounds and the webhook; None: the nearest one.
    config: str | None = None
    #: The request log's writer moves staged requests into the tables itself; False:
    #: a mover process does (:mod:`trenches.serving.mover`, as ``trenches serve`` runs).
    moves_here: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
