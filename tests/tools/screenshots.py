"""``make screenshots``: every page of the web UI at 1280x800, photographed in headless
Chromium (Debian's) over the demo's store, into ``docs/images/ui-*.png`` for docs/ui.md.

It builds the demo's project in a temporary folder, adds an account per role, serves the
team server on loopback, signs in (as the role each page is shown to) and photographs
each page once its scripts have drawn it.

    python tests/tools/screenshots.py [OUT]     # OUT: docs/images
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

import trenches
import trenches.demo
from test_api import Live
from trenches.web import create_app
from webui import browsing, team_store_in

from conftest import chromium

ROOT = Path(__file__).resolve().parents[2]


def shots(store: trenches.Store) -> list[tuple[str, str, str]]:
    """Every page to photograph: (file name, role shown to, path)."""
    model = "cancer-clf"
    versions = store.models.versions(model)
    production = store.models.get(f"{model}@production")
    newest = versions[-1]
    problem = store.problems.list(status="open")[0].slug
    pattern = store.problems.get(problem).positive[0]
    snapshot = store.datasets.get("cancer").snapshots()[-1].id
    earlier = next(v for v in versions if v.version != production.version)
    return [
        ("ui-sign-in", "", "/sign-in"),
        ("ui-home", "approver", "/"),
        ("ui-problems", "tester", "/problems"),
        ("ui-problem", "tester", f"/problems/{problem}"),
        ("ui-problem-version", "tester", f"/problems/{problem}/versions/{quote(production.ref)}"),
        ("ui-patterns", "tester", "/patterns?dataset=cancer"),
        ("ui-pattern", "labeller", f"/patterns/{pattern}"),
        ("ui-queue", "labeller", "/queue"),
        ("ui-models", "approver", "/models"),
        ("ui-model", "approver", f"/models/{model}"),
        ("ui-version", "approver", f"/models/{model}/{newest.version}"),
        (
            "ui-compare",
            "approver",
            f"/models/{model}/compare?a={quote(earlier.ref)}&b={quote(production.ref)}",
        ),
        ("ui-production", "viewer", f"/production/{model}"),
        ("ui-quality", "viewer", f"/quality/{snapshot}"),
        ("ui-audit", "admin", "/audit"),
    ]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trenches-shots-") as tmp:
        demo = Path(tmp) / "demo"
        print("building the demo's store ...", flush=True)
        trenches.demo.run(demo, Console(file=io.StringIO(), width=120))
        store = team_store_in(demo, Path(tmp) / "team")
        planned = shots(store)
        with Live(store, make=create_app) as live, chromium() as browser:
            for name, role, path in planned:
                with browsing(browser, live.url, role or None) as visit:
                    answer = visit.go(path)
                    if answer.status != 200:
                        raise SystemExit(f"{path} answered {answer.status} to {role}")
                    visit.page.wait_for_timeout(300)  # charts finish their transitions
                    target = out / f"{name}.png"
                    visit.page.screenshot(path=str(target))
                    print(
                        f"  {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}"
                    )
        store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images")
