"""Invitations: the link, Receive within 5 minutes and once, setup complete, the privacy verdict.

Members are real (simulated) Telegram apps: they open the deep link with
messages.startBot, press the bot's buttons with the data the button carries,
and write to the gateway account.  The clock of the invitations is injected.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from telethon import TelegramClient
from telethon.tl import functions, types

from gateway.calls.onboarding import Invitation, Onboarding, token_hash
from gateway.store import MemberRecord, Store
from gateway.telegram.account import TelegramAccount
from gateway.telegram.bot import CompanionBot
from gateway.telegram.messages import (
    Button,
    InboundEvent,
    Member,
    Messenger,
    OutgoingMessage,
    StartCommand,
    TextFromMember,
    render_plain,
)
from gateway.telegram.privacy import check_call_privacy
from simcloud.state import SimUser
from tests.telegram.simworld import World, eventually, eventually_async

LINES = ("home", "office")
T0 = 1_700_000_000.0


@dataclass
class Home:
    """The gateway account, its Messenger (with or without the bot), the store, onboarding."""

    world: World
    account: TelegramAccount
    messenger: Messenger
    bot: CompanionBot | None
    sim_bot: SimUser | None
    store: Store
    onboarding: Onboarding
    now: list[float]  # the invitations' clock: now[0]
    handled: list[tuple[InboundEvent, bool]] = field(default_factory=list)
    linked: list[MemberRecord] = field(default_factory=list)

    def advance(self, seconds: float) -> None:
        self.now[0] += seconds


async def make_home(world: World, with_bot: bool) -> Home:
    bot, sim_bot = await world.bot() if with_bot else (None, None)
    account = await world.signed_in_account()
    messenger = Messenger(account, bot)
    messenger.start()
    world.closers.append(messenger.stop)
    store = Store.open(world.tmp / "linegram.db")
    world.closers.append(store.close)
    now = [T0]

    async def check(member: Member) -> Any:
        return await check_call_privacy(account, member)

    onboarding = Onboarding(
        store,
        messenger,
        bot_username=lambda: bot.username if bot is not None else "",
        gateway_username=lambda: account.user.username if account.user else "",
        lines=lambda: LINES,
        check_privacy=check,
        clock=lambda: now[0],
    )
    home = Home(world, account, messenger, bot, sim_bot, store, onboarding, now)
    onboarding.on_linked.append(home.linked.append)

    async def feed(event: InboundEvent) -> None:
        home.handled.append((event, await onboarding.handle(event)))

    messenger.subscribe(feed)
    return home


@pytest.fixture
async def home(world: World) -> AsyncIterator[Home]:
    yield await make_home(world, with_bot=True)


@pytest.fixture
async def home_without_bot(world: World) -> AsyncIterator[Home]:
    yield await make_home(world, with_bot=False)


# -- a member's app ---------------------------------------------------------------


@dataclass
class Phone:
    """A member's Telegram app and the chats it shows."""

    client: TelegramClient
    user: SimUser

    async def open_link(self, link: str) -> None:
        """Tap t.me/<bot>?start=<token>: the app sends messages.startBot."""
        parts = urlsplit(link)
        assert (parts.scheme, parts.netloc) == ("https", "t.me")
        bot = await self.client.get_input_entity(parts.path.strip("/"))
        (token,) = parse_qs(parts.query)["start"]
        await self.client(functions.messages.StartBotRequest(bot=bot, peer=bot, start_param=token))

    async def newest(self, who: SimUser, after: int = 0) -> Any:
        """The newest message from *who* with an id above *after*."""
        peer = await self.client.get_input_entity(who.username or who.id)

        async def find() -> Any:
            for message in await self.client.get_messages(peer, limit=5):
                if not message.out and message.id > after:
                    return message
            return None

        return await eventually_async(find)

    async def message(self, who: SimUser, message_id: int) -> Any:
        peer = await self.client.get_input_entity(who.username or who.id)
        return await self.client.get_messages(peer, ids=message_id)

    async def changed(self, who: SimUser, message: Any) -> Any:
        """*message* once its text differs from what it was."""

        async def edited() -> Any:
            now = await self.message(who, message.id)
            return now if now is not None and now.text != message.text else None

        return await eventually_async(edited)

    async def press(self, message: Any, label: str) -> None:
        """Tap the callback button *label*, as the app does (with the data it carries)."""
        button = next(b for row in message.buttons for b in row if b.text == label)
        await message.click(data=button.data)

    async def write(self, user: SimUser, text: str) -> None:
        await self.client.send_message(await self.client.get_input_entity(user.username), text)


