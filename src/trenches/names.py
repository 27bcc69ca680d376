"""Names the command line shows before anything heavy is imported (splits, kinds of
quality finding): kept here so `trenches --help` does not load pandas."""

from __future__ import annotations

import re

from trenches.errors import InvalidInput

SPLITS = ("train", "validation", "test")

#: The store keeps ids, versions and counts as signed 64-bit integers: a number outside
#: these bounds names nothing that can be stored, and the database driver cannot even
#: send it.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


_SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


def check_source(source: str) -> str:
    """``source`` if it can name where patterns came from, else an error saying what can."""
    if not _SOURCE.match(source or ""):
        raise InvalidInput(
            f"source {source!r} must be a short name (letters, digits, '_', '.', '-'), "
            "such as expert, crowd, production, contrived or synthetic"
        )
    return source


def in_int64(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


#: The kinds a data check reports, in the order they are shown. ``source-mix`` is a
#: summary and never "found".
QUALITY_KINDS = (
    "duplicates",
    "conflicting-labels",
    "leakage",
    "missing-values",
    "class-imbalance",
    "label-errors",
    "source-mix",
)
