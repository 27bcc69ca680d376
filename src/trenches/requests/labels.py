"""What a feedback label on a version's answers may be: one of a classifier's classes,
or a finite number for a regressor (whole, when its dataset's labels are integers).
The server checks feedback as it arrives, and ``store.requests.feedback`` by hand, with
the same rules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from trenches.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.models.versions import ModelVersion


def shown(value: Any) -> str:
    """A JSON value as an error message shows it: short, and containers by their kind
    only (one nested 1,000 deep has no printable repr)."""
    if value is None or isinstance(value, bool):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_number(value: Any) -> bool:
    """A JSON number (never ``true``/``false``), finite."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


@dataclass(frozen=True)
class Labels:
    """What a feedback label on a version's answers may be."""

    classes: tuple[Any, ...] | None  # a classifier's classes; None: a regressor
    label_type: str | None  # the dataset's label type (integer, number, ...), if known

    def check(self, label: Any) -> Any:
        """``label`` as stored: the class it names, or the number; else an
        :class:`~trenches.InvalidInput` saying why."""
        if self.classes is not None:
            for c in self.classes:
                if label == c and isinstance(label, bool) == isinstance(c, bool):
                    return c
            listed = ", ".join(shown(c) for c in self.classes[:20])
            more = f" and {len(self.classes) - 20} more" if len(self.classes) > 20 else ""
            raise InvalidInput(
                f"label {shown(label)} is not one of the model's labels: {listed}{more}"
            )
        if not is_number(label):
            raise InvalidInput(f"label {shown(label)} is not a number (the model is a regressor)")
        if self.label_type == "integer" and not (
            float(label).is_integer() and -(2.0**63) <= float(label) < 2.0**63
        ):
            raise InvalidInput(f"label {shown(label)} is not an integer")
        return label

    @classmethod
    def of(cls, engine: Engine, version: ModelVersion) -> Labels:
        """The labels of ``version``'s answers (one light query: no pandas)."""
        from sqlalchemy import select

        from trenches.db import schema as t
        from trenches.db.engine import read

        label_type = None
        if version.dataset is not None:
            d = t.datasets.c
            with read(engine) as conn:
                label_type = conn.execute(
                    select(d.label_type).where(d.name == version.dataset)
                ).scalar()
        return cls(version.signature.classes, label_type)
