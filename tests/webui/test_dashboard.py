"""The dashboard follows a call live: it appears while the call is up and clears after it."""

from __future__ import annotations

from playwright.async_api import expect

from tests.e2e.test_incoming import TONE_SIP, tone_pcm
from tests.webui.conftest import Household


async def test_dashboard_shows_a_live_call_and_clears_after_it(household: Household) -> None:
    await household.start()
    scene = household.scene
    alice = await scene.member("Alice", answer_delay=0.5)
    ata = await scene.ata(tone_pcm(TONE_SIP, 20.0))
    page = await household.admin()
    await page.goto(household.url + "/")
    await expect(page.locator("[data-part=lines]")).to_contain_text("registered")
    await expect(page.locator("[data-part=telegram]")).to_contain_text("connected")
    await expect(page.locator("[data-part=bot]")).to_contain_text("@linegram_home_bot")
    await expect(page.get_by_text("No call right now.")).to_be_visible()
    # Marks this document: if the page reloaded, the mark would be gone.
    await page.evaluate("window.__sameDocument = true")

    await ata.command("dial", scene.dial_uri())
    await ata.wait_event("CALL_ESTABLISHED", within=15)
    await alice.wait_connected(scene.gateway_id(), 15)
    row = page.locator("tbody[data-part=calls] tr.call")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Alice")
    await expect(row).to_contain_text("home")
    await expect(row).to_contain_text("talking")

    await ata.command("hangup")
    await alice.wait_event("discarded", 10, peer=scene.gateway_id())
    await expect(row).to_have_count(0)
    await expect(page.get_by_text("No call right now.")).to_be_visible()
    assert await page.evaluate("window.__sameDocument === true")
