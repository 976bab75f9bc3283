"""Linking a household member through a one-time invitation (as SIP.TG does).

1. The owner creates an invitation (:meth:`Onboarding.invite`): a random token,
   of which only the sha256 is stored, valid for 5 minutes and once.  With a
   companion bot it is the link ``https://t.me/<bot>?start=<token>``.
2. The member opens the link: the bot gets ``/start <token>``
   (:class:`StartCommand` via ``"bot"``) and answers in its own chat with an
   invitation and a **Receive** button (data ``inv:<token>``, so a press still
   finds its invitation after a restart).
3. **Receive** pressed before the invitation expires, and only once: the
   member is linked to the invitation's lines (``Store.use_invitation`` is the
   atomic "only once"), the message becomes "Setup complete" with a button
   that opens the chat with the gateway account, and a second message gives
   the privacy check's verdict and what to change.

The gateway account can call a member only with its own access hash for
them.  If it has not met the member yet, their @username is resolved through
the gateway account; a member without one is asked to write any message to
the gateway account, and gets the verdict when they do
(:class:`TextFromMember` / ``/start`` via ``"gateway"`` from a linked member
whose stored access hash is 0).

Without a bot the invitation has no link: the member sends ``/start <token>``
to the gateway account (:class:`StartCommand` via ``"gateway"``), which links
at once (the same 5-minute and once-only rules) and answers "Setup complete"
with the verdict.  A bot's own pressing of buttons, or messages from the
gateway account itself, are ignored.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from gateway.store import InvitationRecord, MemberRecord, OutgoingMethod, Store
from gateway.telegram.errors import describe
from gateway.telegram.messages import (
    Button,
    ButtonPress,
    InboundEvent,
    Member,
    MessageRef,
    Messenger,
    OutgoingMessage,
    StartCommand,
    TextFromMember,
)
from gateway.telegram.privacy import PrivacyVerdict

__all__ = ["RECEIVE", "VALIDITY", "Invitation", "Onboarding", "token_hash", "verdict_text"]

log = logging.getLogger(__name__)

VALIDITY = 300.0  # seconds an invitation can be received
TOKEN_BYTES = 16  # secrets.token_urlsafe(16): 22 characters, fits a deep link's start=
RECEIVE = "inv"  # button data "inv:<token>"

Refusal = Literal["unknown", "revoked", "used", "used_by_you", "expired"]


def token_hash(token: str) -> str:
    """What the store keeps of a token: its sha256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Invitation:
    """A new invitation; *token* and *link* are shown once and never stored."""

    record: InvitationRecord
    token: str = field(repr=False)
    # https://t.me/<bot>?start=<token>; "" without a bot (then: "/start <token>"
    # to the gateway account, see *command*).
    link: str = field(repr=False)

    @property
    def command(self) -> str:
        """What the member sends to the gateway account when there is no bot."""
        return f"/start {self.token}"


