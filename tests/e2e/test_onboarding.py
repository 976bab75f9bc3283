"""Onboarding through the running gateway: an invitation from the control API to a ringing member.

The owner's side is the control API (what the web UI will call); the member's
side is their Telegram app opening the t.me link (messages.startBot) and
pressing **Receive** in the bot's chat.  The 5-minute limit is checked by
moving the onboarding's clock, never by sleeping.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from telethon import functions

from gateway.control import ControlClient
from simcloud.member import SimMember
from tests.e2e.scene import BOT_USERNAME, Scene, eventually
from tests.e2e.test_incoming import TONE_SIP, tone_pcm


async def open_link(sim: SimMember, link: str) -> None:
    """Tap https://t.me/<bot>?start=<token>, as the Telegram app does."""
    parts = urlsplit(link)
    bot = await sim.client.get_input_entity(parts.path.strip("/"))
    (token,) = parse_qs(parts.query)["start"]
    await sim.client(functions.messages.StartBotRequest(bot=bot, peer=bot, start_param=token))


async def invite(scene: Scene, **params: object) -> dict[str, object]:
    async with ControlClient(scene.gw.config.data_dir / "control.sock") as control:
        result: dict[str, object] = await control.call("invitations.create", **params)
    return result


async def test_invitation_received_within_five_minutes_links_a_member_who_then_rings(
    scene: Scene,
) -> None:
    gw = await scene.start()
    carol = await scene.phone("Carol", answer_delay=0.5)
    invitation = await invite(scene, lines=["home"], note="Carol")
    link = str(invitation["link"])
    assert link.startswith(f"https://t.me/{BOT_USERNAME}?start="), link

    await open_link(carol, link)
    offer = await scene.message_with(carol, "Receive", chat=BOT_USERNAME)
    await scene.press(carol, offer, "Receive", chat=BOT_USERNAME)
    await scene.message_with(carol, "Setup complete", chat=BOT_USERNAME)
    member = await eventually(lambda: gw.store.member_by_telegram(carol.id))
    assert member.lines == ("home",) and member.owner
    assert member.access_hash == scene.state.access_hash(scene.gateway_user, carol.user)

    # Linked: a call on the line now rings Carol.
    ata = await scene.ata(tone_pcm(TONE_SIP, 5.0))
    await ata.command("dial", scene.dial_uri())
    await scene.message_with(carol, "Incoming call from")
    await ata.wait_event("CALL_ESTABLISHED", within=15)
    await carol.wait_connected(scene.gateway_id(), 15)
    await ata.command("hangup")


async def test_invitation_expires_after_five_minutes(scene: Scene) -> None:
    gw = await scene.start()
    carol = await scene.phone("Carol")
    invitation = await invite(scene, lines=["home"])
    await open_link(carol, str(invitation["link"]))
    offer = await scene.message_with(carol, "Receive", chat=BOT_USERNAME)
    real = gw.onboarding.clock
    gw.onboarding.clock = lambda: real() + 300.0
    await scene.press(carol, offer, "Receive", chat=BOT_USERNAME)
    await scene.message_with(carol, "expired", chat=BOT_USERNAME)
    assert gw.store.member_by_telegram(carol.id) is None


async def test_invitation_cannot_be_used_twice(scene: Scene) -> None:
    gw = await scene.start()
    carol = await scene.phone("Carol")
    mallory = await scene.phone("Mallory")
    invitation = await invite(scene, lines=["home"])
    link = str(invitation["link"])
    await open_link(carol, link)
    offer = await scene.message_with(carol, "Receive", chat=BOT_USERNAME)
    await scene.press(carol, offer, "Receive", chat=BOT_USERNAME)
    await scene.message_with(carol, "Setup complete", chat=BOT_USERNAME)

    await open_link(mallory, link)
    await scene.message_with(mallory, "already been used", chat=BOT_USERNAME)
    assert gw.store.member_by_telegram(mallory.id) is None
    assert [m.name for m in gw.store.members()] == ["Carol"]
