"""The Members page in the browser: an invitation with its QR code, used by a phone; revoke."""

from __future__ import annotations

import re

from playwright.async_api import Dialog, Page, expect

from tests.e2e.scene import BOT_USERNAME, eventually
from tests.e2e.test_onboarding import open_link
from tests.webui.conftest import Household


async def create_invitation(page: Page, household: Household, note: str) -> str:
    """Invite to the line "home" with *note*; the link shown."""
    await page.goto(household.url + "/members")
    await page.get_by_label("Who it is for (optional)").fill(note)
    await page.get_by_role("button", name="Create invitation").click()
    await expect(page.get_by_role("heading", name="Invitation created")).to_be_visible()
    qr = page.locator("div.qr > svg")
    await expect(qr).to_be_visible()
    box = await qr.bounding_box()
    assert box is not None and box["width"] >= 150 and box["height"] >= 150  # scannable size
    link = await page.locator(".invite-link a").inner_text()
    assert link.startswith(f"https://t.me/{BOT_USERNAME}?start="), link
    token = link.rsplit("=", 1)[1]
    await expect(page.locator(".invite-command")).to_have_text(f"/start {token}")
    await expect(page.locator(".countdown")).to_have_text(re.compile(r"Valid for [45]:\d\d"))
    return link


async def test_an_invitation_with_its_qr_code_links_the_phone_that_opens_it(
    household: Household,
) -> None:
    await household.start()
    scene = household.scene
    carol = await scene.phone("Carol")
    page = await household.admin()
    link = await create_invitation(page, household, "Carol's phone")

    await page.get_by_role("link", name="Done").click()
    pending = page.locator("table.invitations tbody tr")
    await expect(pending).to_have_count(1)
    await expect(pending).to_contain_text("Carol's phone")
    assert link.rsplit("=", 1)[1] not in await page.content()  # shown once only

    await open_link(carol, link)
    offer = await scene.message_with(carol, "Receive", chat=BOT_USERNAME)
    await scene.press(carol, offer, "Receive", chat=BOT_USERNAME)
    await eventually(lambda: household.gw.store.member_by_telegram(carol.id))
    await page.reload()
    await expect(pending).to_have_count(0)
    row = page.locator("table.members tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Carol")
    await expect(row).to_contain_text("owner")
    await expect(row).to_contain_text("home")


async def test_a_revoked_invitation_no_longer_works(household: Household) -> None:
    await household.start()
    scene = household.scene
    mallory = await scene.phone("Mallory")
    page = await household.admin()
    answers: list[str] = []

    async def accept(dialog: Dialog) -> None:
        answers.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    link = await create_invitation(page, household, "for someone")
    await page.get_by_role("button", name="Revoke").click()
    await expect(page.get_by_role("status").first).to_contain_text("Invitation revoked")
    assert answers and "Revoke this invitation" in answers[0]
    await expect(page.locator("table.invitations tbody tr")).to_have_count(0)

    await open_link(mallory, link)
    await scene.message_with(mallory, "it was withdrawn", chat=BOT_USERNAME)
    assert household.gw.store.member_by_telegram(mallory.id) is None
