"""Where each key of a TOML file is written: tomllib gives values, not lines, and an
error in ``trenches.toml`` should say which line to fix.

A key is a path of names and array indices, as the parsed document nests it:
``("gates", "clf", 1, "min")`` is ``min`` in the second ``[[gates.clf]]`` table. The
locator reads the text once, line by line: table headers (quoted parts and arrays of
tables included), keys (bare, quoted and dotted), and it skips what only looks like
a key, inside a multi-line string or array.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SPACE = re.compile(r"[ \t]*")


def _string(text: str, at: int) -> tuple[str, int] | None:
    """The quoted key starting at ``text[at]`` and the position after it."""
    quote = text[at]
    if quote == "'":
        end = text.find("'", at + 1)
        return (text[at + 1 : end], end + 1) if end > at else None
    out: list[str] = []
    i = at + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text):
            escaped = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(text[i + 1])
            out.append(escaped if escaped is not None else text[i : i + 2])
            i += 2
            continue
        out.append(c)
        i += 1
    return None


def _dotted(text: str, at: int) -> tuple[list[str], int] | None:
    """A dotted key (``a."b.c".d``) from ``text[at]``: its parts and where it ends."""
    parts: list[str] = []
    i = at
    while True:
        i = _SPACE.match(text, i).end()  # type: ignore[union-attr]
        if i < len(text) and text[i] in "\"'":
            found = _string(text, i)
            if found is None:
                return None
            part, i = found
        else:
            bare = _BARE.match(text, i)
            if bare is None:
                return None
            part, i = bare.group(), bare.end()
        parts.append(part)
        i = _SPACE.match(text, i).end()  # type: ignore[union-attr]
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        return parts, i


def _open_brackets(value: str) -> int:
    """How many ``[`` / ``{`` a value leaves open, outside strings and comments."""
    depth, i = 0, 0
    while i < len(value):
        c = value[i]
        if c == "#":
            break
        if c in "\"'":
            triple = value[i : i + 3] == c * 3
            end = value.find(c * 3 if triple else c, i + (3 if triple else 1))
            if end < 0:
                break
            i = end + (3 if triple else 1)
            continue
        depth += (c in "[{") - (c in "]}")
        i += 1
    return depth


def _opens_string(value: str) -> str | None:
    """The delimiter of a multi-line string the value starts and does not close."""
    stripped = value.strip()
    for quote in ('"""', "'''"):
        if stripped.startswith(quote) and stripped.count(quote) % 2 == 1:
            return quote
    return None


class _Reader:
    """The state of the locator while it walks the lines."""

    def __init__(self) -> None:
        self.found: dict[Path, int] = {}
        self.table: Path = ()
        #: The index of the last table of each array of tables.
        self.arrays: dict[Path, int] = {}
        self.string: str | None = None
        self.depth = 0

    def header(self, names: list[str], array: bool, number: int) -> None:
        path: Path = ()
        for i, name in enumerate(names):
            path = (*path, name)
            if array and i == len(names) - 1:
                index = self.arrays.get(path, -1) + 1
                self.arrays[path] = index
            elif path in self.arrays:
                index = self.arrays[path]
            else:
                self.found.setdefault(path, number)
                continue
            self.found.setdefault(path, number)
            path = (*path, index)
            self.found.setdefault(path, number)
        self.table = path

    def line(self, text: str, number: int) -> None:
        if self.string is not None:
            if text.count(self.string) % 2 == 1:
                self.string = None
            return
        if self.depth > 0:
            self.depth = max(0, self.depth + _open_brackets(text))
            return
        stripped = text.lstrip()
        if not stripped or stripped.startswith("#"):
            return
        if stripped.startswith("["):
            array = stripped.startswith("[[")
            found = _dotted(stripped, 2 if array else 1)
            if found is not None:
                self.header(found[0], array, number)
            return
        found = _dotted(text, 0)
        if found is None or not text[found[1] :].startswith("="):
            return
        path = self.table
        for part in found[0]:
            path = (*path, part)
            self.found.setdefault(path, number)
        value = text[found[1] + 1 :]
        self.string = _opens_string(value)
        if self.string is None:
            self.depth = max(0, _open_brackets(value))


def locate(text: str) -> dict[Path, int]:
    """The 1-based line of every table header and key of a TOML text, by path."""
    reader = _Reader()
    for number, line in enumerate(text.splitlines(), start=1):
        reader.line(line, number)
    return reader.found


def line_of(found: Mapping[Path, int], path: Path) -> int | None:
    """The line of ``path``, else of the nearest table or key above it that is written
    (a key left out is reported at its table's header), else None."""
    for end in range(len(path), 0, -1):
        line = found.get(path[:end])
        if line is not None:
            return line
    return None


def key_text(path: Path) -> str:
    """A path as an error names it: ``gates.clf[2].min`` (arrays count from 1)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += f".{part}" if out else part
    return out
