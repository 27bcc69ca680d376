"""Iceberg row filters of whole-number columns, by name: what pyiceberg prunes
partitions, files and manifests by (see :mod:`trenches.tables.pruning` for the rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from pyiceberg.expressions import AlwaysTrue, BooleanExpression

from trenches.tables.pruning import Bound


def within(bounds: Sequence[Bound]) -> BooleanExpression:
    """The ranges of ``bounds`` as an Iceberg filter (files and partitions pruned by
    them); the ids a bound keeps among are for the rows read, not for the plan."""
    from pyiceberg.expressions import And

    condition: BooleanExpression = AlwaysTrue()
    for bound in bounds:
        if bound.low is not None:
            condition = And(condition, at_least(bound.column, bound.low))
        if bound.high is not None:
            condition = And(condition, at_most(bound.column, bound.high))
    return condition


def equal(column: str, value: int) -> BooleanExpression:
    """``column == value`` as an Iceberg filter (partition and bounds pruning)."""
    from pyiceberg.expressions import EqualTo

    return cast(BooleanExpression, cast(Any, EqualTo)(column, value))


def at_most(column: str, value: int) -> BooleanExpression:
    """``column <= value`` as an Iceberg filter."""
    from pyiceberg.expressions import LessThanOrEqual

    return cast(BooleanExpression, cast(Any, LessThanOrEqual)(column, value))


def at_least(column: str, value: int) -> BooleanExpression:
    """``column >= value`` as an Iceberg filter."""
    from pyiceberg.expressions import GreaterThanOrEqual

    return cast(BooleanExpression, cast(Any, GreaterThanOrEqual)(column, value))


def below(column: str, value: int) -> BooleanExpression:
    """``column < value`` as an Iceberg filter."""
    from pyiceberg.expressions import LessThan

    return cast(BooleanExpression, cast(Any, LessThan)(column, value))


def between(column: str, low: int, high: int) -> BooleanExpression:
    """``low <= column <= high`` as an Iceberg filter."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

    return And(cast(Any, GreaterThanOrEqual)(column, low), cast(Any, LessThanOrEqual)(column, high))
