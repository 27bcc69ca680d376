"""The reference of every ``trenches.toml`` key, in Markdown, written from the
declaration: ``docs/configuration.md`` holds it between two markers, and a test fails
when the two differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trenches.settings.keys import REQUIRED, TABLES, Key, keys_of

BEGIN = "<!-- BEGIN trenches.toml reference: generated, do not edit -->"
END = "<!-- END trenches.toml reference -->"


def _value(value: Any) -> str:
    if value is None:
        return "not set"
    if value is REQUIRED:
        return "required"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value:g}`"


#: Type names as the reference spells them.
_TYPE = {"strings": "list of strings", "string or strings": "string or list of strings"}


def _type(key: Key) -> str:
    text = _TYPE.get(key.type, key.type)
    if key.choices:
        text += ": " + ", ".join(f'`"{c}"`' for c in key.choices)
    low, high = key.low, key.high
    if low is not None and high is not None:
        if key.above or key.below:
            text += f", more than {low:g} and less than {high:g}"
        else:
            text += f", {low:g} to {high:g}"
    elif low is not None:
        text += f", more than {low:g}" if key.above else f", {low:g} or more"
    elif high is not None:
        text += f", at most {high:g}"
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """Every table and key: its type, allowed values or bounds, default and meaning."""
    out: list[str] = []
    for table in TABLES:
        out += [f"### `{table.header}`", "", table.doc, ""]
        out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for key in keys_of(table.name):
            out.append(
                f"| `{key.name}` | {_cell(_type(key))} | {_value(key.default)} | {_cell(key.doc)} |"
            )
        out.append("")
    return "\n".join(out)


def section() -> str:
    """The generated part of ``docs/configuration.md``, markers included."""
    return f"{BEGIN}\n\n{markdown()}\n{END}"


def rewrite(text: str) -> str:
    """``text`` (a Markdown page holding the markers) with the reference made current."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page has no {BEGIN!r} ... {END!r} markers")
    return text[:start] + section() + text[end + len(END) :]


def write(path: str | Path) -> bool:
    """Bring the reference in the page at ``path`` up to date; whether it changed."""
    page = Path(path)
    old = page.read_text(encoding="utf-8")
    new = rewrite(old)
    if new != old:
        page.write_text(new, encoding="utf-8")
    return new != old
