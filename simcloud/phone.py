"""Private (1:1) phone calls: DH config, the phone.* call flow and the signalling relay.

The flow, as core.telegram.org/api/calls describes it and py-tgcalls drives it:

  caller  requestCall(g_a_hash)  -> PhoneCallWaiting;  callee gets PhoneCallRequested
  callee  receivedCall           -> caller gets PhoneCallWaiting(receive_date)  ("ringing")
  callee  acceptCall(g_b)        -> PhoneCallWaiting;  caller gets PhoneCallAccepted(g_b)
  caller  confirmCall(g_a, fp)   -> PhoneCall(g_b);    callee gets PhoneCall(g_a, fp)
  both    sendSignalingData      -> the other gets UpdatePhoneCallSignalingData
  either  discardCall(reason)    -> the other gets PhoneCallDiscarded(reason, duration)

The cloud never sees the call key; it checks what it can (g_a against the stored
g_a_hash) and negotiates one ntgcalls library version. PhoneCall carries no
connections (no reflectors): media is peer to peer over the test namespace's veth.
`cloud.phone` (a `Phone`) holds the call table, the knobs and the faults.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from telethon.tl import functions, types

from simcloud.cloud import Caller, Cloud, RpcError, handler
from simcloud.help import CALL_RING_TIMEOUT_MS
from simcloud.mtproto import dh
from simcloud.state import SimUser, State, state_of
from simcloud.updates import updates_of

log = logging.getLogger(__name__)

# What messages.getDhConfig hands out: Telegram's prime (as bytes) and g = 3.
DH_PRIME = dh.PRIME_BYTES
DH_G = dh.G
DH_VERSION = 3
MAX_RANDOM_LENGTH = 256
# Oldest VoIP layer the sim accepts; tgcalls-era clients send 92 (py-tgcalls 3.0.0 too).
MIN_CALL_LAYER = 65
# Unanswered calls end as Missed after the call_ring_timeout_ms help.getConfig advertises.
RING_TIMEOUT_S = CALL_RING_TIMEOUT_MS / 1000
# As a phone.getCallConfig answer looks: tuning knobs for the VoIP library.
CALL_CONFIG = {
    "audio_frame_size": 60,
    "jitter_min_delay_60": 2,
    "jitter_max_delay_60": 10,
    "jitter_max_slots_60": 20,
    "jitter_losses_to_reset": 20,
    "jitter_resync_threshold": 0.5,
    "audio_congestion_window": 1024,
    "audio_max_bitrate": 20000,
    "audio_init_bitrate": 16000,
    "audio_min_bitrate": 8000,
    "use_system_ns": True,
    "use_system_aec": True,
}


class CallState(Enum):
    REQUESTED = "requested"  # the callee's devices were told, none confirmed receipt yet
    RINGING = "ringing"  # a callee device called phone.receivedCall
    ACCEPTED = "accepted"  # the callee sent g_b
    ACTIVE = "active"  # the caller confirmed with g_a: key exchange done, media may flow
    DISCARDED = "discarded"


REASON_NAMES: dict[type, str] = {
    types.PhoneCallDiscardReasonMissed: "missed",
    types.PhoneCallDiscardReasonDisconnect: "disconnect",
    types.PhoneCallDiscardReasonHangup: "hangup",
    types.PhoneCallDiscardReasonBusy: "busy",
}
_REASON_TYPES = {name: cls for cls, name in REASON_NAMES.items()}


def reason_name(reason: Any) -> str:
    return REASON_NAMES.get(type(reason), type(reason).__name__)


def version_key(version: str) -> tuple[int, ...]:
    """'12.0.0' -> (12, 0, 0); junk sorts first."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)


@dataclass
class SignallingLeg:
    """Signalling one party sent: relayed and dropped messages and bytes."""

    messages: int = 0
    bytes: int = 0
    dropped: int = 0


