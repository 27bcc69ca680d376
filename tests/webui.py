"""The world of the web UI's browser tests: the demo's store (built once per session,
copied for each test), one account per role, the team server with its pages on
loopback, and a signed-in headless Chromium page that records every request leaving
the server's origin and every console error, with axe-core (from the npm registry,
fetched by ``make test``) ready in each page to check its accessibility.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from rich.console import Console

import trenches
import trenches.demo
from test_api import Live
from trenches.web import create_app

#: One account per role, named after it (``admin`` is an admin account).
ROLES = ("viewer", "labeller", "tester", "maintainer", "approver", "admin")
PASSWORD = "correct horse battery staple"
#: The size every page is looked at (and photographed) in.
VIEWPORT = {"width": 1280, "height": 800}
_AXE = Path(__file__).resolve().parents[1] / ".cache" / "npm"


@dataclass(frozen=True)
class DemoRun:
    """The demo's project, and what the demo printed (200 columns wide)."""

    folder: Path
    text: str


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo, run once for the session (about 20 s) as ``make demo`` runs it: into
    a folder named relative to the working directory. Its project holds a dataset of
    four months, model versions, problems, gates, a served model with its request log
    and feedback, drift reports and a retraining pass. Tests read it; the web UI's copy
    it first."""
    where = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    before = Path.cwd()
    os.chdir(where)
    try:
        trenches.demo.run(Path("demo"), Console(file=out, width=200))
    finally:
        os.chdir(before)
    return DemoRun(where / "demo", out.getvalue())


@pytest.fixture(scope="session")
def demo_folder(demo_run: DemoRun) -> Path:
    """The demo's project (:func:`demo_run`)."""
    return demo_run.folder


def team_store_in(demo: Path, where: Path) -> trenches.Store:
    """A copy of the demo's store in ``where``, with an account per role of :data:`ROLES`
    (each granted its role on every namespace)."""
    shutil.copytree(demo / ".trenches", where / ".trenches")
    store = trenches.open(where / ".trenches", create=False)
    for role in ROLES:
        store.accounts.create(role, password=PASSWORD, admin=role == "admin")
        if role != "admin":
            store.grants.grant(role, role, "*")
    return store


@pytest.fixture
def team_store(demo_folder: Path, tmp_path: Path) -> Iterator[trenches.Store]:
    store = team_store_in(demo_folder, tmp_path / "team")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def ui(team_store: trenches.Store) -> Iterator[str]:
    """The team server, pages and API, over :func:`team_store` on loopback: its URL."""
    with Live(team_store, make=create_app) as live:
        yield live.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the module's tests (:func:`conftest.chromium`)."""
    from conftest import chromium

    with chromium() as opened:
        yield opened


def axe_source() -> Path:
    """axe-core's script, as ``make test`` fetched it."""
    found = sorted(_AXE.glob("axe-core-*/axe.min.js"))
    if not found:
        pytest.fail("axe-core is missing: `make test` fetches it into .cache/npm/")
    return found[-1]


@dataclass
class Visit:
    """A signed-in page, and what it did that it should not have."""

    page: Any
    origin: str
    off_origin: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def route(self, route: Any) -> None:
        url = route.request.url
        if _origin(url) == self.origin or url.startswith(("data:", "blob:")):
            route.continue_()
            return
        self.off_origin.append(url)
        route.abort()

    def console(self, message: Any) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.console_errors.append(f"{message.text} ({where})")

    def page_error(self, error: Any) -> None:
        self.console_errors.append(f"uncaught: {error}")

    def go(self, path: str) -> Any:
        """Open ``path`` of the server, and wait until its scripts have run."""
        answer = self.page.goto(self.origin + path, wait_until="load")
        assert answer is not None
        self.settled()
        return answer

    def settled(self) -> None:
        """Wait until the page's htmx requests are answered and swapped in (what a
        fragment loaded with the page, as the outliers are, needs), instead of the
        half a second of quiet network Playwright's ``networkidle`` waits on every
        page."""
        self.page.wait_for_load_state("load")
        self.page.wait_for_function(
            "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
        )

    def serious_violations(self) -> list[str]:
        """axe-core's serious and critical accessibility violations on the page now."""
        found = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
            ".map(v => v.id + ': ' + v.help + ' at '"
            " + v.nodes.map(n => n.target.join(' ')).join(', '))"
        )
        return list(found)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@contextmanager
def browsing(
    browser: Any, base: str, role: str | None, *, expected_errors: tuple[str, ...] = ()
) -> Iterator[Visit]:
    """A page signed in as ``role`` (None: nobody), at 1280x800. When the block ends,
    no request may have left ``base`` and no console error may have been logged but
    those holding one of ``expected_errors``."""
    context = browser.new_context(viewport=VIEWPORT)
    # Injected by the browser itself, which the page's content security policy allows.
    context.add_init_script(path=str(axe_source()))
    page = context.new_page()
    visit = Visit(page, _origin(base))
    context.route("**/*", visit.route)
    page.on("console", visit.console)
    page.on("pageerror", visit.page_error)
    try:
        if role is not None:
            sign_in(visit, role)
        yield visit
        assert visit.off_origin == [], "requests left the server's origin"
        unexpected = [e for e in visit.console_errors if not any(x in e for x in expected_errors)]
        assert unexpected == [], "the console logged errors"
    finally:
        context.close()


def sign_in(visit: Visit, role: str) -> None:
    """Sign in through the form as the account of ``role``."""
    visit.go("/sign-in")
    visit.page.get_by_label("Name").fill(role)
    visit.page.get_by_label("Password").fill(PASSWORD)
    visit.page.get_by_role("button", name="Sign in").click()
    visit.page.wait_for_url(visit.origin + "/")
