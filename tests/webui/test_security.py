"""Login lock-out, CSRF on state-changing requests, and no secret in any page."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.e2e.scene import home_line
from tests.interop.peers.gateway import ATA_PASSWORD
from tests.webui.conftest import ADMIN_PASSWORD, Household

ASSET = re.compile(r'<(?:script|img|link)\b[^>]*?\b(?:src|href)="([^"]*)"')


async def test_login_locks_out_after_five_wrong_passwords(household: Household) -> None:
    await household.start(signed_in=False)
    await household.admin()  # sets the password on first run
    page = await household.page()
    for _ in range(5):
        await page.goto(household.url + "/login")
        await page.get_by_label("Admin password").fill("not the password")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_text("Wrong password.")).to_be_visible()
    # Locked now: even the right password is refused, with a page that says why.
    await page.get_by_label("Admin password").fill(ADMIN_PASSWORD)
    async with page.expect_response(lambda r: r.url.endswith("/login")) as answer:
        await page.get_by_role("button", name="Log in").click()
    response = await answer.value
    assert response.status == 429
    assert int(response.headers["retry-after"]) > 60
    await expect(page.get_by_role("heading", name="Too many wrong passwords")).to_be_visible()
    await page.goto(household.url + "/")
    assert "/login" in page.url  # not logged in


async def test_a_form_without_its_csrf_token_is_rejected_and_changes_nothing(
    household: Household,
) -> None:
    await household.start(signed_in=False)
    page = await household.admin()
    await page.goto(household.url + "/")
    # The log-out form, stripped of its token as a forged cross-site post would be.
    await page.locator("form[action='/logout'] input[name=csrf_token]").evaluate("e => e.remove()")
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_text("The CSRF token is missing.")).to_be_visible()
    # A script's POST without the header is refused the same way.
    status = await page.evaluate(
        "fetch('/logout', {method: 'POST', redirect: 'manual'}).then(r => r.status)"
    )
    assert status == 400
    await page.goto(household.url + "/")
    assert "/login" not in page.url  # still logged in: nothing happened
    # The session cookie a script cannot read and no other site can send.
    (cookie,) = await page.context.cookies()
    assert cookie["name"] == "linegram_session"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"


async def test_no_secret_appears_in_any_page(household: Household) -> None:
    await household.start([home_line()])
    config_text = household.settings_file.read_text()
    secrets = [ATA_PASSWORD, household.scene.bot_token]
    api_hash = household.gw.config.telegram.api_hash.reveal()
    secrets.append(api_hash)
    for secret in secrets:
        assert secret and secret in config_text  # the file holds them; pages must not
    page = await household.admin()
    pages = await household.html_of_every_page(page)
    assert len(pages) >= 7, sorted(pages)
    for href, html in pages.items():
        for secret in secrets:
            assert secret not in html, f"a secret is in the HTML of {href}"
        # Scripts, styles and images come from the box itself (it may be offline).
        assets = ASSET.findall(html)
        assert assets and all(url.startswith("/") for url in assets), (href, assets)
