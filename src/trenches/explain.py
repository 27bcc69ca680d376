"""Explanations of single predictions with LIME, stored per (version, pattern)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trenches.store import Store


class Explanations:
    """``store.explanations``: explain a version's prediction on a pattern, and read
    the explanations stored."""

    def __init__(self, store: Store) -> None:
        self._store = store
