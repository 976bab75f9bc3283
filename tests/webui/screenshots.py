"""Screenshots of the web UI's main pages for docs/screenshots/ (``make screenshots``).

Not collected by ``make test`` (the file name does not start with ``test_``);
run on purpose through ``make screenshots``.  It builds the same household as
the browser tests (gateway on the simulated cloud, a member, an ATA), places
a real call so the dashboard shows one, and saves each page at desktop and
phone width.  It fails if a page does not load.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from playwright.async_api import Page, expect

from gateway.store import Store
from tests.e2e.scene import home_line
from tests.e2e.test_incoming import TONE_SIP, tone_pcm
from tests.webui.conftest import DESKTOP, PHONE, Household

OUT = Path(os.environ.get("SCREENSHOTS_DIR", "docs/screenshots"))
PAGES = [
    ("dashboard", "/"),
    ("lines", "/lines"),
    ("members", "/members"),
    ("calls", "/calls"),
    ("settings", "/settings"),
    ("forwarding", "/forwarding?number=%2B49+30+12345678&ring_time=20"),
    ("system", "/system"),
]


def _history(store: Store) -> None:
    """A few finished calls, so the history page has rows to show."""
    now = time.time()
    rows = [
        ("in", "home", "+442079460018", "Bob Carter", "answered", 184.0, 3600 * 3),
        ("in", "home", "+447700900123", "", "missed", 0.0, 3600 * 5),
        ("out", "home", "02079460955", "", "answered", 62.0, 3600 * 26),
        ("in", "home", "+442079460018", "Bob Carter", "busy", 0.0, 3600 * 30),
    ]
    for direction, line, number, name, outcome, talked, ago in rows:
        start = now - ago
        row = store.call_started(direction, line, f"sip:{number}@ata", number, name, "", start)
        if outcome == "answered":
            store.call_answered(row, start + 4, "PCMA")
        store.call_ended(row, start + 4 + talked, outcome, "remote hangup")


async def _shoot(page: Page, name: str, url: str) -> None:
    response = await page.goto(url)
    assert response is not None and response.ok, (url, response and response.status)
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(OUT / name), full_page=True)


async def test_screenshots(household: Household) -> None:
    os.makedirs(OUT, exist_ok=True)  # noqa: ASYNC230 - once, before anything runs
    await household.start([home_line()])
    scene = household.scene
    alice = await scene.member("Alice", answer_delay=0.5)
    await scene.member("Bob", answer_delay=60.0)  # rings; Alice takes the call
    _history(household.gw.store)
    household.web.app.extensions["linegram"].admin.set_wizard_done()
    ata = await scene.ata(tone_pcm(TONE_SIP, 60.0))
    await ata.command("dial", scene.dial_uri())
    await alice.wait_connected(scene.gateway_id(), 15)
    for viewport, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page = await household.admin(viewport)
        await page.goto(household.url + "/")
        await expect(page.locator("tbody[data-part=calls] tr.call")).to_have_count(1)
        for name, path in PAGES:
            await _shoot(page, f"{name}-{suffix}.png", household.url + path)
    await ata.command("hangup")
