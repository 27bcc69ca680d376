"""Sign-off gates: criteria from trenches.toml, checks, and their CI outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trenches.store import Store


class Gates:
    """``store.gates``: check a version against its model's gates, and read checks."""

    def __init__(self, store: Store) -> None:
        self._store = store
