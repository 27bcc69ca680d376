"""A stored pattern as the library hands it out (:class:`Pattern`), and how a stored
value becomes a plain Python one: shared by the pattern history and the pattern
listing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Pattern:
    """One stored example, exactly as imported. Immutable: see ``Store.patterns``."""

    id: int
    dataset: str
    inputs: dict[str, Any]
    label: Any
    split: str
    source: str
    labelled_by: str | None
    batch_id: int
    created_at: datetime
    deactivated_at: datetime | None
    replaces_id: int | None
    tags: tuple[str, ...]

    @property
    def active(self) -> bool:
        return self.deactivated_at is None


def plain(value: Any) -> Any:
    """NumPy scalars and pandas missing values as plain Python values."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
