"""Names the command line shows before anything heavy is imported (splits, kinds of
quality finding): kept here so `trenches --help` does not load pandas."""

from __future__ import annotations

SPLITS = ("train", "validation", "test")

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