async def phone(world: World, number: str, name: str, username: str | None) -> Phone:
    client, user = await world.member(number, name, username)
    return Phone(client, user)


async def restrict_calls(p: Phone) -> None:
    await p.client(
        functions.account.SetPrivacyRequest(
            types.InputPrivacyKeyPhoneCall(), [types.InputPrivacyValueDisallowAll()]
        )
    )


async def receive_offer(home: Home, p: Phone, invitation: Invitation, after: int = 0) -> Any:
    """Open the invitation's link and wait for the bot's message with Receive."""
    assert home.sim_bot is not None
    await p.open_link(invitation.link)
    return await p.newest(home.sim_bot, after)


def buttons(message: Any) -> list[list[str]]:
    return [[b.text for b in row] for row in message.buttons or []]


def stored_hash(home: Home, p: Phone) -> int:
    return int(home.world.state.access_hash(home.world.gateway_user, p.user))


# -- accepted -------------------------------------------------------------------------


async def test_invitation_link_and_receive_links_the_member(world: World, home: Home) -> None:
    alice = await phone(world, "+999 66 1001", "Alice", "alice_home")
    invitation = home.onboarding.invite(["home"], "Alice's phone")
    assert invitation.link == f"https://t.me/linegram_test_bot?start={invitation.token}"
    assert len(invitation.token) == 22 and invitation.token not in repr(invitation)
    assert invitation.record.token_hash == token_hash(invitation.token)
    assert invitation.record.expires_at == T0 + 300
    assert invitation.token.encode() not in (world.tmp / "linegram.db").read_bytes()

    offer = await receive_offer(home, alice, invitation)
    assert offer.text.startswith("👋 You are invited to Home Gateway's Linegram")
    assert "line home" in offer.text
    assert offer.text.endswith("Press Receive within 5 minutes to set it up.")
    assert buttons(offer) == [["Receive"]]
    assert home.store.members() == []  # nothing until Receive

    home.advance(299)
    await alice.press(offer, "Receive")
    assert home.sim_bot is not None
    done = await alice.changed(home.sim_bot, offer)
    assert done.id == offer.id  # edited in place
    assert done.text.startswith("✅ Setup complete: you are a member of")
    assert "(line home)" in done.text and "@home_gateway" in done.text
    assert buttons(done) == [["Open @home_gateway"]]
    assert done.buttons[0][0].url == "https://t.me/home_gateway"

    verdict = await alice.newest(home.sim_bot, after=offer.id)
    assert verdict.text.startswith("📞 Home Gateway (@home_gateway) can call Alice.")
    assert "Peer-to-peer: My Contacts or Everybody" in verdict.text

    member = home.store.member_by_telegram(alice.user.id)
    assert member is not None
    assert (member.name, member.username, member.lines, member.owner) == (
        "Alice",
        "alice_home",
        ("home",),
        True,
    )
    # Found through her @username: the gateway account can call her at once.
    assert member.access_hash == stored_hash(home, alice)
    assert member.linked_at == T0 + 299
    assert (member.privacy, member.privacy_checked_at) == ("ok", T0 + 299)
    used = home.store.invitation(invitation.record.id)
    assert used is not None and (used.used_at, used.used_by) == (T0 + 299, member.id)
    assert [m.id for m in home.linked] == [member.id]
    assert home.store.invitations(at=home.now[0]) == []  # no open invitation left


async def test_restricted_calls_get_the_guidance(world: World, home: Home) -> None:
    olivia = home.store.add_member(4242, 0, "Olivia", "", ["home", "office"], T0 - 100)
    bob = await phone(world, "+999 66 1002", "Bob", "bob_home")
    await restrict_calls(bob)
    invitation = home.onboarding.invite(["office", "home"])
    offer = await receive_offer(home, bob, invitation)
    assert offer.text.startswith("👋 You are invited to Olivia's Linegram")
    assert "lines office and home" in offer.text

    await bob.press(offer, "Receive")
    assert home.sim_bot is not None
    await sees_setup_complete(bob, home.sim_bot, offer)
    verdict = await bob.newest(home.sim_bot, after=offer.id)
    assert verdict.text.startswith(
        "⚠️ Bob's privacy settings do not let Home Gateway (@home_gateway) call them"
    )
    assert "To fix it:\n1. Settings → Privacy and Security → Calls → Who can call me" in (
        verdict.text
    )
    assert "under Always allow" in verdict.text
    assert "\n2. Peer-to-peer: My Contacts or Everybody" in verdict.text

    member = home.store.member_by_telegram(bob.user.id)
    assert member is not None
    assert member.lines == ("office", "home") and not member.owner
    assert member.privacy == "restricted"
    assert home.store.member(olivia.id) == olivia  # the owner stays the owner


