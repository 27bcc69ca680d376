"""A regression dataset's tolerance: how close a prediction must come to its label to
count as right. Kept with the datasets, which store it; :mod:`trenches.verdicts` applies
it to stored predictions."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from trenches.errors import InvalidInput

_PART = re.compile(
    r"^\s*(?:±|\+-|\+/-)?\s*(?P<number>[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(?P<pct>%?)\s*$"
)


@dataclass(frozen=True)
class Tolerance:
    """How close a regression prediction must come to its label to count as right:
    within ``absolute`` of it, or within ``relative`` (a share, 0.1 for 10%) of the
    label's size, whichever is looser."""

    absolute: float | None = None
    relative: float | None = None

    def __post_init__(self) -> None:
        if self.absolute is None and self.relative is None:
            raise InvalidInput("a tolerance needs an absolute or a relative bound (or both)")
        for name, value in (("absolute", self.absolute), ("relative", self.relative)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidInput(f"the {name} tolerance must be a number >= 0, not {value!r}")

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``"0.5"`` (absolute), ``"10%"`` (relative to the label), or both:
        ``"0.5 or 10%"`` (also ``"0.5,10%"``)."""
        absolute = relative = None
        parts = [p for p in re.split(r"\s+or\s+|,", text.strip()) if p.strip()]
        if not parts or len(parts) > 2:
            raise InvalidInput(
                f"tolerance {text!r}: give an absolute bound (0.5), a relative one (10%) "
                "or both (0.5 or 10%)"
            )
        for part in parts:
            m = _PART.match(part.lower())
            if m is None:
                raise InvalidInput(
                    f"tolerance {text!r}: {part.strip()!r} is not a number or a percentage"
                )
            value = float(m["number"])
            if m["pct"]:
                if relative is not None:
                    raise InvalidInput(f"tolerance {text!r} gives two relative bounds")
                relative = value / 100
            else:
                if absolute is not None:
                    raise InvalidInput(f"tolerance {text!r} gives two absolute bounds")
                absolute = value
        return cls(absolute, relative)

    @classmethod
    def of(cls, value: Tolerance | str | float | None) -> Tolerance | None:
        """A tolerance from what a caller gave: a Tolerance, its text, a number
        (absolute), or None."""
        if value is None or isinstance(value, Tolerance):
            return value
        if isinstance(value, bool):
            raise InvalidInput(f"tolerance {value!r} is not a number or a percentage")
        if isinstance(value, int | float):
            return cls(absolute=float(value))
        return cls.parse(str(value))

    @classmethod
    def from_columns(cls, absolute: float | None, relative: float | None) -> Tolerance | None:
        """The tolerance stored in a row's two columns, or None when neither is set."""
        if absolute is None and relative is None:
            return None
        return cls(absolute, relative)

    def bound(self, truth: np.ndarray) -> np.ndarray:
        """How far from each label a prediction may be."""
        size = np.abs(np.asarray(truth, dtype=np.float64))
        out = np.full(size.shape, self.absolute or 0.0)
        if self.relative is not None:
            out = np.maximum(out, self.relative * size)
        return out

    def right(self, predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Whether each prediction is within the tolerance of its label (NaN is wrong)."""
        error = np.abs(np.asarray(predicted, dtype=np.float64) - np.asarray(truth, np.float64))
        return np.asarray(error <= self.bound(truth), dtype=bool)

    def __str__(self) -> str:
        parts = []
        if self.absolute is not None:
            parts.append(f"±{self.absolute:g}")
        if self.relative is not None:
            parts.append(f"±{self.relative * 100:g}%")
        return " or ".join(parts)


def tolerance_for(
    dataset: str, task: str, value: Tolerance | str | float | None
) -> Tolerance | None:
    """``value`` as the tolerance of a dataset (or of a problem of it) named ``dataset``
    for ``task``; refused for classification, where a class is right or wrong as it is."""
    tolerance = Tolerance.of(value)
    if tolerance is not None and task != "regression":
        raise InvalidInput(
            f"dataset {dataset!r} is for {task}: a tolerance applies to regression only "
            "(a class is right or wrong as it is)"
        )
    return tolerance
