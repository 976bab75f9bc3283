"""Users, contacts, blocks and privacy: users.*, contacts.* and account.get/setPrivacy.

What one account learns about another always goes through `State.user_view`,
so access hashes, contact names and phone visibility are those of the viewer.
"""

from __future__ import annotations

from typing import Any

from telethon.tl import functions, types

from simcloud.cloud import Caller, Cloud, RpcError, bad_request, handler
from simcloud.state import SimUser, State, normalize_phone, state_of
from simcloud.updates import tl_date, updates_of


@handler(functions.users.GetUsersRequest)
async def get_users(
    cloud: Cloud, caller: Caller, req: functions.users.GetUsersRequest
) -> list[types.User]:
    state = state_of(cloud)
    me = state.require_user(caller)
    found: list[types.User] = []
    for ref in req.id:
        try:
            found.append(state.user_view(state.resolve_user(me, ref), me))
        except RpcError:
            # Telegram leaves out users it cannot show (unknown id, wrong access_hash).
            continue
    return found


def _bot_info(bot: SimUser) -> types.BotInfo:
    return types.BotInfo(user_id=bot.id, description="", commands=list(bot.bot_commands))


@handler(functions.users.GetFullUserRequest)
async def get_full_user(
    cloud: Cloud, caller: Caller, req: functions.users.GetFullUserRequest
) -> types.users.UserFull:
    state = state_of(cloud)
    me = state.require_user(caller)
    target = state.resolve_user(me, req.id)
    # Calls are possible with people other than oneself; "private" means the
    # target's privacy (or block) refuses this caller.
    callable_ = not (target.bot or target.service or target is me or me.bot)
    private = callable_ and not state.may_call(me, target)
    full = types.UserFull(
        id=target.id,
        settings=types.PeerSettings(),
        notify_settings=types.PeerNotifySettings(),
        common_chats_count=0,
        blocked=state.is_blocked(me, target) or None,
        phone_calls_available=callable_ or None,
        phone_calls_private=private or None,
        video_calls_available=callable_ or None,
        about=None,
        bot_info=_bot_info(target) if target.bot else None,
    )
    return types.users.UserFull(full_user=full, chats=[], users=[state.user_view(target, me)])


@handler(functions.contacts.ResolveUsernameRequest)
async def resolve_username(
    cloud: Cloud, caller: Caller, req: functions.contacts.ResolveUsernameRequest
) -> types.contacts.ResolvedPeer:
    state = state_of(cloud)
    me = state.require_user(caller)
    name = req.username.lstrip("@")
    if not (4 <= len(name) <= 32) or not name.replace("_", "").isalnum():
        raise bad_request("USERNAME_INVALID")
    target = state.by_username(name)
    if target is None:
        raise bad_request("USERNAME_NOT_OCCUPIED")
    state.meet(me, target)
    return types.contacts.ResolvedPeer(
        peer=types.PeerUser(target.id), chats=[], users=[state.user_view(target, me)]
    )


@handler(functions.contacts.ImportContactsRequest)
async def import_contacts(
    cloud: Cloud, caller: Caller, req: functions.contacts.ImportContactsRequest
) -> types.contacts.ImportedContacts:
    state = state_of(cloud)
    me = state.require_person(caller)
    imported: list[types.ImportedContact] = []
    users: list[SimUser] = []
    for contact in req.contacts:
        target = state.by_phone(contact.phone) if normalize_phone(contact.phone) else None
        if target is None or target is me:
            continue  # not on Telegram: Telegram would offer an invite instead
        state.add_contact(me, target, contact.first_name, contact.last_name)
        imported.append(types.ImportedContact(user_id=target.id, client_id=contact.client_id))
        users.append(target)
    return types.contacts.ImportedContacts(
        imported=imported, popular_invites=[], retry_contacts=[], users=state.views(me, users)
    )


@handler(functions.contacts.AddContactRequest)
async def add_contact(
    cloud: Cloud, caller: Caller, req: functions.contacts.AddContactRequest
) -> types.Updates:
    state = state_of(cloud)
    me = state.require_person(caller)
    target = state.resolve_user(me, req.id, "CONTACT_ID_INVALID")
    if target is me:
        raise bad_request("CONTACT_ID_INVALID")
    state.add_contact(me, target, req.first_name, req.last_name)
    return types.Updates(
        updates=[], users=[state.user_view(target, me)], chats=[], date=None, seq=0
    )