async def sees_setup_complete(p: Phone, bot: SimUser, offer: Any) -> Any:
    done = await p.changed(bot, offer)
    assert done.text.startswith("✅ Setup complete"), done.text
    return done


# -- refused ---------------------------------------------------------------------------


async def test_receive_after_five_minutes_is_refused(world: World, home: Home) -> None:
    home.store.add_member(4242, 0, "Olivia", "", ["home"], T0 - 100)
    alice = await phone(world, "+999 66 1001", "Alice", "alice_home")
    invitation = home.onboarding.invite(["home"])
    offer = await receive_offer(home, alice, invitation)

    home.advance(300)
    await alice.press(offer, "Receive")
    assert home.sim_bot is not None
    expired = await alice.changed(home.sim_bot, offer)
    assert expired.text == "⌛ This invitation has expired — ask Olivia for a new one."
    assert not expired.buttons
    assert home.store.member_by_telegram(alice.user.id) is None
    record = home.store.invitation(invitation.record.id)
    assert record is not None and record.used_at is None

    # Opening the link again gets the same answer, without a Receive button.
    again = await receive_offer(home, alice, invitation, after=offer.id)
    assert again.text == expired.text and not again.buttons
    assert home.linked == []


async def test_link_opened_late_offers_the_minutes_left(world: World, home: Home) -> None:
    alice = await phone(world, "+999 66 1001", "Alice", "alice_home")
    invitation = home.onboarding.invite(["home"])
    home.advance(250)
    offer = await receive_offer(home, alice, invitation)
    assert offer.text.endswith("Press Receive within 1 minute to set it up.")


async def test_second_member_cannot_use_the_same_invitation(world: World, home: Home) -> None:
    alice = await phone(world, "+999 66 1001", "Alice", "alice_home")
    bob = await phone(world, "+999 66 1002", "Bob", "bob_home")
    invitation = home.onboarding.invite(["home"])
    assert home.sim_bot is not None
    offer_a = await receive_offer(home, alice, invitation)
    offer_b = await receive_offer(home, bob, invitation)
    assert buttons(offer_b) == [["Receive"]]

    await alice.press(offer_a, "Receive")
    await sees_setup_complete(alice, home.sim_bot, offer_a)
    await bob.press(offer_b, "Receive")
    refused = await bob.changed(home.sim_bot, offer_b)
    assert refused.text == "This invitation has already been used — ask Alice if you need one."
    assert not refused.buttons
    assert [m.name for m in home.store.members()] == ["Alice"]

    late = await receive_offer(home, bob, invitation, after=offer_b.id)
    assert late.text == refused.text and not late.buttons
    assert [m.name for m in home.linked] == ["Alice"]


async def test_same_member_pressing_twice_links_once(world: World, home: Home) -> None:
    alice = await phone(world, "+999 66 1001", "Alice", "alice_home")
    invitation = home.onboarding.invite(["office"])
    assert home.sim_bot is not None
    first = await receive_offer(home, alice, invitation)
    second = await receive_offer(home, alice, invitation, after=first.id)
    assert buttons(second) == [["Receive"]]

    await alice.press(first, "Receive")
    await sees_setup_complete(alice, home.sim_bot, first)
    verdict = await alice.newest(home.sim_bot, after=second.id)
    home.advance(10)
    await alice.press(second, "Receive")
    refused = await alice.changed(home.sim_bot, second)
    assert refused.text == (
        "This invitation has already been used — by you: your setup is complete."
    )
    members = home.store.members()
    assert len(members) == 1 and members[0].lines == ("office",)
    assert members[0].linked_at == T0
    assert len(home.linked) == 1
    # Only the edit came after the verdict: no second "setup complete".
    assert (await alice.newest(home.sim_bot)).id == verdict.id


