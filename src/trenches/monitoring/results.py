"""What a drift check finds: one column's verdict with every figure behind it, and the
report (what it is configured with, ``DriftSettings``, is declared with the ``[monitor]``
keys of trenches.toml in ``trenches.settings.monitor``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trenches.settings.monitor import DriftSettings


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

    def to_json(self) -> dict[str, Any]:
        def num(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else (x if math.isfinite(x) else None)

        return {
            "name": self.name,
            "kind": self.kind,
            "test": self.test,
            "why": self.why,
            "statistic": num(self.statistic),
            "threshold": self.threshold,
            "p_value": num(self.p_value),
            "p_adjusted": num(self.p_adjusted),
            "psi": num(self.psi),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "missing_reference": self.missing_reference,
            "missing_current": self.missing_current,
            "missing_p": num(self.missing_p),
            "unseen": self.unseen,
            "unseen_share": self.unseen_share,
            "unseen_expected": self.unseen_expected,
            "oov_reference": self.oov_reference,
            "oov_current": self.oov_current,
            "drifted": self.drifted,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnDrift:
        nan = float("nan")
        return cls(
            name=data["name"],
            kind=data["kind"],
            test=data["test"],
            why=data["why"],
            statistic=data["statistic"] if data["statistic"] is not None else nan,
            threshold=data["threshold"],
            p_value=data["p_value"],
            p_adjusted=data["p_adjusted"],
            psi=data["psi"],
            reference_rows=data["reference_rows"],
            current_rows=data["current_rows"],
            missing_reference=data["missing_reference"],
            missing_current=data["missing_current"],
            missing_p=data.get("missing_p"),
            unseen=dict(data.get("unseen") or {}),
            unseen_share=data.get("unseen_share", 0.0),
            unseen_expected=data.get("unseen_expected", 0.0),
            oov_reference=data.get("oov_reference"),
            oov_current=data.get("oov_current"),
            reasons=tuple(data.get("reasons") or ()),
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
        return {
            "drifted": self.drifted,
            "drifted_columns": self.drifted_columns,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": [c.to_json() for c in self.columns],
            "prediction": self.prediction.to_json() if self.prediction else None,
            "ignored": list(self.ignored),
            "extra": list(self.extra),
        }
