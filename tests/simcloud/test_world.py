"""The simulated cloud's world, driven by calling `Cloud.invoke` directly (no network):
help, sign-in (codes, 2FA, bot tokens), users, contacts, privacy and blocks."""

from __future__ import annotations

from typing import Any

import pytest
from telethon import password as telethon_password
from telethon.tl import functions, types

from simcloud.cloud import Cloud
from simcloud.state import SERVICE_USER_ID, PrivacyRule, SimUser
from tests.simcloud import world_support as ws
from tests.simcloud.world_support import (
    API_HASH,
    API_ID,
    Clock,
    Device,
    input_peer,
    input_user,
    rpc_error,
    signed_in,
)

clock, cloud, alice, bob = ws.clock, ws.cloud, ws.alice, ws.bob


# -- help -------------------------------------------------------------------------


async def test_config_advertises_the_server_as_the_only_dc(cloud: Cloud) -> None:
    vars(cloud)["server_address"] = ("127.0.0.1", 40404)
    config = await Device(cloud)(functions.help.GetConfigRequest())
    assert config.this_dc == 2
    assert [(o.id, o.ip_address, o.port) for o in config.dc_options] == [(2, "127.0.0.1", 40404)]
    assert config.message_length_max == 4096
    nearest = await Device(cloud)(functions.help.GetNearestDcRequest())
    assert (nearest.this_dc, nearest.nearest_dc) == (2, 2)


# -- signing in -------------------------------------------------------------------


def send_code(phone: str, api_id: int = API_ID, api_hash: str = API_HASH) -> Any:
    return functions.auth.SendCodeRequest(phone, api_id, api_hash, types.CodeSettings())


async def test_send_code_checks_the_app_and_the_phone(cloud: Cloud, alice: SimUser) -> None:
    device = Device(cloud)
    assert (await rpc_error(device, send_code("+999661001", api_hash="0" * 32))).message == (
        "API_ID_INVALID"
    )
    assert (await rpc_error(device, send_code("+99966abc"))).message == "PHONE_NUMBER_INVALID"
    sent = await device(send_code("+999661001"))
    assert isinstance(sent.type, types.auth.SentCodeTypeSms)  # no other device to send it to
    assert sent.type.length == len(cloud.state.last_code("+999 66 1001")) == 5


async def test_sign_in_with_the_code(cloud: Cloud, alice: SimUser) -> None:
    device = Device(cloud)
    assert (await rpc_error(device, functions.updates.GetStateRequest())).code == 401
    sent = await device(send_code("+999661001"))
    code = cloud.state.last_code("+999661001")
    auth = await device(functions.auth.SignInRequest("999661001", sent.phone_code_hash, code))
    assert auth.user.id == alice.id and auth.user.is_self and auth.user.phone == "999661001"
    state = await device(functions.updates.GetStateRequest())
    assert state.pts >= 1
    me = await device(functions.users.GetUsersRequest([types.InputUserSelf()]))
    assert [u.id for u in me] == [alice.id]
    # The code is used up.
    err = await rpc_error(
        Device(cloud), functions.auth.SignInRequest("999661001", sent.phone_code_hash, code)
    )
    assert err.message == "PHONE_CODE_EXPIRED"


@pytest.mark.parametrize(
    ("phone", "code_hash", "code", "error"),
    [
        ("999661001", "", "12345", "PHONE_CODE_HASH_EMPTY"),
        ("999661001", "HASH", "", "PHONE_CODE_EMPTY"),
        ("999661001", "HASH", "WRONG", "PHONE_CODE_INVALID"),
        ("999661001", "unknown", "12345", "PHONE_CODE_EXPIRED"),
        ("99966100x", "HASH", "12345", "PHONE_NUMBER_INVALID"),
    ],
)
async def test_sign_in_errors(
    cloud: Cloud, alice: SimUser, phone: str, code_hash: str, code: str, error: str
) -> None:
    device = Device(cloud)
    sent = await device(send_code("+999661001"))
    if code_hash == "HASH":
        code_hash = sent.phone_code_hash
    if code == "WRONG":
        code = str((int(cloud.state.last_code("999661001")) + 1) % 100000).zfill(5)
    err = await rpc_error(device, functions.auth.SignInRequest(phone, code_hash, code))
    assert (err.code, err.message) == (400, error)