@dataclass
class PhoneCallRecord:
    """One call as the cloud saw it; the tests read these."""

    id: int
    access_hash: int
    admin_id: int  # the caller
    participant_id: int  # the callee
    caller_auth_key: int
    g_a_hash: bytes = field(repr=False)
    caller_protocol: Any = field(repr=False)
    video: bool
    requested_at: float
    state: CallState = CallState.REQUESTED
    received_at: float | None = None
    accepted_at: float | None = None
    confirmed_at: float | None = None
    discarded_at: float | None = None
    callee_auth_key: int | None = None
    callee_protocol: Any = field(default=None, repr=False)
    g_b: bytes | None = field(default=None, repr=False)
    g_a: bytes | None = field(default=None, repr=False)
    key_fingerprint: int | None = None
    version: str | None = None  # the negotiated ntgcalls library version
    p2p_allowed: bool = True
    reason: str | None = None
    discarded_by: int | None = None  # user id, or None when the cloud's ring timeout fired
    duration: int = 0
    client_duration: int | None = None
    rating: int | None = None
    debug: str | None = None
    signalling: dict[int, SignallingLeg] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    ring_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def other(self, user_id: int) -> int:
        return self.participant_id if user_id == self.admin_id else self.admin_id

    def note(self, now: float, event: str) -> None:
        self.events.append((now, event))

    def signalling_from(self, user_id: int) -> SignallingLeg:
        return self.signalling.setdefault(user_id, SignallingLeg())

    def stop_ringing(self) -> None:
        """Cancel the cloud's ring timeout (answered, confirmed or ended)."""
        if self.ring_timer is not None:
            self.ring_timer.cancel()
            self.ring_timer = None