async def test_forged_token_is_not_valid(world: World, home: Home) -> None:
    home.store.add_member(4242, 0, "Olivia", "", ["home"], T0 - 100)
    alice = await phone(world, "+999 66 1001", "Alice", "alice_home")
    invitation = home.onboarding.invite(["home"])
    assert home.sim_bot is not None
    # A token of the right shape that was never issued, and the real one with one change.
    forged = invitation.link.replace(invitation.token, secrets.token_urlsafe(16))
    refused = await receive_offer(home, alice, replace_link(invitation, forged))
    assert refused.text == "This invitation is not valid — ask Olivia for a new one."
    assert not refused.buttons
    last = "A" if invitation.token[-1] != "A" else "B"
    near = invitation.link[:-1] + last
    again = await receive_offer(home, alice, replace_link(invitation, near), after=refused.id)
    assert again.text == refused.text
    assert home.store.member_by_telegram(alice.user.id) is None
    record = home.store.invitation(invitation.record.id)
    assert record is not None and record.used_at is None


def replace_link(invitation: Invitation, link: str) -> Invitation:
    return Invitation(invitation.record, invitation.token, link)


async def test_revoked_invitation_is_refused(world: World, home: Home) -> None:
    alice = await phone(world, "+999 66 1001", "Alice", "alice_home")
    invitation = home.onboarding.invite(["home"], "for Alice")
    offer = await receive_offer(home, alice, invitation)
    assert home.onboarding.revoke(invitation.record.id)
    assert not home.onboarding.revoke(invitation.record.id)

    await alice.press(offer, "Receive")
    assert home.sim_bot is not None
    refused = await alice.changed(home.sim_bot, offer)
    assert refused.text == (
        "This invitation is not valid any more (it was withdrawn)"
        " — ask the person who invited you for a new one."
    )
    assert home.store.members() == []
    record = home.store.invitation(invitation.record.id)
    assert record is not None and record.revoked_at == T0 and record.used_at is None


async def test_events_from_the_gateway_account_are_ignored(world: World, home: Home) -> None:
    invitation = home.onboarding.invite(["home"])
    me = home.account.user
    assert me is not None
    gateway = Member(me.user_id, 0, me.name, me.username)
    assert not await home.onboarding.handle(StartCommand(gateway, invitation.token, via="bot"))
    assert not await home.onboarding.handle(StartCommand(gateway, invitation.token, via="gateway"))
    assert home.store.members() == []
    record = home.store.invitation(invitation.record.id)
    assert record is not None and record.used_at is None


async def never_checked(member: Member) -> Any:
    raise AssertionError("no privacy check while inviting")


def test_invitations_name_configured_lines(tmp_path: Any) -> None:
    store = Store.open(tmp_path / "linegram.db")
    try:
        onboarding = Onboarding(
            store,
            None,  # type: ignore[arg-type]  # invite() never talks to Telegram
            bot_username=lambda: "",
            gateway_username=lambda: "home_gateway",
            lines=lambda: LINES,
            check_privacy=never_checked,
            clock=lambda: T0,
        )
        with pytest.raises(ValueError, match="lines: no line called 'attic'"):
            onboarding.invite(["home", "attic"])
        with pytest.raises(ValueError, match="lines must name at least one line"):
            onboarding.invite([])
        assert store.invitations(include_finished=True) == []
        invitation = onboarding.invite(["home"])
        assert invitation.link == ""  # no bot: the member sends the command instead
        assert invitation.command == f"/start {invitation.token}"
    finally:
        store.close()


# -- without a bot ------------------------------------------------------------------------


async def test_without_a_bot_start_to_the_gateway_links(
    world: World, home_without_bot: Home
) -> None:
    home = home_without_bot
    alice = await phone(world, "+999 66 1001", "Alice", "alice_home")
    bob = await phone(world, "+999 66 1002", "Bob", "bob_home")
    await restrict_calls(bob)
    invitation = home.onboarding.invite(["home"])
    assert invitation.link == ""

    home.advance(120)
    await alice.write(world.gateway_user, invitation.command)
    reply = await alice.newest(world.gateway_user)
    assert reply.text.startswith("✅ Setup complete: you are a member of Home Gateway's Linegram")
    assert "\n\n📞 Home Gateway (@home_gateway) can call Alice." in reply.text
    assert not reply.buttons
    member = home.store.member_by_telegram(alice.user.id)
    assert member is not None and member.owner and member.lines == ("home",)
    assert member.access_hash == stored_hash(home, alice)
    assert member.privacy == "ok"
    started = await eventually(
        lambda: [(e.via, h) for e, h in home.handled if isinstance(e, StartCommand)]
    )
    assert started == [("gateway", True)]

    # The same command again, from Bob: used.  A new one after 5 minutes: expired.
    await bob.write(world.gateway_user, invitation.command)
    used = await bob.newest(world.gateway_user)
    assert used.text == "This invitation has already been used — ask Alice if you need one."
    late = home.onboarding.invite(["office"])
    home.advance(300)
    await bob.write(world.gateway_user, late.command)
    expired = await bob.newest(world.gateway_user, after=used.id)
    assert expired.text == "⌛ This invitation has expired — ask Alice for a new one."
    assert home.store.member_by_telegram(bob.user.id) is None

    fresh = home.onboarding.invite(["office"])
    await bob.write(world.gateway_user, fresh.command)
    linked = await bob.newest(world.gateway_user, after=expired.id)
    assert linked.text.startswith("✅ Setup complete: you are a member of Alice's Linegram")
    assert "⚠️ Bob's privacy settings do not let" in linked.text
    bob_record = home.store.member_by_telegram(bob.user.id)
    assert bob_record is not None and bob_record.privacy == "restricted"
    assert not bob_record.owner and bob_record.lines == ("office",)