async def test_code_expires(cloud: Cloud, alice: SimUser, clock: Clock) -> None:
    cloud.state.code_lifetime = 60
    device = Device(cloud)
    sent = await device(send_code("+999661001"))
    code = cloud.state.last_code("999661001")
    clock.now += 61
    err = await rpc_error(
        device, functions.auth.SignInRequest("999661001", sent.phone_code_hash, code)
    )
    assert err.message == "PHONE_CODE_EXPIRED"


async def test_unregistered_phone_needs_sign_up(cloud: Cloud) -> None:
    device = Device(cloud)
    sent = await device(send_code("+99966 5555"))
    code = cloud.state.last_code("+999665555")
    result = await device(functions.auth.SignInRequest("999665555", sent.phone_code_hash, code))
    assert isinstance(result, types.auth.AuthorizationSignUpRequired)


async def test_code_goes_to_other_devices_from_telegram(cloud: Cloud, alice: SimUser) -> None:
    phone = signed_in(cloud, alice)
    sent = await Device(cloud)(send_code("+999661001"))
    assert isinstance(sent.type, types.auth.SentCodeTypeApp)
    [message] = [u.message for u in phone.updates(types.UpdateNewMessage)]
    code = cloud.state.last_code("999661001")
    assert message.peer_id == types.PeerUser(SERVICE_USER_ID) and not message.out
    assert f"Login code: {code}." in message.message
    users = {u.id: u for u in phone.sink.pushed[0].users}
    assert users[SERVICE_USER_ID].first_name == "Telegram"


async def test_two_step_verification(cloud: Cloud) -> None:
    carol = cloud.state.add_user(
        phone="+999661003", first_name="Carol", password="s3cret", hint="pet"
    )
    device = Device(cloud)
    sent = await device(send_code("+999661003"))
    code = cloud.state.last_code("999661003")
    err = await rpc_error(
        device, functions.auth.SignInRequest("999661003", sent.phone_code_hash, code)
    )
    assert (err.code, err.message) == (401, "SESSION_PASSWORD_NEEDED")
    assert (await rpc_error(device, functions.updates.GetStateRequest())).code == 401

    pwd = await device(functions.account.GetPasswordRequest())
    assert pwd.has_password and pwd.hint == "pet"
    wrong = telethon_password.compute_check(pwd, "guess")
    err = await rpc_error(device, functions.auth.CheckPasswordRequest(wrong))
    assert err.message == "PASSWORD_HASH_INVALID"
    # Each srp_id answers once.
    err = await rpc_error(device, functions.auth.CheckPasswordRequest(wrong))
    assert err.message == "SRP_ID_INVALID"

    pwd = await device(functions.account.GetPasswordRequest())
    right = telethon_password.compute_check(pwd, "s3cret")
    auth = await device(functions.auth.CheckPasswordRequest(right))
    assert auth.user.id == carol.id
    assert (await device(functions.updates.GetStateRequest())).pts >= 1


async def test_bot_token_sign_in(cloud: Cloud, alice: SimUser) -> None:
    bot, token = cloud.state.add_bot("linegram_bot", owner=alice)
    device = Device(cloud)

    def login(t: str) -> Any:
        return functions.auth.ImportBotAuthorizationRequest(0, API_ID, API_HASH, t)

    assert (await rpc_error(device, login(f"{bot.id}:nope"))).message == "ACCESS_TOKEN_INVALID"
    assert (await rpc_error(device, login("garbage"))).message == "ACCESS_TOKEN_INVALID"
    auth = await device(login(token))
    assert auth.user.id == bot.id and auth.user.bot
    new_token = cloud.state.revoke_bot_token(bot)
    assert (await rpc_error(device, functions.updates.GetStateRequest())).code == 401
    assert (await rpc_error(device, login(token))).message == "ACCESS_TOKEN_EXPIRED"
    assert (await device(login(new_token))).user.id == bot.id


