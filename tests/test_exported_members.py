"""The public names of ``trenches``: each one listed resolves, and is listed once."""

from __future__ import annotations

import trenches


def test_every_exported_name_resolves_to_a_trenches_object() -> None:
    assert len(set(trenches.__all__)) == len(trenches.__all__)
    for name in trenches.__all__:
        value = getattr(trenches, name)
        module = getattr(value, "__module__", "trenches")
        assert module.startswith("trenches"), (name, module)
    assert set(trenches.__all__) <= set(dir(trenches))


def test_the_types_the_problem_database_hands_out_are_exported() -> None:
    for name in (
        "Problem",
        "ProblemScore",
        "Tolerance",
        "Comparison",
        "Flips",
        "SnapshotDiff",
        "DataChange",
        "BackfillResult",
        "SkippedVersion",
    ):
        assert name in trenches.__all__
