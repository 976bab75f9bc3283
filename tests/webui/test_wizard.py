"""The first-run wizard completed in the browser against the simulated Telegram cloud.

A fresh installation: no API app, no bot token, no line.  The owner sets the
admin password, signs the gateway account in with the code the simulated
cloud sent, connects the companion bot, adds the ATA line (baresip then
registers to it), invites themselves (their simulated phone opens the link
and presses Receive), and the echo test call reaches them: they speak (a
tone), and the page says that audio flows.
"""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from gateway.admin_telegram import frame_dbfs
from gateway.config import AtaLineConfig, load_config
from simcloud.client import SIM_API_HASH, SIM_API_ID
from tests.e2e.scene import ATA_USER, BOT_USERNAME, GATEWAY_PHONE, eventually
from tests.e2e.test_incoming import TONE_SIP, tone_pcm
from tests.e2e.test_onboarding import open_link
from tests.interop.peers.gateway import ATA_PASSWORD
from tests.webui.conftest import PHONE, Household

TONE_HZ = 700.0


async def test_the_wizard_takes_a_fresh_installation_to_a_working_echo_test(
    household: Household,
) -> None:
    await household.start([], signed_in=False)
    scene = household.scene
    page = await household.page(PHONE)  # the owner sets it up from a phone
    await household.first_run(page)
    steps = page.locator("ol.steps li")
    current = page.locator("ol.steps li.current")
    await expect(steps).to_have_count(5)
    await expect(current).to_contain_text("Telegram account")

    # 1. The gateway's Telegram account: API app, phone number, the code Telegram sent.
    await expect(page.get_by_role("link", name="my.telegram.org")).to_be_visible()
    await page.get_by_label("api_id").fill(str(SIM_API_ID))
    await page.get_by_label("api_hash").fill(SIM_API_HASH)
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_label("Phone number of the gateway account").fill(GATEWAY_PHONE)
    await page.get_by_role("button", name="Send me the code").click()
    await expect(page.get_by_label("Login code")).to_be_visible()
    code = scene.state.last_code(GATEWAY_PHONE)
    # A mistyped code first: the problem is next to the field, the step stays.
    await page.get_by_label("Login code").fill("00000" if code != "00000" else "11111")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#code-error")).to_be_visible()
    await expect(page.get_by_label("Login code")).to_have_value("")
    await page.get_by_label("Login code").fill(code)
    await page.get_by_role("button", name="Sign in").click()

    # 2. The companion bot (the simulated one has inline mode on).
    await expect(current).to_contain_text("Companion bot")
    await expect(page.locator("ol.steps li", has_text="Telegram account")).to_have_class("done")
    await expect(page.get_by_text("/setinline").first).to_be_visible()
    await page.get_by_label("Bot token").fill(scene.bot_token)
    await page.get_by_role("button", name="Connect the bot").click()
    await expect(
        page.get_by_text(f"The companion bot @{BOT_USERNAME} is connected.")
    ).to_be_visible()

    # 3. The first line: the ATA on the landline, with the password typed into the ATA.
    await expect(current).to_contain_text("First line")
    await page.get_by_label("An ATA").check()
    await expect(page.get_by_label("SIP server (registrar)")).to_be_hidden()
    await page.get_by_label("Line name").fill("home")
    await page.get_by_label("Country code of the line").fill("44")
    await page.get_by_label("User name the ATA registers with").fill(ATA_USER)
    await page.get_by_label("Password the ATA registers with").fill(ATA_PASSWORD)
    await page.get_by_role("button", name="Save the line").click()
    settings = page.locator("#ata-settings")
    host, port = scene.gateway.address if scene.gateway else ("", 0)
    await expect(settings).to_contain_text(f"{host}:{port}")
    await expect(settings).to_contain_text("Unconditional Call Forward to VOIP")
    line = load_config(household.settings_file).line("home")
    assert isinstance(line, AtaLineConfig) and line.incoming == "members"
    assert ATA_PASSWORD not in await page.content()
    # The gateway took the new line at once: the ATA registers to it.
    await scene.ata(tone_pcm(TONE_SIP, 5.0))
    await page.get_by_role("link", name="Continue").click()

    # 4. The test call: first the owner links their own Telegram.
    await expect(current).to_contain_text("Test call")
    await expect(page.get_by_text("dial 600")).to_be_visible()
    owner = await scene.phone("Owner")
    await page.get_by_role("button", name="Invite yourself").click()
    await expect(page.locator(".qr svg")).to_be_visible()
    link = await page.locator("#invite-link").get_attribute("href")
    assert link and link.startswith(f"https://t.me/{BOT_USERNAME}?start=")
    await open_link(owner, link)
    offer = await scene.message_with(owner, "Receive", chat=BOT_USERNAME)
    await scene.press(owner, offer, "Receive", chat=BOT_USERNAME)
    # The page notices the new member by itself.
    await expect(page.get_by_role("button", name="Call me")).to_be_visible()
    member = await eventually(lambda: household.gw.store.member_by_telegram(owner.id))
    assert member.owner and member.lines == ("home",)

    await page.get_by_role("button", name="Call me").click()
    await owner.wait_connected(scene.gateway_id(), 15)
    speaking = asyncio.ensure_future(owner.send_tone(scene.gateway_id(), TONE_HZ, 6.0))
    try:
        badge = page.locator("#test-call [data-part=badge]")
        await expect(badge).to_have_text("audio flows", timeout=15_000)
        await expect(badge).to_have_class(re.compile(r"\bok\b"))
        await expect(page.locator("#test-call [data-part=message]")).not_to_be_empty()
    finally:
        await speaking
    # The gateway played the voice back: the owner heard their own tone.
    level = frame_dbfs(owner.received_pcm(scene.gateway_id()))
    assert level is not None and level > -30.0, level
    # Hanging up leaves the verdict on the page.
    await page.get_by_role("button", name="Hang up").click()
    message = page.locator("#test-call [data-part=message]")
    await expect(message).to_contain_text("Audio flows")
    await expect(page.get_by_role("button", name="Hang up")).to_be_hidden()

    await page.get_by_role("button", name="Finish").click()
    await page.wait_for_url(household.url + "/")
    assert household.web.app.extensions["linegram"].admin.load().wizard_done
    await expect(page.get_by_text("Continue the setup wizard")).to_have_count(0)
