"""simcloud.phone handlers called directly: the call flow, its errors, knobs and faults.

No network and no ntgcalls: requests go straight to `Cloud.invoke` with fake
sessions, and pushed updates are recorded instead of sent. The DH values are real
(Telegram's prime, g = 3), so the cloud's g_a check is exercised for real.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from telethon.tl import functions, types

import simcloud.phone as phone_module
from simcloud.cloud import Caller, Cloud, RpcError
from simcloud.mtproto import dh
from simcloud.phone import CallState, Phone
from simcloud.state import PrivacyRule, SimUser, State
from simcloud.updates import UpdateHub

P = dh.PRIME
VERSIONS = ["8.0.0", "9.0.0", "12.0.0", "13.0.0"]


@dataclass
class FakeSink:
    auth_key_id: int
    session_id: int = 1

    def push(self, updates: Any) -> None:  # the recording hub below captures instead
        pass

    def close(self) -> None:
        pass


@dataclass
class Pushed:
    user_id: int
    update: Any
    users: list[Any]
    exclude_key: int | None


class RecordingUpdates(UpdateHub):
    """An UpdateHub whose push records what would be pushed instead of sending it."""

    def __init__(self, cloud: Cloud, state: State) -> None:
        super().__init__(cloud, state)
        self.pushed: list[Pushed] = []

    def push(
        self,
        user_id: int,
        update: Any,
        users: Sequence[Any] = (),
        exclude_session: Any = None,
    ) -> None:
        key = exclude_session.auth_key_id if exclude_session is not None else None
        self.pushed.append(Pushed(user_id, update, list(users or []), key))

    def take(self, party: Party) -> list[Any]:
        """The updates that reached `party`'s device since the last take."""
        mine = [p for p in self.pushed if p.user_id == party.id]
        self.pushed = [p for p in self.pushed if p.user_id != party.id]
        return [p.update for p in mine if p.exclude_key != party.caller.auth_key_id]


@dataclass
class World:
    cloud: Cloud
    state: State
    updates: RecordingUpdates
    phone: Phone


@dataclass
class Party:
    """A signed-in user on one auth key, plus its DH secret for the current call."""

    user: SimUser
    caller: Caller
    secret: int = 0

    @property
    def id(self) -> int:
        return self.user.id


@pytest.fixture
def world() -> World:
    cloud = Cloud()
    state = State()
    updates = RecordingUpdates(cloud, state)
    cloud.state = state
    cloud.updates = updates  # type: ignore[assignment]  # a recording stand-in
    phone = phone_module.attach(cloud)
    yield World(cloud, state, updates, phone)
    phone.close()


_next_key = iter(range(1000, 10**6))


def sign_in(w: World, user: SimUser) -> Party:
    key = next(_next_key)
    w.state.authorize(key, user)
    return Party(user, Caller(key, FakeSink(key)))


@pytest.fixture
def alice(world: World) -> Party:
    return sign_in(world, world.state.add_user("+999 66 1001", "Alice", username="alice_h"))


@pytest.fixture
def bob(world: World) -> Party:
    return sign_in(world, world.state.add_user("+999 66 1002", "Bob", username="bob_h"))


def protocol(versions: list[str] | None = None, **kw: Any) -> types.PhoneCallProtocol:
    args: dict[str, Any] = dict(
        min_layer=92,
        max_layer=92,
        library_versions=VERSIONS if versions is None else versions,
        udp_p2p=True,
        udp_reflector=True,
    )
    args.update(kw)
    return types.PhoneCallProtocol(**args)


def input_user(w: World, viewer: Party, target: Party) -> types.InputUser:
    return types.InputUser(target.id, w.state.access_hash(viewer.user, target.user))


def input_call(call: Any) -> types.InputPhoneCall:
    return types.InputPhoneCall(id=call.id, access_hash=call.access_hash)


def dh_public(secret: int) -> bytes:
    return pow(dh.G, secret, P).to_bytes(256, "big")


async def request(
    w: World, a: Party, b: Party, versions: list[str] | None = None
) -> types.PhoneCallWaiting:
    a.secret = secrets.randbits(2048) % (P - 2) + 1
    g_a_hash = hashlib.sha256(dh_public(a.secret)).digest()
    result = await w.cloud.invoke(
        a.caller,
        functions.phone.RequestCallRequest(
            user_id=input_user(w, a, b),
            g_a_hash=g_a_hash,
            protocol=protocol(versions),
            random_id=secrets.randbits(31),
        ),
    )
    assert isinstance(result, types.phone.PhoneCall)
    return result.phone_call


