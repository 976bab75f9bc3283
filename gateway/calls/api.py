"""The control-API methods that need the running gateway (docs/control-api.md).

The store-only methods live in :func:`gateway.control.store_methods`; these
add what only the gateway process knows: line and Telegram status, calls in
progress, invitations (their token exists only at creation), the privacy
check of a member.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.admin_system import system_methods
from gateway.admin_telegram import telegram_methods
from gateway.control import ControlError, Handler, Params, store_methods
from gateway.store import NotFound, Store
from gateway.telegram.messages import Member
from gateway.telegram.privacy import check_call_privacy

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.calls.onboarding import Onboarding


def invitation_methods(
    store: Store, onboarding: Onboarding, lines: Callable[[], list[str]]
) -> dict[str, Handler]:
    """invitations.create and invitations.revoke (the token exists only in the first answer)."""

    async def invitations_create(params: dict[str, Any]) -> Any:
        p = Params(params)
        chosen = p.optional_lines("lines")
        note = p.optional_str("note") or ""
        p.done()
        known = lines()
        if chosen is None:
            chosen = known
        unknown = [line for line in chosen if line not in known]
        if unknown:
            raise ValueError(f"lines: no line named {unknown[0]!r}")
        invitation = onboarding.invite(chosen, note)
        return {
            "id": invitation.record.id,
            "token": invitation.token,
            "link": invitation.link,
            "command": invitation.command,
            "expires_at": invitation.record.expires_at,
            "lines": list(invitation.record.lines),
        }

    async def invitations_revoke(params: dict[str, Any]) -> Any:
        p = Params(params)
        invitation_id = p.integer("id")
        p.done()
        if store.invitation(invitation_id) is None:
            raise NotFound(f"no invitation with id {invitation_id}")
        return {"revoked": onboarding.revoke(invitation_id)}

    return {"invitations.create": invitations_create, "invitations.revoke": invitations_revoke}


def gateway_methods(gateway: Gateway) -> dict[str, Handler]:
    store = gateway.store
    methods = store_methods(store)
    methods.update(invitation_methods(store, gateway.onboarding, lambda: list(gateway.lines)))

    async def status(params: dict[str, Any]) -> Any:
        Params(params).done()
        return {
            "lines": [gateway.line_status(name) for name in gateway.lines],
            "telegram": gateway.telegram.status(),
            "calls": gateway.manager.active_calls(),
            "members": len(store.members()),
            "missed": store.missed_waiting(),  # missed calls not yet seen (the missed LED)
        }

    async def missed_clear(params: dict[str, Any]) -> Any:
        Params(params).done()
        store.mark_missed_seen(time.time())
        return {"missed": store.missed_waiting()}

    async def calls_active(params: dict[str, Any]) -> Any:
        Params(params).done()
        return gateway.manager.active_calls()

    async def members_check_privacy(params: dict[str, Any]) -> Any:
        p = Params(params)
        member_id = p.integer("id")
        p.done()
        record = store.member(member_id)
        if record is None:
            raise NotFound(f"no member with id {member_id}")
        if not gateway.telegram.account.status.ready:
            raise ControlError("unavailable", "The Telegram gateway account is not signed in.")
        member = Member(record.telegram_id, record.access_hash, record.name, record.username)
        verdict = await check_call_privacy(gateway.telegram.account, member)
        store.update_member(member_id, privacy=verdict.reason, privacy_checked_at=time.time())
        return {
            "callable": verdict.callable,
            "reason": verdict.reason,
            "message": verdict.message,
            "guidance": list(verdict.guidance),
        }

    methods.update(
        {
            "status": status,
            "calls.active": calls_active,
            "members.check_privacy": members_check_privacy,
            "missed.clear": missed_clear,
        }
    )
    methods.update(system_methods(gateway))
    methods.update(telegram_methods(gateway))
    return methods
