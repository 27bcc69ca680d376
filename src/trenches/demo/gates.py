"""Sign-off: gates in trenches.toml decide which version goes to production, and LIME
explains what production says on problem patterns."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

import trenches
from trenches.demo.narration import say

GATES = """\
# Sign-off criteria for cancer-clf, agreed before training (see docs/gates.md).

[[gates.cancer-clf]]
metric = "accuracy"
min = 0.92

[[gates.cancer-clf]]
metric = "recall[malignant]"
min = 0.84

[[gates.cancer-clf]]
problems = "open"
min-score = 0.85

[[gates.cancer-clf]]
problems = "open"
no-break = "production"

[[gates.cancer-clf]]
metric = "accuracy"
vs = "production"
tolerance = 0.01
"""


def gates(store: trenches.Store, folder: Path, console: Console) -> str:
    """trenches.toml with gates; check the versions newer than production; promote the
    newest that passes, after showing that a failing one is refused."""
    say(
        console,
        "Sign-off gates are written in trenches.toml; each version newer than production "
        "is checked against them.",
    )
    toml = (folder / "trenches.toml").resolve()
    toml.write_text(GATES, encoding="utf-8")
    console.print(f"  wrote {toml.name}: {GATES.count('[[gates.')} gates for cancer-clf")
    production = store.models.get("cancer-clf@production")
    newer = [v.ref for v in store.models.versions("cancer-clf") if v.version > production.version]
    passing = []
    failing = []
    for ref in newer:
        check = store.gates.check(ref, path=toml)
        n = len(check.results)
        if check.passed:
            passing.append(ref)
            console.print(f"  {ref}: [green]passes {n - len(check.skipped)} of {n} gates[/]")
        else:
            failing.append(ref)
            console.print(f"  {ref}: [bold red]fails {len(check.failed)} of {n} gates[/]")
        for r in check.results:
            if r.status == "fail":
                console.print(f"    [red]FAIL[/] {escape(r.gate)}: {escape(r.detail)}")
    for ref in failing:
        try:
            store.models.promote(ref, "production", reason="the newest model")
        except trenches.CheckFailed as e:
            console.print(f"  promoting {ref} is refused: {escape(str(e).split(';')[0])}")
    if passing:
        best = passing[-1]
        store.models.promote(best, "production", reason="passed every gate")
        console.print(f"  {best} passed every gate and is promoted to production")
        return best
    return production.ref


def explain(store: trenches.Store, console: Console) -> None:
    """LIME explanations of two problem patterns by the production version."""
    say(console, "Why does production call these problem patterns what it does? LIME explains.")
    version = store.models.get("cancer-clf@production")
    chosen = [store.problems.get("small-malignant").positive[0]]
    chosen.append(store.problems.get("large-benign").positive[0])
    for e in store.explanations.explain(version.ref, chosen, seed=0, num_samples=2000):
        toward = escape(", ".join(f"{c} ({w:+.2f})" for _, c, w in e.toward()[:3]))
        against = escape(", ".join(f"{c} ({w:+.2f})" for _, c, w in e.against()[:2]))
        prob = f" ({e.probability:.0%})" if e.probability is not None else ""
        console.print(f"  pattern {e.pattern_id}: {version.ref} says {e.prediction}{prob}")
        console.print(f"    toward: {toward}")
        if against:
            console.print(f"    against: {against}")