class Phone:
    """The cloud's call table, knobs and call faults (`cloud.phone`).

    Knobs: `force_version` makes the cloud negotiate exactly that ntgcalls library
    version when both sides offer it (else acceptCall fails as Telegram does with
    incompatible apps); `p2p_allowed` goes into PhoneCall (ANDed with both users'
    P2P privacy); `ring_timeout` (seconds of event-loop time) discards an
    unanswered call with reason Missed; `client_versions[user_id]` pretends that
    user's app supports only those library versions. Fault: `never_connect` drops
    every signalling message, so the calls set up but media never connects.
    """

    def __init__(
        self, cloud: Cloud, *, ring_timeout: float = RING_TIMEOUT_S, clock: Callable[[], float]
    ) -> None:
        self.cloud = cloud
        self.clock = clock
        self.ring_timeout = ring_timeout
        self.force_version: str | None = None
        self.p2p_allowed = True
        self.never_connect = False
        self.client_versions: dict[int, list[str]] = {}
        self.call_config: dict[str, Any] = dict(CALL_CONFIG)
        self.calls: dict[int, PhoneCallRecord] = {}
        self._random_ids: set[tuple[int, int]] = set()
        self._changed = asyncio.Event()  # replaced by a fresh one on every change

    # --- queries for tests -------------------------------------------------------

    def calls_of(self, user_id: int) -> list[PhoneCallRecord]:
        return [c for c in self.calls.values() if user_id in (c.admin_id, c.participant_id)]

    def last_call(self) -> PhoneCallRecord | None:
        """The most recently requested call (the table keeps request order)."""
        return next(reversed(self.calls.values()), None)

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float, what: str = "call state"
    ) -> None:
        """Wait (bounded) until `predicate()` holds; it is re-checked on every call change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout} s")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_call(self, timeout: float) -> PhoneCallRecord:
        """The first call requested after this wait starts (at most `timeout` s away)."""
        before = set(self.calls)
        await self.wait_for(lambda: bool(set(self.calls) - before), timeout, "new call")
        (new_id,) = set(self.calls) - before
        return self.calls[new_id]

    async def wait_state(
        self, call: PhoneCallRecord, state: CallState, timeout: float
    ) -> PhoneCallRecord:
        await self.wait_for(lambda: call.state is state, timeout, f"call {call.id} {state.value}")
        return call

    def close(self) -> None:
        for call in self.calls.values():
            call.stop_ringing()

    # --- the call table ----------------------------------------------------------

    def changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def lookup(self, user_id: int, peer: Any) -> PhoneCallRecord:
        """The call an InputPhoneCall names, if `user_id` takes part in it."""
        if not isinstance(peer, types.InputPhoneCall):
            raise RpcError(400, "CALL_PEER_INVALID")
        call = self.calls.get(peer.id)
        if call is None or call.access_hash != peer.access_hash:
            raise RpcError(400, "CALL_PEER_INVALID")
        if user_id not in (call.admin_id, call.participant_id):
            raise RpcError(400, "CALL_PEER_INVALID")
        return call

    def new_call(
        self, caller_id: int, caller_key: int, callee_id: int, req: Any
    ) -> PhoneCallRecord:
        if (caller_id, req.random_id) in self._random_ids:
            raise RpcError(500, "RANDOM_ID_DUPLICATE")
        self._random_ids.add((caller_id, req.random_id))
        call_id = secrets.randbits(63) or 1
        call = PhoneCallRecord(
            id=call_id,
            access_hash=secrets.randbits(64) - (1 << 63),
            admin_id=caller_id,
            participant_id=callee_id,
            caller_auth_key=caller_key,
            g_a_hash=req.g_a_hash,
            caller_protocol=req.protocol,
            video=bool(req.video),
            requested_at=self.clock(),
        )
        call.note(call.requested_at, "requested")
        self.calls[call_id] = call
        if self.ring_timeout > 0:
            call.ring_timer = asyncio.get_running_loop().call_later(
                self.ring_timeout, self._ring_timeout, call
            )
        self.changed()
        return call

    def _ring_timeout(self, call: PhoneCallRecord) -> None:
        call.ring_timer = None
        if call.state in (CallState.REQUESTED, CallState.RINGING):
            self.discard(call, None, "missed")
        elif call.state is CallState.ACCEPTED:  # accepted but the caller never confirmed
            self.discard(call, None, "disconnect")

    def discard(
        self, call: PhoneCallRecord, by: int | None, reason: str, device: Caller | None = None
    ) -> None:
        """End the call and tell everyone but the discarding `device`.

        That device learns it from its discardCall result, as on Telegram; the
        discarder's other devices and the other party get an UpdatePhoneCall.
        """
        was_active = call.state is CallState.ACTIVE
        call.state = CallState.DISCARDED
        call.discarded_at = self.clock()
        call.reason = reason
        call.discarded_by = by
        if was_active and call.confirmed_at is not None:
            call.duration = max(0, int(call.discarded_at - call.confirmed_at))
        call.note(call.discarded_at, f"discarded {reason} by {by}")
        call.stop_ringing()
        for user_id in (call.admin_id, call.participant_id):
            exclude = device if user_id == by else None
            self.push(user_id, self.discarded_view(call, was_active), call, exclude)
        self.changed()

    # --- what each side sees -----------------------------------------------------

    def negotiated_protocol(self, call: PhoneCallRecord) -> types.PhoneCallProtocol:
        a, b = call.caller_protocol, call.callee_protocol or call.caller_protocol
        return types.PhoneCallProtocol(
            min_layer=max(a.min_layer, b.min_layer),
            max_layer=min(a.max_layer, b.max_layer),
            library_versions=[call.version] if call.version else list(a.library_versions),
            udp_p2p=bool(a.udp_p2p and b.udp_p2p),
            udp_reflector=bool(a.udp_reflector and b.udp_reflector),
        )

    def _date(self, at: float | None) -> int:
        return int(at if at is not None else self.clock())

    def _who_and_when(self, call: PhoneCallRecord) -> dict[str, Any]:
        """The fields every PhoneCall* view but PhoneCallDiscarded starts with."""
        return dict(
            id=call.id,
            access_hash=call.access_hash,
            date=self._date(call.requested_at),
            admin_id=call.admin_id,
            participant_id=call.participant_id,
            video=call.video,
        )

    def waiting_view(self, call: PhoneCallRecord, protocol: Any) -> types.PhoneCallWaiting:
        return types.PhoneCallWaiting(
            **self._who_and_when(call),
            protocol=protocol,
            receive_date=self._date(call.received_at) if call.received_at is not None else None,
        )

    def requested_view(self, call: PhoneCallRecord) -> types.PhoneCallRequested:
        return types.PhoneCallRequested(
            **self._who_and_when(call), g_a_hash=call.g_a_hash, protocol=call.caller_protocol
        )

    def accepted_view(self, call: PhoneCallRecord) -> types.PhoneCallAccepted:
        assert call.g_b is not None
        return types.PhoneCallAccepted(
            **self._who_and_when(call), g_b=call.g_b, protocol=self.negotiated_protocol(call)
        )

    def active_view(self, call: PhoneCallRecord, for_user: int) -> types.PhoneCall:
        # Each side gets the other's public value: the caller g_b, the callee g_a.
        g_a_or_b = call.g_b if for_user == call.admin_id else call.g_a
        assert g_a_or_b is not None and call.key_fingerprint is not None
        return types.PhoneCall(
            **self._who_and_when(call),
            g_a_or_b=g_a_or_b,
            key_fingerprint=call.key_fingerprint,
            protocol=self.negotiated_protocol(call),
            connections=[],
            start_date=self._date(call.confirmed_at),
            p2p_allowed=call.p2p_allowed,
        )

    def discarded_view(self, call: PhoneCallRecord, was_active: bool) -> types.PhoneCallDiscarded:
        assert call.reason is not None
        return types.PhoneCallDiscarded(
            id=call.id,
            need_rating=was_active or None,
            reason=_REASON_TYPES[call.reason](),
            duration=call.duration,
            video=call.video,
        )

    def users_for(self, viewer_id: int, call: PhoneCallRecord) -> list[types.User]:
        state = state_of(self.cloud)
        return state.views(
            state.user(viewer_id), [state.user(call.admin_id), state.user(call.participant_id)]
        )

    def push(
        self, user_id: int, phone_call: Any, call: PhoneCallRecord, exclude: Caller | None = None
    ) -> None:
        updates_of(self.cloud).push(
            user_id,
            types.UpdatePhoneCall(phone_call=phone_call),
            users=self.users_for(user_id, call),
            exclude_session=exclude,
        )

    def result(self, viewer_id: int, phone_call: Any, call: PhoneCallRecord) -> Any:
        return types.phone.PhoneCall(phone_call=phone_call, users=self.users_for(viewer_id, call))

    # --- negotiation -------------------------------------------------------------

    def offered_by_callee(self, callee_id: int, offered: list[str]) -> list[str]:
        allowed = self.client_versions.get(callee_id)
        return [v for v in offered if allowed is None or v in allowed]

    def choose_version(self, call: PhoneCallRecord, callee_protocol: Any) -> str:
        common: list[str] = [
            str(v)
            for v in call.caller_protocol.library_versions
            if v in self.offered_by_callee(call.participant_id, callee_protocol.library_versions)
        ]
        if self.force_version is not None:
            if self.force_version not in common:
                raise RpcError(406, "CALL_PROTOCOL_COMPAT_LAYER_INVALID")
            return self.force_version
        if not common:
            raise RpcError(406, "CALL_PROTOCOL_COMPAT_LAYER_INVALID")
        return max(common, key=version_key)


def attach(cloud: Cloud, *, ring_timeout: float = RING_TIMEOUT_S) -> Phone:
    """Give the cloud its phone subsystem (idempotent); `simcloud.world` calls this."""
    phone = getattr(cloud, "phone", None)
    if not isinstance(phone, Phone):
        state = vars(cloud).get("state")  # share the world's clock when there is one
        clock = state.clock if isinstance(state, State) else time.time
        phone = Phone(cloud, ring_timeout=ring_timeout, clock=clock)
        cloud.phone = phone
    return phone


def phone_of(cloud: Cloud) -> Phone:
    return attach(cloud)


def _check_protocol(protocol: Any) -> None:
    if not isinstance(protocol, types.PhoneCallProtocol):
        raise RpcError(400, "CALL_PROTOCOL_FLAGS_INVALID")
    if not (protocol.udp_p2p or protocol.udp_reflector):
        raise RpcError(400, "CALL_PROTOCOL_FLAGS_INVALID")
    if protocol.min_layer > protocol.max_layer or protocol.max_layer < MIN_CALL_LAYER:
        raise RpcError(400, "CALL_PROTOCOL_LAYER_INVALID")


def _calling_user(cloud: Cloud, caller: Caller) -> SimUser:
    return state_of(cloud).require_person(caller)  # bots get BOT_METHOD_INVALID


def _call_of(
    cloud: Cloud, caller: Caller, peer: Any, side: Literal["caller", "callee"] | None = None
) -> tuple[Phone, SimUser, PhoneCallRecord]:
    """The call an InputPhoneCall names, for a person taking part in it (on `side`, if given)."""
    phone = phone_of(cloud)
    me = _calling_user(cloud, caller)
    call = phone.lookup(me.id, peer)
    if side is not None and me.id != (call.admin_id if side == "caller" else call.participant_id):
        raise RpcError(400, "CALL_PEER_INVALID")
    return phone, me, call


def _valid_dh_value(value: bytes) -> bool:
    """2^(2048-64) < value < p - 2^(2048-64), the MTProto range check for g_a.

    A big-endian integer, not a fixed-size field: ntgcalls sends it without
    leading zero bytes (one call in 256 has a 255-byte g_a), hashed as sent.
    """
    return len(value) <= len(DH_PRIME) and dh.in_safe_range(int.from_bytes(value, "big"))


# --- handlers ----------------------------------------------------------------------


@handler(functions.messages.GetDhConfigRequest)
async def get_dh_config(
    cloud: Cloud, caller: Caller, req: functions.messages.GetDhConfigRequest
) -> Any:
    if not 0 <= req.random_length <= MAX_RANDOM_LENGTH:
        raise RpcError(400, "RANDOM_LENGTH_INVALID")
    random = secrets.token_bytes(req.random_length)
    if req.version == DH_VERSION:
        return types.messages.DhConfigNotModified(random=random)
    return types.messages.DhConfig(g=DH_G, p=DH_PRIME, version=DH_VERSION, random=random)


@handler(functions.phone.GetCallConfigRequest)
async def get_call_config(
    cloud: Cloud, caller: Caller, req: functions.phone.GetCallConfigRequest
) -> types.DataJSON:
    state_of(cloud).require_user(caller)
    return types.DataJSON(data=json.dumps(phone_of(cloud).call_config))


@handler(functions.phone.RequestCallRequest)
async def request_call(
    cloud: Cloud, caller: Caller, req: functions.phone.RequestCallRequest
) -> Any:
    phone = phone_of(cloud)
    state = state_of(cloud)
    me = _calling_user(cloud, caller)
    _check_protocol(req.protocol)
    callee = state.resolve_user(me, req.user_id)
    if callee is me or callee.bot or callee.service:
        raise RpcError(400, "USER_ID_INVALID")
    if state.is_blocked(callee, me):
        raise RpcError(403, "USER_IS_BLOCKED")
    if not state.may_call(me, callee):
        raise RpcError(403, "USER_PRIVACY_RESTRICTED")
    offered = list(req.protocol.library_versions)
    if not phone.offered_by_callee(callee.id, offered) or (
        phone.force_version is not None and phone.force_version not in offered
    ):
        raise RpcError(400, "PARTICIPANT_VERSION_OUTDATED")
    call = phone.new_call(me.id, caller.auth_key_id, callee.id, req)
    # Telegram's default P2P privacy is "contacts only"; the sim has no reflectors to
    # fall back on, so a call without P2P sets up but its media never connects.
    call.p2p_allowed = phone.p2p_allowed and state.may_p2p(me, callee)
    phone.push(callee.id, phone.requested_view(call), call)
    return phone.result(me.id, phone.waiting_view(call, call.caller_protocol), call)


@handler(functions.phone.ReceivedCallRequest)
async def received_call(
    cloud: Cloud, caller: Caller, req: functions.phone.ReceivedCallRequest
) -> bool:
    phone, _, call = _call_of(cloud, caller, req.peer, "callee")
    if call.state is CallState.REQUESTED:
        call.state = CallState.RINGING
        call.received_at = phone.clock()
        call.note(call.received_at, "received")
        phone.push(call.admin_id, phone.waiting_view(call, call.caller_protocol), call)
        phone.changed()
    return True


@handler(functions.phone.AcceptCallRequest)
async def accept_call(cloud: Cloud, caller: Caller, req: functions.phone.AcceptCallRequest) -> Any:
    phone, me, call = _call_of(cloud, caller, req.peer, "callee")
    if call.state is CallState.DISCARDED:
        raise RpcError(400, "CALL_ALREADY_DECLINED")
    if call.state in (CallState.ACCEPTED, CallState.ACTIVE):
        raise RpcError(400, "CALL_ALREADY_ACCEPTED")
    _check_protocol(req.protocol)
    call.version = phone.choose_version(call, req.protocol)
    call.callee_protocol = req.protocol
    call.g_b = req.g_b
    call.callee_auth_key = caller.auth_key_id
    call.state = CallState.ACCEPTED
    call.accepted_at = phone.clock()
    if call.received_at is None:
        call.received_at = call.accepted_at
    call.note(call.accepted_at, f"accepted version {call.version}")
    phone.push(call.admin_id, phone.accepted_view(call), call)
    phone.changed()
    return phone.result(me.id, phone.waiting_view(call, phone.negotiated_protocol(call)), call)


@handler(functions.phone.ConfirmCallRequest)
async def confirm_call(
    cloud: Cloud, caller: Caller, req: functions.phone.ConfirmCallRequest
) -> Any:
    phone, me, call = _call_of(cloud, caller, req.peer, "caller")
    if call.state is CallState.DISCARDED:
        raise RpcError(400, "CALL_ALREADY_DECLINED")
    if call.state is not CallState.ACCEPTED:
        raise RpcError(400, "CALL_PEER_INVALID")  # not accepted yet, or confirmed already
    # The callee checks the key fingerprint; the cloud can only check that g_a is
    # the value whose hash the caller committed to in requestCall.
    if not _valid_dh_value(req.g_a) or hashlib.sha256(req.g_a).digest() != call.g_a_hash:
        raise RpcError(400, "DH_G_A_INVALID")
    call.g_a = req.g_a
    call.key_fingerprint = req.key_fingerprint
    call.state = CallState.ACTIVE
    call.confirmed_at = phone.clock()
    call.note(call.confirmed_at, "confirmed")
    call.stop_ringing()
    phone.push(call.participant_id, phone.active_view(call, call.participant_id), call)
    phone.changed()
    return phone.result(me.id, phone.active_view(call, me.id), call)


@handler(functions.phone.DiscardCallRequest)
async def discard_call(
    cloud: Cloud, caller: Caller, req: functions.phone.DiscardCallRequest
) -> types.Updates:
    phone, me, call = _call_of(cloud, caller, req.peer)
    if (
        call.state in (CallState.ACCEPTED, CallState.ACTIVE)
        and me.id == call.participant_id
        and caller.auth_key_id != call.callee_auth_key
    ):
        raise RpcError(400, "CALL_ALREADY_ACCEPTED")  # answered on another of my devices
    if call.state is not CallState.DISCARDED:
        if req.reason is None or type(req.reason) not in REASON_NAMES:
            raise RpcError(400, "CALL_PEER_INVALID")
        call.client_duration = req.duration
        phone.discard(call, me.id, reason_name(req.reason), caller)
    view = phone.discarded_view(call, call.confirmed_at is not None)
    return updates_of(cloud).envelope(
        me.id, [types.UpdatePhoneCall(phone_call=view)], phone.users_for(me.id, call)
    )


@handler(functions.phone.SendSignalingDataRequest)
async def send_signaling_data(
    cloud: Cloud, caller: Caller, req: functions.phone.SendSignalingDataRequest
) -> bool:
    phone, me, call = _call_of(cloud, caller, req.peer)
    leg = call.signalling_from(me.id)
    if call.state in (CallState.REQUESTED, CallState.RINGING):
        raise RpcError(400, "CALL_PEER_INVALID")
    if call.state is CallState.DISCARDED or phone.never_connect:
        # Late teardown chatter is dropped quietly; never_connect drops everything.
        leg.dropped += 1
        return True
    leg.messages += 1
    leg.bytes += len(req.data)
    updates_of(cloud).push(
        call.other(me.id),
        types.UpdatePhoneCallSignalingData(phone_call_id=call.id, data=req.data),
        users=[],
    )
    return True


@handler(functions.phone.SetCallRatingRequest)
async def set_call_rating(
    cloud: Cloud, caller: Caller, req: functions.phone.SetCallRatingRequest
) -> types.Updates:
    _, me, call = _call_of(cloud, caller, req.peer)
    call.rating = req.rating
    return updates_of(cloud).envelope(me.id, [])


@handler(functions.phone.SaveCallDebugRequest)
async def save_call_debug(
    cloud: Cloud, caller: Caller, req: functions.phone.SaveCallDebugRequest
) -> bool:
    _, _, call = _call_of(cloud, caller, req.peer)
    if not isinstance(req.debug, types.DataJSON):
        raise RpcError(400, "DATA_JSON_INVALID")
    try:
        json.loads(req.debug.data)
    except ValueError:
        raise RpcError(400, "DATA_JSON_INVALID") from None
    call.debug = req.debug.data
    return True
