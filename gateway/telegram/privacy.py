"""May the gateway call this member?  Telegram's answer, and what the member should change.

``users.getFullUser`` tells the gateway account, per member
(https://core.telegram.org/constructor/userFull):

* ``phone_calls_available``: the member can take calls at all (not a bot,
  not deleted, an app with calls);
* ``phone_calls_private``: their privacy settings (or a block of the
  gateway account) refuse calls from the gateway account; Telegram's apps
  say "X's privacy settings do not allow you to call them";
* ``blocked``: the gateway account has blocked the member.

Peer-to-peer permission is not reported (it shows only in a call's
``p2p_allowed``), so the guidance always names it: calls through Telegram's
relays fail more often (ntgcalls#20).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from telethon import errors as tg
from telethon.tl import functions

from gateway.telegram.account import TelegramAccount
from gateway.telegram.errors import wrap
from gateway.telegram.messages import Member

__all__ = ["PrivacyVerdict", "Reason", "check_call_privacy", "unblock"]

log = logging.getLogger(__name__)

Reason = Literal["ok", "restricted", "blocked", "unavailable", "unknown_member"]


@dataclass(frozen=True)
class PrivacyVerdict:
    """Whether the gateway can call a member, why not, and the steps to fix it."""

    callable: bool
    reason: Reason
    message: str  # one sentence for the web UI or a message to the member
    guidance: tuple[str, ...] = ()  # steps, in order, for the member (or the owner)

    @property
    def guidance_text(self) -> str:
        """The steps as one sentence joined with "; and "."""
        return "; and ".join(self.guidance)


def _gateway_name(account: TelegramAccount) -> str:
    user = account.user
    if user is None:
        return "the gateway account"
    return f"{user.name} (@{user.username})" if user.username else user.name


def _calls_steps(gateway: str) -> tuple[str, ...]:
    return (
        (
            f"Settings → Privacy and Security → Calls → Who can call me: add {gateway} under"
            " Always allow (or choose Everybody / My Contacts and add the gateway account to your"
            " contacts)"
        ),
        "Peer-to-peer: My Contacts or Everybody",
    )


async def check_call_privacy(account: TelegramAccount, member: Member) -> PrivacyVerdict:
    """Ask Telegram whether the gateway account may call *member*.

    **Raises** :class:`~gateway.telegram.errors.TelegramError` when Telegram
    cannot be asked (not signed in, network, flood wait).
    """
    who = member.name or f"user {member.user_id}"
    gateway = _gateway_name(account)
    client = account.client
    try:
        full = await client(
            functions.users.GetFullUserRequest(
                account.input_user(member.user_id, member.access_hash)
            )
        )
    except (tg.UserIdInvalidError, tg.PeerIdInvalidError):
        return PrivacyVerdict(
            False,
            "unknown_member",
            f"The gateway account does not know {who}: they should send it a message once.",
            (f"Send any message to {gateway} in Telegram",),
        )
    except Exception as exc:
        account.note_error(exc)
        raise wrap(exc) from exc
    info = full.full_user
    if info.blocked:
        return PrivacyVerdict(
            False,
            "blocked",
            f"The gateway account has blocked {who}.",
            (
                (
                    f"Unblock {who} in the gateway account: Settings → Privacy and Security →"
                    " Blocked Users"
                ),
            ),
        )
    if not info.phone_calls_available:
        return PrivacyVerdict(
            False,
            "unavailable",
            f"Telegram says {who} cannot take calls (a bot, a deleted account, or an app"
            " without calls).",
            ("Use an up-to-date Telegram app on the phone",),
        )
    steps = _calls_steps(gateway)
    if info.phone_calls_private:
        return PrivacyVerdict(
            False,
            "restricted",
            f"{who}'s privacy settings do not let {gateway} call them"
            " (if they blocked it, they should unblock it too).",
            steps,
        )
    return PrivacyVerdict(
        True,
        "ok",
        f"{gateway} can call {who}.",
        (f"For the most reliable calls: Settings → Privacy and Security → Calls → {steps[1]}",),
    )


async def unblock(account: TelegramAccount, member: Member) -> None:
    """Unblock *member* in the gateway account (the fix for a ``"blocked"`` verdict)."""
    try:
        await account.client(
            functions.contacts.UnblockRequest(
                account.input_peer(member.user_id, member.access_hash)
            )
        )
    except Exception as exc:
        account.note_error(exc)
        raise wrap(exc) from exc