async def accept(w: World, b: Party, call: Any, versions: list[str] | None = None) -> Any:
    b.secret = secrets.randbits(2048) % (P - 2) + 1
    return await w.cloud.invoke(
        b.caller,
        functions.phone.AcceptCallRequest(
            peer=input_call(call), g_b=dh_public(b.secret), protocol=protocol(versions)
        ),
    )


def fingerprint(key: int) -> int:
    digest = hashlib.sha1(key.to_bytes(256, "big")).digest()
    return int.from_bytes(digest[-8:], "little", signed=True)


async def confirm(w: World, a: Party, b: Party, call: Any, g_a: bytes | None = None) -> Any:
    key = pow(pow(dh.G, b.secret, P), a.secret, P)
    return await w.cloud.invoke(
        a.caller,
        functions.phone.ConfirmCallRequest(
            peer=input_call(call),
            g_a=g_a if g_a is not None else dh_public(a.secret),
            key_fingerprint=fingerprint(key),
            protocol=protocol(),
        ),
    )


async def discard(w: World, who: Party, call: Any, reason: Any, duration: int = 0) -> Any:
    return await w.cloud.invoke(
        who.caller,
        functions.phone.DiscardCallRequest(
            peer=input_call(call), duration=duration, reason=reason, connection_id=0
        ),
    )