@handler(functions.contacts.DeleteContactsRequest)
async def delete_contacts(
    cloud: Cloud, caller: Caller, req: functions.contacts.DeleteContactsRequest
) -> types.Updates:
    state = state_of(cloud)
    me = state.require_person(caller)
    gone = [state.resolve_user(me, ref, "CONTACT_ID_INVALID") for ref in req.id]
    for target in gone:
        state.remove_contact(me, target)
    return types.Updates(updates=[], users=state.views(me, gone), chats=[], date=None, seq=0)


@handler(functions.contacts.GetContactsRequest)
async def get_contacts(
    cloud: Cloud, caller: Caller, req: functions.contacts.GetContactsRequest
) -> types.contacts.Contacts:
    state = state_of(cloud)
    me = state.require_person(caller)
    targets = [state.user(uid) for uid in me.contacts]
    return types.contacts.Contacts(
        contacts=[types.Contact(user_id=t.id, mutual=me.id in t.contacts) for t in targets],
        saved_count=0,
        users=state.views(me, targets),
    )


def _block(cloud: Cloud, caller: Caller, ref: Any, blocked: bool) -> bool:
    state = state_of(cloud)
    me = state.require_user(caller)
    target = state.resolve_user(me, ref, "CONTACT_ID_INVALID")
    if target is me:
        raise bad_request("CONTACT_ID_INVALID")
    if blocked:
        state.block(me, target)
    else:
        state.unblock(me, target)
    updates_of(cloud).push(
        me.id,
        types.UpdatePeerBlocked(peer_id=types.PeerUser(target.id), blocked=blocked or None),
        users=[target],
        exclude_session=caller,
    )
    return True


@handler(functions.contacts.BlockRequest)
async def block(cloud: Cloud, caller: Caller, req: functions.contacts.BlockRequest) -> bool:
    return _block(cloud, caller, req.id, True)


@handler(functions.contacts.UnblockRequest)
async def unblock(cloud: Cloud, caller: Caller, req: functions.contacts.UnblockRequest) -> bool:
    return _block(cloud, caller, req.id, False)


@handler(functions.contacts.GetBlockedRequest)
async def get_blocked(
    cloud: Cloud, caller: Caller, req: functions.contacts.GetBlockedRequest
) -> types.contacts.Blocked:
    state = state_of(cloud)
    me = state.require_user(caller)
    targets = [state.user(uid) for uid in sorted(me.blocked)][req.offset : req.offset + req.limit]
    now = tl_date(state.now())
    return types.contacts.Blocked(
        blocked=[types.PeerBlocked(peer_id=types.PeerUser(t.id), date=now) for t in targets],
        chats=[],
        users=state.views(me, targets),
    )


def _privacy_rules(state: State, me: SimUser, key: Any) -> types.account.PrivacyRules:
    rules = state.privacy_rules(me, key)
    named = [state.user(uid) for r in rules for uid in sorted(r.users) if uid in state.users]
    return types.account.PrivacyRules(
        rules=[r.to_tl() for r in rules], chats=[], users=state.views(me, named)
    )


@handler(functions.account.GetPrivacyRequest)
async def get_privacy(
    cloud: Cloud, caller: Caller, req: functions.account.GetPrivacyRequest
) -> types.account.PrivacyRules:
    state = state_of(cloud)
    return _privacy_rules(state, state.require_person(caller), req.key)


@handler(functions.account.SetPrivacyRequest)
async def set_privacy(
    cloud: Cloud, caller: Caller, req: functions.account.SetPrivacyRequest
) -> types.account.PrivacyRules:
    state = state_of(cloud)
    me = state.require_person(caller)
    state.set_privacy(me, req.key, state.rules_from_input(me, req.rules))
    answer = _privacy_rules(state, me, req.key)
    key_type = getattr(types, "PrivacyKey" + type(req.key).__name__.removeprefix("InputPrivacyKey"))
    updates_of(cloud).push(
        me.id,
        types.UpdatePrivacy(key=key_type(), rules=answer.rules),
        exclude_session=caller,
    )
    return answer


@handler(functions.account.UpdateStatusRequest)
async def update_status(
    cloud: Cloud, caller: Caller, req: functions.account.UpdateStatusRequest
) -> bool:
    state_of(cloud).require_user(caller)
    return True
