"""Outgoing calls: a member sends a number, the gateway dials it through a line.

The member's method decides the order: **invite** (default) answers "call me
now" and dials once the member calls the gateway account; **callback** calls
the member and dials once they answer.  With several lines the member picks
one (buttons) unless a default is set.  A member who calls the gateway with
nothing pending gets a dial pad.  Every number goes through the line's
:class:`~gateway.calls.dialplan.DialPlan` first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from gateway.calls import texts
from gateway.calls.conversation import Conversation, new_key
from gateway.calls.dialplan import Dialled, NumberRefused, looks_like_number
from gateway.calls.switchboard import Switchboard
from gateway.store import MemberRecord
from gateway.telegram.call import CallState as TgState
from gateway.telegram.call import TelegramCall
from gateway.telegram.messages import Button, MessageRef, OutgoingMessage

log = logging.getLogger(__name__)

INVITE_WINDOW = 60.0  # seconds a member has to call the gateway after "call me now"


@dataclass(eq=False)
class Request:
    """A number a member wants to call, waiting for a line choice or for their call."""

    key: str
    member: MemberRecord
    text: str
    line: str = ""
    dialled: Dialled | None = None
    message: MessageRef | None = None
    expires_at: float = 0.0
    timer: asyncio.TimerHandle | None = None


class OutgoingCalls(Switchboard):
    def on_member_call(self, tg: TelegramCall) -> None:
        member = self._member(tg.user_id)
        if member is None:
            log.info("call from non-member %s refused", tg.user_id)
            self.spawn(tg.reject())
            return
        if tg.user_id in self.r.conversations:
            self.spawn(tg.reject(busy=True))
            return
        self.spawn(self._answer_member(member, tg))

    async def _answer_member(self, member: MemberRecord, tg: TelegramCall) -> None:
        request = self.r.requests.pop(member.telegram_id, None)
        if request is not None and request.timer is not None:
            request.timer.cancel()
        await tg.answer()
        if tg.state is not TgState.ACTIVE:
            return
        conv = self._new_conversation(member, tg)
        if request is not None and request.dialled is not None:
            conv.message = await self.replace(
                member, request.message, OutgoingMessage(f"Dialling {request.dialled.display}…")
            )
            await self._dial_first(conv, request.line, request.dialled)
        else:
            conv.message = await self.send(member, texts.dial_pad(conv.key, ""))

    async def _new_request(self, member: MemberRecord, text: str, line: str = "") -> None:
        lines = self._lines_of(member)
        if not lines:
            await self.reply(member, "You are not allowed to call out on any line.")
            return
        if not looks_like_number(text):
            await self.reply(
                member,
                "Send me a phone number to call it (for example +44 20 7946 0018)."
                " /softphone shows your settings.",
            )
            return
        old = self.r.requests.pop(member.telegram_id, None)
        if old is not None:
            await self._cancel_request(old, "Replaced by a new number.")
        request = Request(new_key(), member, text)
        self.r.keys[request.key] = request
        if line and line in lines:
            await self._request_on_line(request, line)
        elif member.default_line in lines:
            await self._request_on_line(request, member.default_line)
        elif len(lines) == 1:
            await self._request_on_line(request, lines[0])
        else:
            request.message = await self.send(member, texts.pick_line(request.key, text, lines))

    async def _request_on_line(self, request: Request, line: str) -> None:
        member = request.member
        if line not in self._lines_of(member):
            return
        try:
            dialled = self.plans[line].normalise(request.text)
        except NumberRefused as exc:
            self.r.keys.pop(request.key, None)
            await self.replace(member, request.message, OutgoingMessage(f"🚫 {exc.reason}"))
            return
        request.line, request.dialled = line, dialled
        fresh = self.store.member(member.id) or member
        if fresh.outgoing_method == "callback":
            self.r.keys.pop(request.key, None)
            request.message = await self.replace(
                member, request.message, OutgoingMessage(f"Calling you to dial {dialled.display}…")
            )
            await self._callback(request)
            return
        request.expires_at = time.monotonic() + INVITE_WINDOW
        self.r.requests[member.telegram_id] = request
        request.timer = asyncio.get_running_loop().call_later(
            INVITE_WINDOW, lambda: self.spawn(self._expire(request))
        )
        request.message = await self.replace(
            member,
            request.message,
            OutgoingMessage(
                f"📞 Call me now to dial {dialled.display} on {line}"
                f" (within {int(INVITE_WINDOW)} seconds).",
                [[Button("Cancel", f"{texts.CANCEL}:{request.key}", "/cancel")]],
            ),
        )

    async def _expire(self, request: Request) -> None:
        if self.r.requests.get(request.member.telegram_id) is request:
            del self.r.requests[request.member.telegram_id]
            await self._cancel_request(request, "Expired: you did not call in time.")

    async def _cancel_request(self, request: Request, why: str) -> None:
        if request.timer is not None:
            request.timer.cancel()
        self.r.keys.pop(request.key, None)
        shown = request.dialled.display if request.dialled else request.text
        await self.replace(request.member, request.message, OutgoingMessage(f"{shown}: {why}"))

    async def _callback(self, request: Request) -> None:
        member = request.member
        assert request.dialled is not None
        if member.telegram_id in self.r.conversations:
            await self.reply(member, "You are already in a call.")
            return
        tg = await self.ring_member(member)
        if tg is None:
            await self.reply(
                member, "I cannot call you: check /softphone and your privacy settings."
            )
            return
        if not await tg.wait_active():
            outcome = tg.outcome.value if tg.outcome else "failed"
            await self.replace(
                member,
                request.message,
                OutgoingMessage(f"Call back for {request.dialled.display}: {outcome}."),
            )
            return
        conv = self._new_conversation(member, tg)
        conv.message = request.message
        await self._dial_first(conv, request.line, request.dialled)

    async def _dial_typed(self, conv: Conversation) -> None:
        member = conv.member
        lines = self._lines_of(member)
        if not conv.typed or conv.active is not None:
            return
        line = member.default_line if member.default_line in lines else (lines[0] if lines else "")
        if not line:
            await self.reply(member, "You are not allowed to call out on any line.")
            return
        try:
            dialled = self.plans[line].normalise(conv.typed)
        except NumberRefused as exc:
            conv.typed = ""
            await self.reply(member, f"🚫 {exc.reason}")
            return
        await self._dial_first(conv, line, dialled)

    async def _press_digit(self, conv: Conversation, digit: str) -> None:
        if not digit or digit not in "0123456789*#":
            return
        party = conv.active
        if party is None:
            conv.typed += digit
            conv.message = await self.replace(
                conv.member, conv.message, texts.dial_pad(conv.key, conv.typed)
            )
        elif party.up:
            await party.sip.send_dtmf(digit)
