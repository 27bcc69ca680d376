"""The public names of ``trenches``: each one listed resolves, is listed once, and every
type a store hands out is among them."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import pkgutil
import typing
from typing import Any

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


def test_the_team_types_and_errors_are_exported() -> None:
    """What ``store.accounts``, ``store.tokens``, ``store.grants`` and ``store.audit``
    hand out, the roles, and the errors of signing in and of being refused."""
    for name in (
        "Accounts",
        "User",
        "Tokens",
        "Token",
        "NewToken",
        "Sessions",
        "Session",
        "NewSession",
        "Grants",
        "Grant",
        "ROLES",
        "Audit",
        "AuditEntry",
        "NotAuthenticated",
        "Forbidden",
    ):
        assert name in trenches.__all__
    assert trenches.ROLES[0] == "viewer" and trenches.ROLES[-1] == "admin"


def test_the_json_form_is_one_pair_of_exported_functions() -> None:
    """``to_json`` / ``from_json`` are the JSON form of every exported type."""
    for name in ("to_json", "from_json"):
        assert name in trenches.__all__
        assert getattr(trenches, name).__module__ == "trenches.json_form"


def _namespace() -> dict[str, Any]:
    """Every class of every trenches module by name, for resolving annotations written
    under ``TYPE_CHECKING`` (which ``typing.get_type_hints`` cannot see)."""
    import datetime
    import os
    import pathlib

    import numpy as np
    import pandas as pd

    names: dict[str, Any] = {
        "np": np,
        "pd": pd,
        "datetime": datetime.datetime,
        "Path": pathlib.Path,
        "os": os,
    }
    for found in pkgutil.walk_packages(trenches.__path__, "trenches."):
        if found.name.startswith("trenches.db.migrations") or found.name == "trenches.__main__":
            continue
        module = importlib.import_module(found.name)
        for key, value in vars(module).items():
            if isinstance(value, type) and value.__module__.startswith("trenches"):
                names.setdefault(key, value)
    return names


def _classes(annotation: Any, into: set[type]) -> None:
    if typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            _classes(arg, into)
    elif isinstance(annotation, type) and annotation.__module__.startswith("trenches"):
        into.add(annotation)


def _handed_out() -> dict[type, str]:
    """Each trenches class reachable from ``Store`` through the return types of public
    methods and properties and the fields of returned dataclasses, with where from."""
    namespace = _namespace()
    found: dict[type, str] = {}
    todo: list[type] = [trenches.Store]
    seen: set[type] = set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        annotations: dict[str, Any] = {}
        for name, member in inspect.getmembers(cls):
            if name.startswith("_"):
                continue
            fn = member.fget if isinstance(member, property) else member
            fn = fn.func if isinstance(fn, functools.cached_property) else fn
            if callable(fn) and hasattr(fn, "__annotations__"):
                hints = typing.get_type_hints(fn, globalns={**namespace, **fn.__globals__})
                annotations[name] = hints.get("return")
        if dataclasses.is_dataclass(cls):
            module = vars(importlib.import_module(cls.__module__))
            hints = typing.get_type_hints(cls, globalns={**namespace, **module})
            annotations.update({f.name: hints[f.name] for f in dataclasses.fields(cls)})
        for name, annotation in annotations.items():
            classes: set[type] = set()
            _classes(annotation, classes)
            for c in classes:
                found.setdefault(c, f"{cls.__name__}.{name}")
                todo.append(c)
    return found


def test_every_type_the_store_hands_out_is_exported() -> None:
    """A user can name (and annotate with) whatever a store call returns."""
    handed = _handed_out()
    assert len(handed) > 50
    missing = sorted(
        f"{c.__module__}.{c.__qualname__} (from {where})"
        for c, where in handed.items()
        if not issubclass(c, Exception) and getattr(trenches, c.__name__, None) is not c
    )
    assert not missing, "export from trenches: " + ", ".join(missing)
