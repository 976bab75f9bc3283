"""The Lines page in the browser: a bad port is explained and not saved; a good line goes live."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from gateway.control import ControlClient
from tests.webui.conftest import Household
from webui.views.dashboard import LINE_STATES


async def gateway_status(household: Household) -> dict[str, Any]:
    """The running gateway's `status`, through its control socket as the web UI asks it."""
    socket = household.web.app.extensions["linegram"].settings.control_socket
    async with ControlClient(socket) as client:
        status: dict[str, Any] = await client.call("status")
    return status


async def test_a_bad_port_is_explained_and_nothing_saved_then_an_ata_line_goes_live(
    household: Household,
) -> None:
    await household.start()
    page = await household.admin()
    before = household.settings_file.read_bytes()
    await page.goto(household.url + "/lines")
    rows = page.locator("table.lines tbody tr")
    await expect(rows).to_have_count(1)  # the scene's line "home"

    await page.get_by_role("link", name="Add provider line").click()
    await page.get_by_label("Name", exact=True).fill("office")
    await page.get_by_label("SIP server (registrar)").fill("sip.example.com:99999")
    await page.get_by_label("User name", exact=True).fill("4940123456")
    await page.get_by_label("Password", exact=True).fill("office-secret-7")
    await page.get_by_role("button", name="Add line").click()
    # The message sits in the registrar's own field block, and the field is marked invalid.
    field = page.locator(".field", has=page.locator("#registrar"))
    await expect(field.locator(".error")).to_have_text(
        "The port (after the colon) must be a number from 1 to 65535, not 99999."
    )
    await expect(page.locator("#registrar")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#registrar")).to_have_value("sip.example.com:99999")
    assert "office-secret-7" not in await page.content()  # not even the typed password
    assert household.settings_file.read_bytes() == before
    await page.goto(household.url + "/lines")
    await expect(rows).to_have_count(1)
    assert [line["name"] for line in (await gateway_status(household))["lines"]] == ["home"]

    await page.get_by_role("link", name="Add ATA line").click()
    await page.get_by_label("Name", exact=True).fill("kitchen")
    await page.get_by_label("User name the ATA registers with").fill("kitchen-ata")
    await page.get_by_label("Password", exact=True).fill("kitchen-secret-8")
    await page.get_by_role("button", name="Add line").click()
    await page.wait_for_url(household.url + "/lines")
    await expect(page.get_by_role("status").first).to_contain_text("Line kitchen: saved")
    await expect(page.locator('tr[data-line="kitchen"]')).to_contain_text(
        "registers as kitchen-ata"
    )
    assert "kitchen-secret-8" not in await page.content()
    assert "kitchen-secret-8" in household.settings_file.read_text()

    # The running gateway took it (config.reload, before the page came back): its status
    # lists the new line.
    status = await gateway_status(household)
    assert [line["name"] for line in status["lines"]] == ["home", "kitchen"]
    # The list shows the gateway's state of the new line.
    state = next(line["state"] for line in status["lines"] if line["name"] == "kitchen")
    await expect(page.locator('tr[data-line="kitchen"] .badge').nth(1)).to_have_text(
        LINE_STATES[state][1]
    )
