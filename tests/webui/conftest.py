"""Browser tests of the web UI: Playwright driving Debian's Chromium against a real gateway.

The household here is the end-to-end one (tests/e2e/scene.py): a simulated
Telegram cloud, the gateway in this event loop with its settings in a file,
simulated members with real ntgcalls media, SIP peers.  The web UI is its own
Flask app served by waitress in a thread; it reaches the gateway only through
the control socket, as installed.  Chromium is /usr/bin/chromium (Debian's
package), never a downloaded browser.

Every test needs the media namespace (``tools/in-netns.sh``): real calls.
Playwright's async API keeps this event loop free, so the gateway answers the
web UI's control calls while the browser waits.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import waitress
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from waitress import wasyncore

from gateway.app import Gateway
from tests.e2e.scene import Scene, eventually
from tests.interop.conftest import logbook, media, peers, pytest_runtest_makereport  # noqa: F401
from tests.interop.peers.harness import Peers
from webui import create_app

CHROMIUM = "/usr/bin/chromium"
ADMIN_PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone's CSS viewport
STEP_MS = 15_000  # what a single browser step may take


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.media)
            item.add_marker(pytest.mark.interop)


@dataclass
class WebServer:
    """The web UI served by waitress on 127.0.0.1 (a free port) in a daemon thread."""

    settings_file: Path
    app: Any = None
    server: Any = None
    thread: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        # A new app gives the (module-level) login limiter new, empty counters.
        self.app = create_app(self.settings_file)
        self.server = waitress.create_server(self.app, host="127.0.0.1", port=0, threads=8)
        self.thread = threading.Thread(target=self._serve, name="webui", daemon=True)
        self.thread.start()
        return self.url

    def _serve(self) -> None:
        # waitress's own run() loops until its sockets vanish under it (a noisy EBADF when
        # closed from another thread); this loop stops on a flag and closes in its own thread.
        while not self.stopping.is_set():
            wasyncore.loop(timeout=0.1, map=self.server._map, use_poll=True, count=1)
        self.server.close()
        self.server.task_dispatcher.shutdown()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.effective_port}"

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)


@dataclass
class Household:
    """A scene, its web UI and a browser; pages open on the web UI."""

    scene: Scene
    browser: Browser
    web: WebServer
    contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def gw(self) -> Gateway:
        return self.scene.gw

    async def start(self, lines: list[dict[str, Any]] | None = None, **options: Any) -> Gateway:
        """The gateway with its settings in a file, then the web UI reading that file."""
        gw = await self.scene.start(lines, settings_file=self.settings_file, **options)
        self.web.start()
        return gw

    @property
    def settings_file(self) -> Path:
        return self.web.settings_file

    async def page(self, viewport: dict[str, int] = DESKTOP) -> Page:
        """A fresh browser profile (no cookies) on the dashboard URL's origin."""
        context = await self.browser.new_context(viewport=viewport, device_scale_factor=1)  # type: ignore[arg-type]
        context.set_default_timeout(STEP_MS)
        self.contexts.append(context)
        return await context.new_page()

    async def first_run(self, page: Page, password: str = ADMIN_PASSWORD) -> None:
        """Set the admin password on a fresh installation (lands in the wizard)."""
        await page.goto(self.url + "/")
        await page.get_by_label("New admin password").fill(password)
        await page.get_by_label("Repeat it").fill(password)
        await page.get_by_role("button", name="Set password and continue").click()
        await page.wait_for_url(re.compile(r"/wizard"))

    async def login(self, page: Page, password: str = ADMIN_PASSWORD) -> None:
        await page.goto(self.url + "/login")
        await page.get_by_label("Admin password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(lambda url: "/login" not in url)

    async def admin(self, viewport: dict[str, int] = DESKTOP) -> Page:
        """A logged-in page (setting the password first on a fresh installation)."""
        page = await self.page(viewport)
        if not self.web.app.extensions["linegram"].admin.has_password:
            await self.first_run(page)
        else:
            await self.login(page)
        return page

    async def html_of_every_page(self, page: Page) -> dict[str, str]:
        """The HTML of each page in the menu, as the browser received it."""
        pages: dict[str, str] = {}
        await page.goto(self.url + "/")
        links = await page.locator("header nav a").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        )
        for href in links:
            response = await page.goto(self.url + href)
            assert response is not None and response.ok, (href, response and response.status)
            pages[href] = await page.content()
        return pages


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def household(
    tmp_path: Path,
    peers: Peers,  # noqa: F811
    browser: Browser,
) -> AsyncIterator[Household]:
    async with Scene.build(tmp_path, peers) as scene:
        web = WebServer(tmp_path / "linegram.toml")
        home = Household(scene, browser, web)
        try:
            yield home
        finally:
            for context in home.contexts:
                await context.close()
            # waitress's close() returns at once; its thread ends within a second.
            await asyncio.to_thread(web.stop)


__all__ = ["ADMIN_PASSWORD", "DESKTOP", "PHONE", "Household", "eventually"]