async def rpc_error(coro: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        await coro
    return info.value


def make_contacts(w: World, a: Party, b: Party) -> None:
    w.state.add_contact(a.user, b.user)
    w.state.add_contact(b.user, a.user)


# --- DH and call config ----------------------------------------------------------


async def test_dh_config_is_telegrams_prime_with_fresh_random(world: World, alice: Party) -> None:
    req = functions.messages.GetDhConfigRequest(version=0, random_length=256)
    first = await world.cloud.invoke(alice.caller, req)
    second = await world.cloud.invoke(alice.caller, req)
    assert isinstance(first, types.messages.DhConfig)
    assert first.g == 3 and first.p == dh.PRIME_BYTES and len(first.p) == 256
    assert len(first.random) == 256 and first.random != second.random
    # p is a safe prime: p and (p - 1) / 2 pass a Fermat test to a few bases
    for base in (2, 3, 5, 7):
        assert pow(base, P - 1, P) == 1
        assert pow(base, (P - 1) // 2 - 1, (P - 1) // 2) == 1

    cached = await world.cloud.invoke(
        alice.caller, functions.messages.GetDhConfigRequest(version=first.version, random_length=32)
    )
    assert isinstance(cached, types.messages.DhConfigNotModified) and len(cached.random) == 32
    err = await rpc_error(
        world.cloud.invoke(
            alice.caller, functions.messages.GetDhConfigRequest(version=0, random_length=257)
        )
    )
    assert err.message == "RANDOM_LENGTH_INVALID"


async def test_call_config_is_json(world: World, alice: Party) -> None:
    data = await world.cloud.invoke(alice.caller, functions.phone.GetCallConfigRequest())
    assert isinstance(data, types.DataJSON)
    assert json.loads(data.data)["audio_frame_size"] == 60


# --- the happy path ----------------------------------------------------------------


async def test_answered_call_flow(world: World, alice: Party, bob: Party) -> None:
    make_contacts(world, alice, bob)
    waiting = await request(world, alice, bob)
    assert isinstance(waiting, types.PhoneCallWaiting) and waiting.receive_date is None
    assert (waiting.admin_id, waiting.participant_id) == (alice.id, bob.id)

    assert {u.id for u in world.updates.pushed[0].users} == {alice.id, bob.id}
    (incoming,) = world.updates.take(bob)
    requested = incoming.phone_call
    assert isinstance(requested, types.PhoneCallRequested)
    assert requested.id == waiting.id and requested.access_hash == waiting.access_hash
    assert requested.g_a_hash == hashlib.sha256(dh_public(alice.secret)).digest()
    assert requested.protocol.library_versions == VERSIONS
    assert world.updates.take(alice) == []

    assert await world.cloud.invoke(
        bob.caller, functions.phone.ReceivedCallRequest(peer=input_call(requested))
    )
    (ringing,) = world.updates.take(alice)
    assert isinstance(ringing.phone_call, types.PhoneCallWaiting)
    assert ringing.phone_call.receive_date is not None
    call = world.phone.calls[waiting.id]
    assert call.state is CallState.RINGING

    accepted_result = await accept(world, bob, requested)
    assert isinstance(accepted_result.phone_call, types.PhoneCallWaiting)
    (accepted,) = world.updates.take(alice)
    assert isinstance(accepted.phone_call, types.PhoneCallAccepted)
    assert accepted.phone_call.g_b == dh_public(bob.secret)
    assert accepted.phone_call.protocol.library_versions == ["13.0.0"]

    confirmed = await confirm(world, alice, bob, waiting)
    mine = confirmed.phone_call
    assert isinstance(mine, types.PhoneCall)
    assert mine.g_a_or_b == dh_public(bob.secret)  # the caller gets g_b back
    (theirs,) = world.updates.take(bob)
    theirs = theirs.phone_call
    assert isinstance(theirs, types.PhoneCall)
    assert theirs.g_a_or_b == dh_public(alice.secret)  # the callee gets g_a
    assert theirs.key_fingerprint == mine.key_fingerprint
    key = pow(pow(dh.G, alice.secret, P), bob.secret, P)
    assert theirs.key_fingerprint == fingerprint(key)  # what bob's side would check
    for view in (mine, theirs):
        assert view.connections == [] and view.p2p_allowed
        assert view.protocol.library_versions == ["13.0.0"]
    assert {u.id for u in confirmed.users} == {alice.id, bob.id}
    assert call.state is CallState.ACTIVE and call.version == "13.0.0"

    for sender, receiver, payload in ((alice, bob, b"x" * 300), (bob, alice, b"y" * 120)):
        ok = await world.cloud.invoke(
            sender.caller,
            functions.phone.SendSignalingDataRequest(peer=input_call(waiting), data=payload),
        )
        assert ok is True
        (sig,) = world.updates.take(receiver)
        assert isinstance(sig, types.UpdatePhoneCallSignalingData)
        assert sig.phone_call_id == waiting.id and sig.data == payload
    assert call.signalling[alice.id].bytes == 300 and call.signalling[bob.id].messages == 1

    result = await discard(world, alice, waiting, types.PhoneCallDiscardReasonHangup(), 3)
    assert isinstance(result, types.Updates)
    assert isinstance(result.updates[0].phone_call, types.PhoneCallDiscarded)
    (ended,) = world.updates.take(bob)
    ended = ended.phone_call
    assert isinstance(ended, types.PhoneCallDiscarded)
    assert isinstance(ended.reason, types.PhoneCallDiscardReasonHangup)
    assert ended.need_rating
    # alice's device learns it from its result; her other devices get an update
    (to_alice,) = [p for p in world.updates.pushed if p.user_id == alice.id]
    assert to_alice.exclude_key == alice.caller.auth_key_id
    assert world.updates.take(alice) == []
    assert call.state is CallState.DISCARDED
    assert (call.reason, call.discarded_by, call.client_duration) == ("hangup", alice.id, 3)
    assert [e for _, e in call.events][:4] == [
        "requested",
        "received",
        "accepted version 13.0.0",
        "confirmed",
    ]

    # a second discard (both hung up at once) is quiet; rating and debug are accepted
    again = await discard(world, bob, waiting, types.PhoneCallDiscardReasonHangup())
    assert isinstance(again.updates[0].phone_call, types.PhoneCallDiscarded)
    assert world.updates.take(alice) == []
    await world.cloud.invoke(
        bob.caller,
        functions.phone.SetCallRatingRequest(peer=input_call(waiting), rating=5, comment=""),
    )
    assert await world.cloud.invoke(
        bob.caller,
        functions.phone.SaveCallDebugRequest(
            peer=input_call(waiting), debug=types.DataJSON('{"ok": 1}')
        ),
    )
    assert call.rating == 5 and call.debug == '{"ok": 1}'


@pytest.mark.parametrize("version", VERSIONS)
async def test_force_version(world: World, alice: Party, bob: Party, version: str) -> None:
    world.phone.force_version = version
    waiting = await request(world, alice, bob)
    await accept(world, bob, waiting)
    confirmed = await confirm(world, alice, bob, waiting)
    assert confirmed.phone_call.protocol.library_versions == [version]
    (update,) = [u for u in world.updates.take(bob) if isinstance(u.phone_call, types.PhoneCall)]
    assert update.phone_call.protocol.library_versions == [version]
    assert world.phone.calls[waiting.id].version == version


async def test_without_force_the_newest_common_version_wins(
    world: World, alice: Party, bob: Party
) -> None:
    waiting = await request(world, alice, bob, ["8.0.0", "9.0.0", "12.0.0"])
    await accept(world, bob, waiting, ["9.0.0", "12.0.0", "13.0.0"])
    assert world.phone.calls[waiting.id].version == "12.0.0"


# --- errors as Telegram raises them -------------------------------------------------


async def test_privacy_restricted(world: World, alice: Party, bob: Party) -> None:
    world.state.set_privacy(bob.user, "PhoneCall", [PrivacyRule("disallow_all")])
    err = await rpc_error(request(world, alice, bob))
    assert (err.code, err.message) == (403, "USER_PRIVACY_RESTRICTED")
    world.state.set_privacy(bob.user, "PhoneCall", [PrivacyRule("allow_users", {alice.id})])
    await request(world, alice, bob)


async def test_blocked(world: World, alice: Party, bob: Party) -> None:
    world.state.block(bob.user, alice.user)
    err = await rpc_error(request(world, alice, bob))
    assert (err.code, err.message) == (403, "USER_IS_BLOCKED")
    assert world.updates.pushed == [] and world.phone.calls == {}


async def test_bad_callees(world: World, alice: Party, bob: Party) -> None:
    err = await rpc_error(request(world, alice, alice))
    assert err.message == "USER_ID_INVALID"
    bad_hash = functions.phone.RequestCallRequest(
        user_id=types.InputUser(bob.id, 12345),
        g_a_hash=bytes(32),
        protocol=protocol(),
        random_id=1,
    )
    assert (await rpc_error(world.cloud.invoke(alice.caller, bad_hash))).message == (
        "USER_ID_INVALID"
    )
    bot, _token = world.state.add_bot("helperbot")
    bot_party = sign_in(world, bot)
    assert (await rpc_error(request(world, bot_party, alice))).message == "BOT_METHOD_INVALID"
    assert (await rpc_error(request(world, alice, bot_party))).message == "USER_ID_INVALID"


async def test_protocol_flags_and_layers(world: World, alice: Party, bob: Party) -> None:
    for bad, message in (
        (protocol(udp_p2p=False, udp_reflector=False), "CALL_PROTOCOL_FLAGS_INVALID"),
        (protocol(min_layer=92, max_layer=65), "CALL_PROTOCOL_LAYER_INVALID"),
        (protocol(min_layer=10, max_layer=20), "CALL_PROTOCOL_LAYER_INVALID"),
    ):
        req = functions.phone.RequestCallRequest(
            user_id=input_user(world, alice, bob), g_a_hash=bytes(32), protocol=bad, random_id=7
        )
        assert (await rpc_error(world.cloud.invoke(alice.caller, req))).message == message


async def test_version_mismatch(world: World, alice: Party, bob: Party) -> None:
    world.phone.client_versions[bob.id] = ["2.4.4"]  # bob's app is ancient
    err = await rpc_error(request(world, alice, bob))
    assert (err.code, err.message) == (400, "PARTICIPANT_VERSION_OUTDATED")
    del world.phone.client_versions[bob.id]

    world.phone.force_version = "13.0.0"
    err = await rpc_error(request(world, alice, bob, ["8.0.0", "9.0.0"]))
    assert err.message == "PARTICIPANT_VERSION_OUTDATED"
    waiting = await request(world, alice, bob)
    err = await rpc_error(accept(world, bob, waiting, ["12.0.0"]))
    assert (err.code, err.message) == (406, "CALL_PROTOCOL_COMPAT_LAYER_INVALID")
    assert world.phone.calls[waiting.id].state is CallState.REQUESTED


async def test_call_peer_checks(world: World, alice: Party, bob: Party) -> None:
    carol = sign_in(world, world.state.add_user("+999 66 1003", "Carol"))
    waiting = await request(world, alice, bob)
    forged = types.InputPhoneCall(id=waiting.id, access_hash=waiting.access_hash ^ 1)
    err = await rpc_error(
        world.cloud.invoke(bob.caller, functions.phone.ReceivedCallRequest(peer=forged))
    )
    assert err.message == "CALL_PEER_INVALID"
    assert (await rpc_error(accept(world, carol, waiting))).message == "CALL_PEER_INVALID"
    assert (await rpc_error(accept(world, alice, waiting))).message == "CALL_PEER_INVALID"
    # confirming before the callee accepted, or as the callee
    assert (await rpc_error(confirm(world, alice, bob, waiting))).message == "CALL_PEER_INVALID"
    await accept(world, bob, waiting)
    assert (await rpc_error(confirm(world, bob, alice, waiting))).message == "CALL_PEER_INVALID"
    # signalling is only for accepted calls' parties
    sig = functions.phone.SendSignalingDataRequest(peer=input_call(waiting), data=b"z")
    assert (await rpc_error(world.cloud.invoke(carol.caller, sig))).message == "CALL_PEER_INVALID"


async def test_g_a_must_match_its_hash(world: World, alice: Party, bob: Party) -> None:
    waiting = await request(world, alice, bob)
    await accept(world, bob, waiting)
    err = await rpc_error(confirm(world, alice, bob, waiting, g_a=dh_public(12345)))
    assert err.message == "DH_G_A_INVALID"
    err = await rpc_error(confirm(world, alice, bob, waiting, g_a=b"\x01" * 3))
    assert err.message == "DH_G_A_INVALID"
    assert world.phone.calls[waiting.id].state is CallState.ACCEPTED
    await confirm(world, alice, bob, waiting)  # the right one still works


async def test_g_a_is_an_integer_not_a_fixed_size_field(
    world: World, alice: Party, bob: Party
) -> None:
    # One g_a in 256 starts with a zero byte; ntgcalls sends (and hashes) it without.
    value = pow(dh.G, random.Random(256).getrandbits(2048), P)
    for _ in range(20_000):  # g^(s+1) = g^s * g: cheap steps to the next exponent
        if 2032 < value.bit_length() <= 2040:
            break
        value = value * dh.G % P
    short = value.to_bytes((value.bit_length() + 7) // 8, "big")
    assert len(short) == 255
    req = functions.phone.RequestCallRequest(
        user_id=input_user(world, alice, bob),
        g_a_hash=hashlib.sha256(short).digest(),
        protocol=protocol(),
        random_id=5,
    )
    waiting = (await world.cloud.invoke(alice.caller, req)).phone_call
    await accept(world, bob, waiting)
    confirmed = await confirm(world, alice, bob, waiting, g_a=short)
    assert isinstance(confirmed.phone_call, types.PhoneCall)
    (update,) = [u for u in world.updates.take(bob) if isinstance(u.phone_call, types.PhoneCall)]
    assert update.phone_call.g_a_or_b == short


async def test_already_declined_and_accepted(world: World, alice: Party, bob: Party) -> None:
    waiting = await request(world, alice, bob)
    await discard(world, alice, waiting, types.PhoneCallDiscardReasonMissed())
    (gone,) = world.updates.take(bob)[1:]
    assert isinstance(gone.phone_call.reason, types.PhoneCallDiscardReasonMissed)
    assert (await rpc_error(accept(world, bob, waiting))).message == "CALL_ALREADY_DECLINED"

    waiting = await request(world, alice, bob)
    await accept(world, bob, waiting)
    assert (await rpc_error(accept(world, bob, waiting))).message == "CALL_ALREADY_ACCEPTED"
    # bob's second device tries to reject the call bob answered on his first
    bob_tablet = sign_in(world, bob.user)
    err = await rpc_error(discard(world, bob_tablet, waiting, types.PhoneCallDiscardReasonBusy()))
    assert err.message == "CALL_ALREADY_ACCEPTED"
    await discard(world, bob, waiting, types.PhoneCallDiscardReasonHangup())
    assert (await rpc_error(confirm(world, alice, bob, waiting))).message == (
        "CALL_ALREADY_DECLINED"
    )


async def test_busy_and_decline_reasons_reach_the_caller(
    world: World, alice: Party, bob: Party
) -> None:
    for reason, name in (
        (types.PhoneCallDiscardReasonBusy(), "busy"),
        (types.PhoneCallDiscardReasonHangup(), "hangup"),
    ):
        waiting = await request(world, alice, bob)
        await discard(world, bob, waiting, reason)
        (ended,) = world.updates.take(alice)
        assert type(ended.phone_call.reason) is type(reason)
        assert not ended.phone_call.need_rating and ended.phone_call.duration == 0
        call = world.phone.calls[waiting.id]
        assert (call.reason, call.discarded_by) == (name, bob.id)


async def test_random_id_duplicate(world: World, alice: Party, bob: Party) -> None:
    req = functions.phone.RequestCallRequest(
        user_id=input_user(world, alice, bob),
        g_a_hash=bytes(32),
        protocol=protocol(),
        random_id=99,
    )
    await world.cloud.invoke(alice.caller, req)
    err = await rpc_error(world.cloud.invoke(alice.caller, req))
    assert (err.code, err.message) == (500, "RANDOM_ID_DUPLICATE")


# --- knobs, timeouts and faults ------------------------------------------------------


async def test_ring_timeout_discards_as_missed(world: World, alice: Party, bob: Party) -> None:
    world.phone.ring_timeout = 0.2
    # bob has no live session: Telegram keeps the call ringing until the timeout
    waiting = await request(world, alice, bob)
    call = world.phone.calls[waiting.id]
    assert call.state is CallState.REQUESTED
    await world.phone.wait_state(call, CallState.DISCARDED, timeout=2.0)
    assert (call.reason, call.discarded_by) == ("missed", None)
    assert call.discarded_at is not None
    assert 0.15 <= call.discarded_at - call.requested_at < 1.0
    for party in (alice, bob):
        last = world.updates.take(party)[-1].phone_call
        assert isinstance(last, types.PhoneCallDiscarded)
        assert isinstance(last.reason, types.PhoneCallDiscardReasonMissed)


async def test_accepted_but_never_confirmed_times_out(
    world: World, alice: Party, bob: Party
) -> None:
    world.phone.ring_timeout = 0.2
    waiting = await request(world, alice, bob)
    await accept(world, bob, waiting)
    call = world.phone.calls[waiting.id]
    await world.phone.wait_state(call, CallState.DISCARDED, timeout=2.0)
    assert call.reason == "disconnect"


async def test_confirmed_call_is_not_timed_out(world: World, alice: Party, bob: Party) -> None:
    world.phone.ring_timeout = 0.2
    waiting = await request(world, alice, bob)
    await accept(world, bob, waiting)
    await confirm(world, alice, bob, waiting)
    with pytest.raises(TimeoutError):
        await world.phone.wait_state(world.phone.calls[waiting.id], CallState.DISCARDED, 0.5)


async def test_never_connect_drops_signalling(world: World, alice: Party, bob: Party) -> None:
    world.phone.never_connect = True
    waiting = await request(world, alice, bob)
    await accept(world, bob, waiting)
    await confirm(world, alice, bob, waiting)
    world.updates.take(bob)
    ok = await world.cloud.invoke(
        alice.caller, functions.phone.SendSignalingDataRequest(peer=input_call(waiting), data=b"s")
    )
    assert ok is True
    assert world.updates.take(bob) == []
    leg = world.phone.calls[waiting.id].signalling[alice.id]
    assert (leg.messages, leg.dropped) == (0, 1)


async def test_p2p_follows_privacy_and_the_knob(world: World, alice: Party, bob: Party) -> None:
    async def p2p_of_new_call() -> bool:
        waiting = await request(world, alice, bob)
        await accept(world, bob, waiting)
        return bool((await confirm(world, alice, bob, waiting)).phone_call.p2p_allowed)

    assert not await p2p_of_new_call()  # Telegram's default: P2P with contacts only
    make_contacts(world, alice, bob)
    assert await p2p_of_new_call()
    world.phone.p2p_allowed = False
    assert not await p2p_of_new_call()


async def test_wait_call_sees_the_next_call(world: World, alice: Party, bob: Party) -> None:
    import asyncio

    waiter = asyncio.ensure_future(world.phone.wait_call(timeout=2.0))
    await asyncio.sleep(0)
    waiting = await request(world, alice, bob)
    call = await waiter
    assert call.id == waiting.id and world.phone.last_call() is call
    assert world.phone.calls_of(bob.id) == [call]