class Onboarding:
    """Invitations, and the member's side of receiving one.

    Feed it every inbound event (:meth:`handle`) before the call layer; it
    returns True for the events it answered.  *lines* are the configured line
    names (an invitation must name some of them); *household* the name shown
    in "You are invited to <household>'s Linegram" (default: the owner's name,
    else the gateway account's).
    """

    def __init__(
        self,
        store: Store,
        messenger: Messenger,
        *,
        bot_username: Callable[[], str],
        gateway_username: Callable[[], str],
        lines: Callable[[], Sequence[str]],
        check_privacy: Callable[[Member], Awaitable[PrivacyVerdict]],
        clock: Callable[[], float] = time.time,
        validity: float = VALIDITY,
        household: Callable[[], str] | None = None,
        outgoing_method: Callable[[], OutgoingMethod] = lambda: "invite",
    ) -> None:
        if not validity > 0:
            raise ValueError(f"validity must be a positive number of seconds, got {validity!r}")
        self.store = store
        self.messenger = messenger
        self._bot_username = bot_username
        self._gateway_username = gateway_username
        self._lines = lines
        self._check_privacy = check_privacy
        self.clock = clock
        self._validity = validity
        self._household = household
        # calls.default_outgoing_method, read at each link (the settings may be reloaded).
        self._outgoing_method = outgoing_method
        self.on_linked: list[Callable[[MemberRecord], None]] = []

    # -- the owner's side ------------------------------------------------------------

    def invite(self, lines: Sequence[str], note: str = "") -> Invitation:
        """A new invitation to *lines* (configured line names, at least one).

        **Raises** ``ValueError`` naming ``lines`` or ``note``.
        """
        if isinstance(lines, str):
            raise ValueError(f"lines must be a list of line names, got the string {lines!r}")
        wanted = tuple(dict.fromkeys(lines))
        if not wanted:
            raise ValueError("lines must name at least one line")
        configured = tuple(self._lines())
        unknown = [line for line in wanted if line not in configured]
        if unknown:
            raise ValueError(
                f"lines: no line called {', '.join(map(repr, unknown))}"
                f" (configured: {', '.join(configured) or 'none'})"
            )
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        record = self.store.create_invitation(
            token_hash(token), wanted, note, now, now + self._validity
        )
        bot = self._bot_username()
        link = f"https://t.me/{bot}?start={token}" if bot else ""
        log.info("onboarding: invitation %d created for %s", record.id, ", ".join(wanted))
        return Invitation(record, token, link)

    def revoke(self, invitation_id: int) -> bool:
        """Withdraw an unused invitation; False if it was used, revoked or never existed."""
        done = self.store.revoke_invitation(invitation_id, self.clock())
        if done:
            log.info("onboarding: invitation %d revoked", invitation_id)
        return done

    # -- the member's side -----------------------------------------------------------

    async def handle(self, event: InboundEvent) -> bool:
        """Answer invitations, Receive presses and a waiting member's first message.

        True when the event was an invitation's (consumed); False otherwise,
        also for a member's first text to the gateway account, which is
        checked here and still goes on to the call layer.
        """
        if isinstance(event, (StartCommand, TextFromMember, ButtonPress)):
            if self._is_gateway(event.member):
                return False
        if isinstance(event, ButtonPress):
            action, sep, token = event.data.partition(":")
            if action != RECEIVE or not sep:
                return False
            await self._receive(event.member, token, event.ref)
            return True
        if isinstance(event, StartCommand) and event.payload:
            if event.via == "bot":
                await self._offer(event.member, event.payload)
            else:
                await self._link_directly(event.member, event.payload)
            return True
        if isinstance(event, StartCommand) and event.via == "gateway" and event.member.access_hash:
            return await self._first_message(event.member)  # a bare /start: answered here
        if isinstance(event, TextFromMember) and event.member.access_hash:
            await self._first_message(event.member)
        return False

    def _is_gateway(self, member: Member) -> bool:
        me = self.messenger.account.user
        return me is not None and member.user_id == me.user_id

    # Step 2: the deep link opened in the bot's chat.
    async def _offer(self, member: Member, token: str) -> None:
        invitation, refusal = self._lookup(token, member)
        if invitation is None or refusal is not None:
            await self._say_in_bot(member, self._refusal_text(refusal or "unknown"))
            return
        text = (
            f"👋 You are invited to {self._household_name()}'s Linegram: calls to the"
            f" household's {self._lines_text(invitation.lines)} will ring you here in Telegram,"
            " and you can call out through it.\n\n"
            f"Press Receive within {self._minutes_left(invitation)} to set it up."
        )
        keyboard = [[Button("Receive", f"{RECEIVE}:{token}")]]
        await self._say_in_bot(member, text, keyboard)

    # Step 3: Receive pressed.
    async def _receive(self, member: Member, token: str, ref: MessageRef | None) -> None:
        member = await self.messenger.introduce(member)
        household = self._household_name()  # as the offer said, before they joined it
        linked, refusal = self._link(member, token)
        if linked is None:
            await self._show(member, ref, self._refusal_text(refusal or "unknown"))
            return
        gateway = self._gateway_username()
        text = (
            f"✅ Setup complete: you are a member of {household}'s Linegram"
            f" ({self._lines_text(linked.lines)}).\n\n"
            f"Calls to the household will come from {self._gateway_handle()}; to call out,"
            f" send a phone number to {self._gateway_handle()}."
        )
        keyboard = (
            [[Button(f"Open @{gateway}", "", url=f"https://t.me/{gateway}")]] if gateway else []
        )
        await self._show(member, ref, text, keyboard)
        await self._say_in_bot(member, await self._verdict(linked, member))
        self._announce(linked)

    # Without a bot: "/start <token>" to the gateway account links at once.
    async def _link_directly(self, member: Member, token: str) -> None:
        member = await self.messenger.introduce(member)
        household = self._household_name()  # as the offer said, before they joined it
        linked, refusal = self._link(member, token)
        if linked is None:
            await self._say_in_gateway(member, self._refusal_text(refusal or "unknown"))
            return
        text = (
            f"✅ Setup complete: you are a member of {household}'s Linegram"
            f" ({self._lines_text(linked.lines)}). Calls to the household will come from this"
            " account; to call out, send a phone number here."
        )
        verdict = await self._verdict(linked, member)
        await self._say_in_gateway(member, f"{text}\n\n{verdict}")
        self._announce(linked)

    # A linked member the gateway account had not met writes to it for the first time.
    async def _first_message(self, member: Member) -> bool:
        record = self.store.member_by_telegram(member.user_id)
        if record is None or record.access_hash:
            return False
        record = self.store.update_member(
            record.id,
            access_hash=member.access_hash,
            name=member.name or record.name,
            username=member.username or record.username,
        )
        log.info("onboarding: member %d wrote to the gateway account", record.id)
        await self._say_in_gateway(member, await self._verdict(record, member))
        return True

    # -- the steps' parts --------------------------------------------------------------

    def _lookup(self, token: str, member: Member) -> tuple[InvitationRecord | None, Refusal | None]:
        """The invitation of *token* and why it cannot be received now (None: it can)."""
        invitation = self.store.invitation_by_hash(token_hash(token)) if token else None
        if invitation is None:
            log.info("onboarding: unknown invitation token from user %d", member.user_id)
            return None, "unknown"
        if invitation.revoked_at is not None:
            return invitation, "revoked"
        if invitation.used_at is not None:
            mine = self.store.member_by_telegram(member.user_id)
            by_you = mine is not None and mine.id == invitation.used_by
            return invitation, "used_by_you" if by_you else "used"
        if self.clock() >= invitation.expires_at:
            return invitation, "expired"
        return invitation, None

    def _link(self, member: Member, token: str) -> tuple[MemberRecord | None, Refusal | None]:
        """Link *member* with the invitation of *token*, once.  No awaits inside:
        nothing else runs between the check and the writes."""
        invitation, refusal = self._lookup(token, member)
        if invitation is None or refusal is not None:
            return None, refusal or "unknown"
        now = self.clock()
        before = self.store.member_by_telegram(member.user_id)
        record = self.store.add_member(
            member.user_id,
            member.access_hash,
            member.name,
            member.username,
            invitation.lines,
            now,
        )
        if not self.store.use_invitation(invitation.id, record.id, now):
            # Used, revoked or expired by another writer since the check: undo.
            if before is None:
                self.store.remove_member(record.id)
            else:
                self.store.update_member(record.id, lines=before.lines)
            _, why = self._lookup(token, member)
            return None, why or "used"
        method = self._outgoing_method()
        if before is None and record.outgoing_method != method:
            # A new member starts with the configured method; one linked again keeps theirs.
            record = self.store.update_member(record.id, outgoing_method=method)
        log.info(
            "onboarding: invitation %d received by member %d (%s)",
            invitation.id,
            record.id,
            ", ".join(invitation.lines),
        )
        return record, None

    async def _verdict(self, record: MemberRecord, member: Member) -> str:
        """Check whether the gateway may call the member, store it, and say it."""
        now = self.clock()
        if not member.access_hash:
            self.store.update_member(record.id, privacy="unknown_member", privacy_checked_at=now)
            return (
                f"One more step: write any message to {self._gateway_handle()} so it can call"
                " you. I will check your call settings then."
            )
        try:
            verdict = await self._check_privacy(member)
        except Exception as exc:
            log.warning(
                "onboarding: privacy check for member %d failed: %s", record.id, describe(exc)
            )
            return (
                "Your call settings could not be checked just now; the owner can check them"
                " again from the gateway's web page."
            )
        self.store.update_member(record.id, privacy=verdict.reason, privacy_checked_at=now)
        return verdict_text(verdict)

    def _announce(self, record: MemberRecord) -> None:
        for listener in list(self.on_linked):
            try:
                listener(record)
            except Exception:
                log.exception("onboarding: on_linked listener failed")

    # -- words -------------------------------------------------------------------------

    def _refusal_text(self, refusal: Refusal) -> str:
        ask = f"ask {self._owner_name()} for a new one"
        if refusal == "expired":
            return f"⌛ This invitation has expired — {ask}."
        if refusal == "used_by_you":
            return "This invitation has already been used — by you: your setup is complete."
        if refusal == "used":
            return (
                f"This invitation has already been used — ask {self._owner_name()} if you need one."
            )
        if refusal == "revoked":
            return f"This invitation is not valid any more (it was withdrawn) — {ask}."
        return f"This invitation is not valid — {ask}."

    def _owner_name(self) -> str:
        owner = next((m for m in self.store.members() if m.owner), None)
        return owner.name if owner is not None and owner.name else "the person who invited you"

    def _household_name(self) -> str:
        if self._household is not None and (name := self._household()):
            return name
        owner = next((m for m in self.store.members() if m.owner), None)
        if owner is not None and owner.name:
            return owner.name
        me = self.messenger.account.user
        return me.name if me is not None else "a household"

    def _gateway_handle(self) -> str:
        gateway = self._gateway_username()
        if gateway:
            return f"@{gateway}"
        me = self.messenger.account.user
        return me.name if me is not None else "the gateway account"

    @staticmethod
    def _lines_text(lines: Sequence[str]) -> str:
        names = list(lines)
        if len(names) == 1:
            return f"line {names[0]}"
        return f"lines {', '.join(names[:-1])} and {names[-1]}"

    def _minutes_left(self, invitation: InvitationRecord) -> str:
        minutes = max(1, math.ceil((invitation.expires_at - self.clock()) / 60))
        return "1 minute" if minutes == 1 else f"{minutes} minutes"

    # -- sending (failures are logged: the member can open the link again) ------------

    async def _say_in_bot(
        self, member: Member, text: str, keyboard: Sequence[Sequence[Button]] = ()
    ) -> None:
        try:
            await self.messenger.send_from_bot(member, OutgoingMessage(text, keyboard))
        except Exception as exc:
            log.warning("onboarding: cannot write in the bot's chat: %s", describe(exc))

    async def _say_in_gateway(self, member: Member, text: str) -> None:
        try:
            await self.messenger.send(member, OutgoingMessage(text))
        except Exception as exc:
            log.warning("onboarding: cannot write to the member: %s", describe(exc))

    async def _show(
        self,
        member: Member,
        ref: MessageRef | None,
        text: str,
        keyboard: Sequence[Sequence[Button]] = (),
    ) -> None:
        """Turn the Receive message into *text*; a new message when it is not known
        any more (the gateway restarted since it was sent)."""
        if ref is None:
            await self._say_in_bot(member, text, keyboard)
            return
        try:
            await self.messenger.edit(ref, text=text, keyboard=keyboard)
        except Exception as exc:
            log.warning("onboarding: cannot edit the invitation message: %s", describe(exc))
            await self._say_in_bot(member, text, keyboard)


def verdict_text(verdict: PrivacyVerdict) -> str:
    """The privacy verdict as a message to the member."""
    if verdict.callable:
        steps = "".join(f"\n• {step}" for step in verdict.guidance)
        return f"📞 {verdict.message}{steps}"
    steps = "".join(f"\n{n}. {step}" for n, step in enumerate(verdict.guidance, 1))
    return f"⚠️ {verdict.message}\n\nTo fix it:{steps}" if steps else f"⚠️ {verdict.message}"
