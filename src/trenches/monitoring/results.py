"""What a drift check finds: one column's verdict with every figure behind it, and the
report (what it is configured with, ``DriftSettings``, is declared with the ``[monitor]``
keys of trenches.toml in ``trenches.settings.monitor``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from trenches.json_form import json_shape, to_json
from trenches.settings.monitor import DriftSettings


@json_shape(computed=("drifted",), order=(..., "drifted", "reasons"))
@dataclass(frozen=True)
class ColumnDrift:
    """The drift of one column: the statistic used and why, and every figure behind
    the verdict. ``reasons`` says what crossed a threshold."""

    name: str
    kind: str
    test: str  # ks | chi2 | wasserstein | jensen-shannon | none
    why: str  # why this test: the kind and the sample sizes
    statistic: float | None
    threshold: float
    p_value: float | None
    p_adjusted: float | None
    psi: float | None
    reference_rows: int
    current_rows: int
    missing_reference: float
    missing_current: float
    missing_p: float | None = None
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_share: float = 0.0
    unseen_expected: float = 0.0
    oov_reference: float | None = None
    oov_current: float | None = None
    reasons: tuple[str, ...] = ()

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)


@json_shape(
    computed=("drifted", "drifted_columns"),
    omit=("settings",),
    order=("drifted", "drifted_columns", "reference_rows", "current_rows"),
)
@dataclass(frozen=True)
class DriftReport:
    """Drift of every column (and of the predictions, when given)."""

    columns: tuple[ColumnDrift, ...]
    prediction: ColumnDrift | None
    reference_rows: int
    current_rows: int
    settings: DriftSettings
    ignored: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # columns of the current sample the reference lacks

    @property
    def drifted_columns(self) -> list[str]:
        """The input columns that drifted."""
        return [c.name for c in self.columns if c.drifted]

    @property
    def drifted(self) -> bool:
        """Drift found: in an input column, or in the predictions when they count."""
        if self.drifted_columns:
            return True
        return bool(self.settings.prediction and self.prediction and self.prediction.drifted)

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.name == name:
                return c
        if self.prediction is not None and self.prediction.name == name:
            return self.prediction
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values: ``trenches.to_json(report)``."""
        return cast(dict[str, Any], to_json(self))
