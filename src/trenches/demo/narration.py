"""How the demo tells its story: each step opens with one highlighted line."""

from __future__ import annotations

from rich.console import Console


def say(console: Console, text: str) -> None:
    console.print(f"\n[bold cyan]>[/] {text}")