# -- a member the gateway account cannot find ------------------------------------------------


async def test_member_without_username_writes_first_then_gets_the_verdict(
    world: World, home: Home
) -> None:
    dave = await phone(world, "+999 66 1004", "Dave", None)
    invitation = home.onboarding.invite(["home"])
    offer = await receive_offer(home, dave, invitation)
    await dave.press(offer, "Receive")
    assert home.sim_bot is not None
    await sees_setup_complete(dave, home.sim_bot, offer)
    step = await dave.newest(home.sim_bot, after=offer.id)
    assert step.text == (
        "One more step: write any message to @home_gateway so it can call you."
        " I will check your call settings then."
    )
    member = home.store.member_by_telegram(dave.user.id)
    assert member is not None and member.access_hash == 0
    assert member.privacy == "unknown_member"

    home.advance(3600)  # writing first has no deadline
    await dave.write(world.gateway_user, "hello")
    verdict = await dave.newest(world.gateway_user)
    assert verdict.text.startswith("📞 Home Gateway (@home_gateway) can call Dave.")
    member = home.store.member_by_telegram(dave.user.id)
    assert member is not None and member.access_hash == stored_hash(home, dave)
    assert (member.privacy, member.privacy_checked_at) == ("ok", T0 + 3600)
    # The text still goes on to the call layer.
    texts = await eventually(
        lambda: [(e.text, h) for e, h in home.handled if isinstance(e, TextFromMember)]
    )
    assert texts == [("hello", False)]

    # Told once: the next message is not answered again.
    await dave.write(world.gateway_user, "thanks")
    await eventually(lambda: sum(isinstance(e, TextFromMember) for e, _ in home.handled) == 2)
    await asyncio.sleep(0.2)
    assert (await dave.newest(world.gateway_user)).id == verdict.id


# -- URL buttons ------------------------------------------------------------------------------

LINK = OutgoingMessage(
    "Open the chat", [[Button("Open @home_gateway", "", url="https://t.me/home_gateway")]]
)


def test_plain_text_lists_links() -> None:
    rows = (
        (Button("Hang up", "h:1", command="/hangup"),),
        (Button("Open @home_gateway", "", url="https://t.me/home_gateway"),),
    )
    assert render_plain("Call", rows) == (
        "Call\n\nReply with:\n/hangup — Hang up\n\nOpen @home_gateway: https://t.me/home_gateway"
    )


async def test_url_buttons_via_the_bot_and_as_text(world: World, home: Home) -> None:
    alice = await phone(world, "+999 66 1001", "Alice", "alice_home")
    member = Member(alice.user.id, stored_hash(home, alice), "Alice")
    ref = await home.messenger.send(member, LINK)
    assert ref.via_bot
    sent = await alice.newest(world.gateway_user)
    assert sent.via_bot_id is not None and buttons(sent) == [["Open @home_gateway"]]
    assert sent.buttons[0][0].url == "https://t.me/home_gateway"
    edited = await home.messenger.edit(ref, text="Still the chat")
    assert edited.keyboard == ref.keyboard
    after = await alice.changed(world.gateway_user, sent)
    assert after.buttons[0][0].url == "https://t.me/home_gateway"

    assert home.bot is not None
    await home.bot.stop()
    await home.messenger.send(member, LINK)
    text = await alice.newest(world.gateway_user, after=sent.id)
    assert text.text == "Open the chat\n\nOpen @home_gateway: https://t.me/home_gateway"
    assert not text.buttons
