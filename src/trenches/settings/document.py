"""A parsed ``trenches.toml`` checked against the declaration: every table and key
known, every value of its type, among its allowed values and within its bounds. What
a check finds is an :class:`InvalidConfig` naming the file, the line and the key."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from trenches.errors import InvalidConfig
from trenches.settings.keys import KEYS, TABLES, Key, is_placeholder
from trenches.settings.lines import Path, key_text, line_of, locate

#: What a value of each type must be, as an error says it.
_MUST_BE = {
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "string": "a string",
    "strings": "a list of strings",
    "string or strings": "a string or a list of strings",
    "URL": "an http:// or https:// URL",
}


@dataclass
class _Node:
    """A table of the declaration, with the tables below it."""

    name: str
    array: bool = False
    #: Whether the declaration names this table (else it only holds tables that are).
    declared: bool = False
    keys: dict[str, Key] = field(default_factory=dict)
    children: dict[str, _Node] = field(default_factory=dict)

    def child(self, part: str) -> _Node | None:
        found = self.children.get(part)
        if found is not None:
            return found
        return next((c for p, c in self.children.items() if is_placeholder(p)), None)

    def key(self, name: str) -> Key | None:
        found = self.keys.get(name)
        if found is not None:
            return found
        return next((k for n, k in self.keys.items() if is_placeholder(n)), None)

    def headers(self) -> list[str]:
        """The headers of the declared tables at or below this one."""
        if self.declared:
            return [f"[[{self.name}]]" if self.array else f"[{self.name}]"]
        return [h for c in self.children.values() for h in c.headers()]

    def takes(self) -> str:
        return ", ".join([*self.keys, *(h for c in self.children.values() for h in c.headers())])


def _tree() -> _Node:
    root = _Node("")
    for table in TABLES:
        node = root
        parts = table.name.split(".")
        for i, part in enumerate(parts):
            name = ".".join(parts[: i + 1])
            node = node.children.setdefault(part, _Node(name))
        node.array = table.array
        node.declared = True
    for key in KEYS:
        node = root
        for part in key.table.split("."):
            node = node.children[part]
        node.keys[key.name] = key
    return root


_ROOT = _tree()


def _header(path: Path, array: bool) -> str:
    name = key_text(path)
    return f"[[{name}]]" if array else f"[{name}]"


class Document:
    """The text of a ``trenches.toml``, its parsed values and where each key is."""

    def __init__(self, file: str, text: str, data: dict[str, Any]) -> None:
        self.file = file
        self.data = data
        self.lines = locate(text)

    def line(self, path: Path) -> int | None:
        return line_of(self.lines, path)

    def error(self, path: Path, message: str) -> InvalidConfig:
        """An error about the key (or table) at ``path``, naming its line."""
        return InvalidConfig(
            message, file=self.file, key=key_text(path) or None, line=self.line(path)
        )

    def check(self) -> None:
        """Check every table and key against the declaration; raise on the first
        mistake, in the order of the file."""
        self._table((), self.data, _ROOT)

    def _table(self, path: Path, raw: dict[str, Any], node: _Node) -> None:
        for name, value in sorted(raw.items(), key=lambda kv: self.line((*path, kv[0])) or 0):
            here = (*path, name)
            child = node.child(name) if name not in node.keys else None
            if child is not None:
                self._tables(here, value, child)
                continue
            key = node.key(name)
            if key is None:
                where = _header(path, node.array) if path else "trenches.toml"
                what = "table" if isinstance(value, dict) and not path else "key"
                raise self.error(here, f"unknown {what}; {where} takes {node.takes()}")
            check_value(self, here, key, value)

    def _tables(self, path: Path, value: Any, node: _Node) -> None:
        if node.array and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            raise self.error(
                path, f"must be an array of tables: write {_header(path, True)} above each one"
            )
        if node.array:
            for index, table in enumerate(value):
                self._table((*path, index), table, node)
            return
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table: {_header(path, False)}")
        self._table(path, value, node)


def _fits(key: Key, value: Any) -> bool:
    if key.type == "boolean":
        return isinstance(value, bool)
    if key.type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if key.type == "number":
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(value)
    if key.type == "strings":
        return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
    if key.type == "string or strings":
        return isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
    if key.type == "URL":
        return isinstance(value, str) and re.match(r"https?://", value) is not None
    return isinstance(value, str)


def check_value(doc: Document, path: Path, key: Key, value: Any) -> None:
    """Check one value against its declared key."""
    if not _fits(key, value):
        raise doc.error(path, f"must be {key.what or _MUST_BE[key.type]}, not {value!r}")
    if key.choices and value not in key.choices:
        raise doc.error(path, f"{value!r} must be one of {', '.join(key.choices)}")
    message = bounds_error(key, value)
    if message is not None:
        raise doc.error(path, message)


def bounds_error(key: Key, value: Any) -> str | None:
    """What is wrong with a number outside the bounds of its key, or None."""
    low, high = key.low, key.high
    too_low = low is not None and (value <= low if key.above else value < low)
    too_high = high is not None and (value >= high if key.below else value > high)
    if not (too_low or too_high):
        return None
    if low is not None and high is not None:
        if key.above or key.below:
            return f"{value!r} must be more than {low:g} and less than {high:g}"
        return f"{value!r} must be between {low:g} and {high:g}"
    if high is not None:
        return f"{value!r} must be at most {high:g}"
    if key.above:
        return f"must be more than {low:g}, not {value!r}"
    if low == 0:
        return f"must be 0 or more, not {value!r}"
    return f"{value!r} must be at least {low:g}"