async def test_log_out_unbinds_the_key(cloud: Cloud, alice: SimUser) -> None:
    device = signed_in(cloud, alice)
    assert isinstance(await device(functions.auth.LogOutRequest()), types.auth.LoggedOut)
    err = await rpc_error(device, functions.users.GetUsersRequest([types.InputUserSelf()]))
    assert (err.code, err.message) == (401, "AUTH_KEY_UNREGISTERED")


# -- users, contacts, privacy -----------------------------------------------------


async def test_access_hashes_are_per_viewer(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    [seen] = await a(functions.users.GetUsersRequest([input_user(cloud, alice, bob)]))
    assert seen.id == bob.id and seen.first_name == "Bob" and seen.phone is None
    # Alice's hash for Bob means nothing to Bob, and a made-up hash nothing to anyone.
    assert (
        await b(functions.users.GetUsersRequest([types.InputUser(bob.id, seen.access_hash)])) == []
    )
    assert await a(functions.users.GetUsersRequest([types.InputUser(bob.id, 0)])) == []
    err = await rpc_error(a, functions.users.GetFullUserRequest(types.InputUser(bob.id, 1)))
    assert err.message == "USER_ID_INVALID"


async def test_resolve_username(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    b = signed_in(cloud, bob)
    resolved = await b(functions.contacts.ResolveUsernameRequest("Alice_H"))
    assert resolved.peer == types.PeerUser(alice.id)
    assert resolved.users[0].access_hash == cloud.state.access_hash(bob, alice)
    err = await rpc_error(b, functions.contacts.ResolveUsernameRequest("nobody_here"))
    assert err.message == "USERNAME_NOT_OCCUPIED"
    err = await rpc_error(b, functions.contacts.ResolveUsernameRequest("a!"))
    assert err.message == "USERNAME_INVALID"


async def test_contacts_import_and_mutual(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    contact = types.InputPhoneContact(
        client_id=7, phone="+99966 1002", first_name="Bobby", last_name="B"
    )
    stranger = types.InputPhoneContact(
        client_id=8, phone="+999660000", first_name="X", last_name=""
    )
    imported = await a(functions.contacts.ImportContactsRequest([contact, stranger]))
    assert [(i.user_id, i.client_id) for i in imported.imported] == [(bob.id, 7)]
    assert imported.users[0].first_name == "Bobby" and imported.users[0].phone == "999661002"
    contacts = await a(functions.contacts.GetContactsRequest(0))
    assert [(c.user_id, c.mutual) for c in contacts.contacts] == [(bob.id, False)]
    await b(
        functions.contacts.ImportContactsRequest(
            [types.InputPhoneContact(client_id=1, phone="999661001", first_name="A", last_name="")]
        )
    )
    contacts = await a(functions.contacts.GetContactsRequest(0))
    assert [(c.user_id, c.mutual) for c in contacts.contacts] == [(bob.id, True)]


async def test_bots_may_not_list_contacts(cloud: Cloud, alice: SimUser) -> None:
    bot, _ = cloud.state.add_bot("house_bot")
    err = await rpc_error(signed_in(cloud, bot), functions.contacts.GetContactsRequest(0))
    assert err.message == "BOT_METHOD_INVALID"


PHONE_CALL = types.InputPrivacyKeyPhoneCall()


@pytest.mark.parametrize(
    ("rules", "bob_is_contact", "may_call"),
    [
        ([types.InputPrivacyValueAllowAll()], False, True),
        ([types.InputPrivacyValueDisallowAll()], False, False),
        (
            [types.InputPrivacyValueAllowContacts(), types.InputPrivacyValueDisallowAll()],
            False,
            False,
        ),
        (
            [types.InputPrivacyValueAllowContacts(), types.InputPrivacyValueDisallowAll()],
            True,
            True,
        ),
        (["allow_bob", types.InputPrivacyValueDisallowAll()], False, True),
        (["disallow_bob", types.InputPrivacyValueAllowAll()], True, False),
        # Exceptions win whatever their position.
        ([types.InputPrivacyValueAllowAll(), "disallow_bob"], False, False),
    ],
)
async def test_call_privacy(
    cloud: Cloud,
    alice: SimUser,
    bob: SimUser,
    rules: list[Any],
    bob_is_contact: bool,
    may_call: bool,
) -> None:
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    if bob_is_contact:
        cloud.state.add_contact(alice, bob)
    bob_ref = input_user(cloud, alice, bob)
    tl_rules = [
        types.InputPrivacyValueAllowUsers([bob_ref])
        if r == "allow_bob"
        else types.InputPrivacyValueDisallowUsers([bob_ref])
        if r == "disallow_bob"
        else r
        for r in rules
    ]
    answer = await a(functions.account.SetPrivacyRequest(PHONE_CALL, tl_rules))
    assert len(answer.rules) == len(rules)
    assert (await a(functions.account.GetPrivacyRequest(PHONE_CALL))).rules == answer.rules
    assert cloud.state.may_call(bob, alice) is may_call
    full = await b(functions.users.GetFullUserRequest(input_user(cloud, bob, alice)))
    assert full.full_user.phone_calls_available
    assert bool(full.full_user.phone_calls_private) is (not may_call)


async def test_privacy_change_reaches_other_devices(cloud: Cloud, alice: SimUser) -> None:
    a1, a2 = signed_in(cloud, alice), signed_in(cloud, alice)
    await a1(
        functions.account.SetPrivacyRequest(
            types.InputPrivacyKeyPhoneP2P(), [types.InputPrivacyValueDisallowAll()]
        )
    )
    [update] = a2.updates(types.UpdatePrivacy)
    assert isinstance(update.key, types.PrivacyKeyPhoneP2P)
    assert update.rules == [types.PrivacyValueDisallowAll()]
    assert a1.updates() == []


async def test_default_p2p_is_contacts_only(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    assert not cloud.state.may_p2p(alice, bob)
    cloud.state.add_contact(alice, bob)
    cloud.state.add_contact(bob, alice)
    assert cloud.state.may_p2p(alice, bob)
    cloud.state.set_privacy(bob, "PhoneP2P", [PrivacyRule("disallow_all")])
    assert not cloud.state.may_p2p(alice, bob)


async def test_block_and_unblock(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    await a(functions.contacts.BlockRequest(input_peer(cloud, alice, bob)))
    assert cloud.state.is_blocked(alice, bob) and not cloud.state.is_blocked(bob, alice)
    assert not cloud.state.may_call(bob, alice)
    full = await a(functions.users.GetFullUserRequest(input_user(cloud, alice, bob)))
    assert full.full_user.blocked
    blocked = await a(functions.contacts.GetBlockedRequest(offset=0, limit=10))
    assert [p.peer_id.user_id for p in blocked.blocked] == [bob.id]
    full = await b(functions.users.GetFullUserRequest(input_user(cloud, bob, alice)))
    assert full.full_user.phone_calls_private
    await a(functions.contacts.UnblockRequest(input_peer(cloud, alice, bob)))
    assert cloud.state.may_call(bob, alice)


async def test_resend_keeps_the_hash_with_a_new_code(cloud: Cloud, alice: SimUser) -> None:
    device = Device(cloud)
    with pytest.raises(KeyError):
        cloud.state.last_code("+999661001")
    sent = await device(send_code("+999661001"))
    first = cloud.state.last_code("+999661001")
    again = await device(functions.auth.ResendCodeRequest("999661001", sent.phone_code_hash))
    assert again.phone_code_hash == sent.phone_code_hash
    second = cloud.state.last_code("+999661001")
    if second != first:  # a fresh random code; equal by chance one time in 10^5
        err = await rpc_error(
            device, functions.auth.SignInRequest("999661001", sent.phone_code_hash, first)
        )
        assert err.message == "PHONE_CODE_INVALID"
    auth = await device(functions.auth.SignInRequest("999661001", sent.phone_code_hash, second))
    assert auth.user.id == alice.id
