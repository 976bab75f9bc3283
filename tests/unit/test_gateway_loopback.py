"""Two gateways on loopback call each other: the SIP core end to end, no external peer.

Gateway A serves the echo test; gateway B dials it through an ATA-style line
(direct IP) and checks that what it sends comes back, that DTMF crosses both
ways, that hold and resume are answered with the right directions, that
CANCEL leaves no call behind, and that the call log records each call.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import Config, parse_config
from gateway.media.g711 import alaw_decode, alaw_encode
from gateway.sip.call import CallState, EndReason
from gateway.sip.message import SipRequest, make_response, parse_message
from gateway.sip.uri import SipUri
from gateway.store import Store

A_IP, B_IP = "127.0.0.21", "127.0.0.22"


def config(
    tmp: Path, ip: str, port_base: int, lines: list[dict[str, object]], **echo: object
) -> dict[str, object]:
    return {
        "gateway": {"data_dir": str(tmp / ip)},
        "sip": {"listen": ip, "port": 5060, "rate_limit": 200.0},
        "media": {"rtp_port_min": port_base, "rtp_port_max": port_base + 98, "rtp_timeout": 5.0},
        "echo": {"extension": "600", "allow": [B_IP], **echo},
        "lines": lines,
    }


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Gateway]]:
    started: list[Gateway] = []
    a_cfg = parse_config(config(tmp_path, A_IP, 31000, []), base_dir=tmp_path)
    b_cfg = parse_config(
        config(
            tmp_path,
            B_IP,
            31200,
            [{"name": "peer", "kind": "ata", "allow": [A_IP], "incoming": "reject"}],
        ),
        base_dir=tmp_path,
    )
    for cfg, name in ((a_cfg, "a"), (b_cfg, "b")):
        gw = Gateway(cfg, Store.open(tmp_path / f"{name}.db"))
        await gw.start()
        started.append(gw)
    try:
        yield started[0], started[1]
    finally:
        for gw in started:
            await gw.stop()
            gw.store.close()


def tone(frames: int, freq: float = 440.0) -> list[bytes]:
    """20 ms frames of a sine, already through A-law so the echo can be compared bit for bit."""
    out = []
    for f in range(frames):
        samples = [
            int(8000 * math.sin(2 * math.pi * freq * (f * 160 + i) / 8000)) for i in range(160)
        ]
        pcm = struct.pack("<160h", *samples)
        out.append(alaw_decode(alaw_encode(pcm)))
    return out


def echo_target(a: Gateway) -> str:
    assert a.ua is not None
    return f"sip:600@{A_IP}:{a.ua.listen[1]}"


async def test_echo_call_returns_audio_and_dtmf_and_is_logged(
    pair: tuple[Gateway, Gateway],
) -> None:
    a, b = pair
    call = await b.dial("peer", echo_target(a))
    received: list[bytes] = []
    digits: list[str] = []
    call.on_audio = received.append
    call.on_dtmf = lambda digit, ms: digits.append(digit)
    await call.wait_answered(timeout=5)
    assert call.state is CallState.UP and call.codec == "PCMA"
    frames = tone(100)
    for frame in frames:
        call.write_audio(frame)
        await asyncio.sleep(0.02)
    await call.send_dtmf("4#")
    await asyncio.sleep(0.5)
    joined = b"".join(received)
    # The echo comes back after both jitter buffers, with silence wherever our
    # sleep-paced writer fell behind the 20 ms clock: every frame must come
    # back whole, bit for bit, and in order.
    position = 0
    for frame in frames[5:95]:
        found = joined.find(frame, position)
        assert found >= 0, f"frame missing from the echo after byte {position}"
        position = found + len(frame)
    assert digits == ["4", "#"]
    await call.hang_up()
    assert call.end_reason is EndReason.LOCAL_HANGUP
    await asyncio.sleep(0.2)
    assert a.active_calls() == [] and b.active_calls() == []
    (row,) = a.store.recent_calls(5)
    assert (row.direction, row.outcome, row.codec) == ("in", "answered", "PCMA")
    (row_b,) = b.store.recent_calls(5)
    assert (row_b.direction, row_b.outcome) == ("out", "answered")


async def test_hold_and_resume_are_answered_with_matching_directions(
    pair: tuple[Gateway, Gateway],
) -> None:
    a, b = pair
    call = await b.dial("peer", echo_target(a))
    await call.wait_answered(timeout=5)
    assert await call.hold()
    assert call.negotiated is not None and call.negotiated.remote_direction == "recvonly"
    (remote,) = a.active_calls()
    assert remote.remote_hold
    assert await call.resume()
    assert call.negotiated.remote_direction == "sendrecv"
    assert not remote.remote_hold
    await call.hang_up()


async def test_cancel_while_ringing_leaves_no_call(pair: tuple[Gateway, Gateway]) -> None:
    a, b = pair
    call = await b.dial("peer", echo_target(a))
    for _ in range(50):
        if call.state is CallState.RINGING:
            break
        await asyncio.sleep(0.01)
    assert call.state is CallState.RINGING
    await call.hang_up()
    await asyncio.sleep(0.3)
    assert a.active_calls() == [] and b.active_calls() == []
    (row,) = a.store.recent_calls(5)
    assert (row.outcome, row.end_reason) == ("missed", "cancelled")


async def test_remote_bye_ends_both_sides(pair: tuple[Gateway, Gateway]) -> None:
    a, b = pair
    call = await b.dial("peer", echo_target(a))
    await call.wait_answered(timeout=5)
    (remote,) = a.active_calls()
    await remote.hang_up()
    await call.wait_ended(timeout=2)
    assert call.end_reason is EndReason.REMOTE_HANGUP


async def test_unknown_source_reaches_no_call(pair: tuple[Gateway, Gateway]) -> None:
    a, b = pair
    # B is only allowed to reach A's echo extension; any other number is refused.
    call = await b.dial("peer", f"sip:700@{A_IP}:{a.ua.listen[1] if a.ua else 0}")
    await call.wait_ended(timeout=5)
    assert call.end_status == 404
    assert a.active_calls() == []


def raw_request(
    method: str, target: str, extra: str = "", source_port: int = 0
) -> tuple[bytes, int]:
    branch = f"z9hG4bK{method.lower()}{source_port}"
    text = (
        f"{method} {target} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {B_IP}:{{port}};branch={branch};rport\r\n"
        f"From: <sip:tester@{B_IP}>;tag=t1\r\nTo: <{target}>\r\n"
        f"Call-ID: raw-{method}-{source_port}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:tester@{B_IP}:{{port}}>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    return text.encode(), source_port


async def exchange(a: Gateway, payloads: list[bytes], expect: int) -> list[bytes]:
    """Send raw datagrams to A from B's address; collect up to ``expect`` replies (1 s max)."""
    assert a.ua is not None
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            replies.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Collect, local_addr=(B_IP, 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        for payload in payloads:
            transport.sendto(payload.replace(b"{port}", str(port).encode()), (A_IP, a.ua.listen[1]))
        got: list[bytes] = []
        while len(got) < expect:
            try:
                got.append(await asyncio.wait_for(replies.get(), 1.0))
            except TimeoutError:
                break
        return got
    finally:
        transport.close()


async def test_options_require_and_garbage(pair: tuple[Gateway, Gateway]) -> None:
    a, _ = pair
    options, _ = raw_request("OPTIONS", f"sip:600@{A_IP}")
    (reply,) = await exchange(a, [options], 1)
    assert reply.startswith(b"SIP/2.0 200 OK\r\n")
    assert b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY" in reply
    invite, _ = raw_request("INVITE", f"sip:600@{A_IP}", "Require: 100rel, timer\r\n", 1)
    (reply,) = await exchange(a, [invite], 1)
    assert reply.startswith(b"SIP/2.0 420 Bad Extension\r\n")
    assert b"Unsupported: 100rel, timer\r\n" in reply
    garbage = [b"\x00\xff" * 50, b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n", b"\r\n\r\n"]
    bad_length, _ = raw_request("OPTIONS", f"sip:600@{A_IP}", "Content-Length: 999\r\n", 2)
    replies = await exchange(a, [*garbage, bad_length.replace(b"Content-Length: 0\r\n", b"")], 4)
    assert [r.split(b"\r\n")[0][:12] for r in replies] == [b"SIP/2.0 400 "]
    # Still alive and serving.
    (reply,) = await exchange(a, [options], 1)
    assert reply.startswith(b"SIP/2.0 200 OK\r\n")


async def start_registered(a_cfg: Config, b_cfg: Config, tmp: Path) -> tuple[Gateway, Gateway]:
    """Start A (with an ATA line) and B (a provider line towards A); wait until B is registered."""
    a = Gateway(a_cfg, Store.open(tmp / "a.db"))
    b = Gateway(b_cfg, Store.open(tmp / "b.db"))
    await a.start()
    await b.start()
    for _ in range(300):
        if b.line_status("up").state == "registered":
            break
        await asyncio.sleep(0.01)
    assert b.line_status("up").state == "registered", b.line_status("up")
    return a, b


async def test_provider_line_registers_to_ata_line_with_sha256(tmp_path: Path) -> None:
    """Our registrar against our own client: SHA-256 only, then calls both ways."""
    a_cfg = parse_config(
        config(
            tmp_path,
            A_IP,
            31400,
            [
                {
                    "name": "box",
                    "kind": "ata",
                    "username": "box7",
                    "password": "box-pass-9921",
                    "auth_algorithms": ["SHA-256"],
                    "incoming": "echo",
                }
            ],
        ),
        base_dir=tmp_path,
    )
    b_cfg = parse_config(
        config(
            tmp_path,
            B_IP,
            31600,
            [
                {
                    "name": "up",
                    "kind": "provider",
                    "registrar": f"{A_IP}:5060",
                    "username": "box7",
                    "password": "box-pass-9921",
                    "expires": 120,
                    "keepalive": 0,
                    "incoming": "echo",
                }
            ],
        ),
        base_dir=tmp_path,
    )
    a, b = await start_registered(a_cfg, b_cfg, tmp_path)
    try:
        assert a.line_status("box").state == "registered"
        assert a.registrar is not None and a.registrar.digest.algorithms == ("SHA-256",)
        # A calls the registered "ATA" (B), which routes it to its echo.
        call = await a.dial("box", "555")
        await call.wait_answered(timeout=5)
        assert call.remote.uri.user == "555"
        await call.hang_up()
        # B calls out through its provider line (A), reaching A's echo.
        out = await b.dial("up", "600")
        await out.wait_answered(timeout=5)
        await out.hang_up()
    finally:
        await b.stop()
        await a.stop()
        a.store.close()
        b.store.close()


async def test_refer_is_accepted_and_reported_by_notify(pair: tuple[Gateway, Gateway]) -> None:
    a, b = pair
    call = await b.dial("peer", echo_target(a))
    await call.wait_answered(timeout=5)
    (remote,) = a.active_calls()
    asked: list[str] = []

    def accept(uri: SipUri) -> bool:
        asked.append(str(uri))
        # The call layer would dial the target now; report its answer shortly.
        asyncio.get_running_loop().call_later(0.1, remote.refer_progress, 200, "OK")
        return True

    remote.on_refer = accept
    assert await call.refer(SipUri.parse("sip:601@192.0.2.7"), timeout=3)
    assert asked == ["sip:601@192.0.2.7"]
    # Without a handler, a REFER is declined and reported as such.
    remote.on_refer = None
    assert not await call.refer(SipUri.parse("sip:602@192.0.2.7"), timeout=3)
    await call.hang_up()


async def test_invite_without_contact_is_refused(pair: tuple[Gateway, Gateway]) -> None:
    a, _ = pair
    invite, _ = raw_request("INVITE", f"sip:600@{A_IP}", "", 3)
    no_contact = b"".join(
        line + b"\r\n" for line in invite.split(b"\r\n") if not line.startswith(b"Contact:")
    )[:-2]
    (reply,) = await exchange(a, [no_contact], 1)
    assert reply.startswith(b"SIP/2.0 400 Missing Contact\r\n")
    assert a.active_calls() == []


async def test_second_forked_answer_is_acked_then_ended(pair: tuple[Gateway, Gateway]) -> None:
    """Two 200s with different To tags (a forking proxy): keep the first, ACK and BYE the other."""
    _, b = pair
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[bytes] = asyncio.Queue()

    class Callee(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            inbox.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Callee, local_addr=("127.0.0.23", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        call = await b.dial("peer", f"sip:forked@127.0.0.23:{port}")
        invite = parse_message(await asyncio.wait_for(inbox.get(), 2))
        assert isinstance(invite, SipRequest)
        answer = (
            b"v=0\r\no=- 1 1 IN IP4 127.0.0.23\r\ns=-\r\nc=IN IP4 127.0.0.23\r\nt=0 0\r\n"
            b"m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
            b"a=rtpmap:101 telephone-event/8000\r\n"
        )
        source = (B_IP, b.ua.listen[1] if b.ua else 0)
        for tag in ("first", "second"):
            ok = make_response(
                invite,
                200,
                to_tag=tag,
                headers=[
                    ("Contact", f"<sip:{tag}@127.0.0.23:{port}>"),
                    ("Content-Type", "application/sdp"),
                ],
                body=answer,
            )
            transport.sendto(bytes(ok), source)
        seen: list[tuple[str, str | None]] = []
        while len(seen) < 3:
            message = parse_message(await asyncio.wait_for(inbox.get(), 2))
            if isinstance(message, SipRequest):
                seen.append((message.method, message.to_addr.tag))
                if message.method == "BYE":
                    transport.sendto(bytes(make_response(message, 200)), source)
        assert sorted(seen) == [("ACK", "first"), ("ACK", "second"), ("BYE", "second")]
        assert call.state is CallState.UP and call.dialog is not None
        assert call.dialog.remote_tag == "first"
        hang_up = asyncio.ensure_future(call.hang_up())
        bye = parse_message(await asyncio.wait_for(inbox.get(), 2))
        assert isinstance(bye, SipRequest) and (bye.method, bye.to_addr.tag) == ("BYE", "first")
        transport.sendto(bytes(make_response(bye, 200)), source)
        await asyncio.wait_for(hang_up, 2)
    finally:
        transport.close()


async def test_provider_line_over_tcp(tmp_path: Path) -> None:
    """REGISTER, digest, calls both ways and BYE, all over one TCP connection pair."""
    a_data = config(
        tmp_path,
        A_IP,
        31800,
        [
            {
                "name": "box",
                "kind": "ata",
                "username": "box7",
                "password": "box-pass-9921",
                "incoming": "echo",
            }
        ],
    )
    a_data["sip"] = {**a_data["sip"], "tcp": True}  # type: ignore[dict-item]
    b_data = config(
        tmp_path,
        B_IP,
        31900,
        [
            {
                "name": "up",
                "kind": "provider",
                "registrar": f"{A_IP}:5060",
                "username": "box7",
                "password": "box-pass-9921",
                "transport": "tcp",
                "expires": 120,
                "keepalive": 0,
                "incoming": "echo",
            }
        ],
    )
    a, b = await start_registered(
        parse_config(a_data, base_dir=tmp_path), parse_config(b_data, base_dir=tmp_path), tmp_path
    )
    try:
        assert a.ua is not None and b.ua is not None and a.ua.transport and b.ua.transport
        assert a.ua.transport.tcp_connections == 1 and b.ua.transport.tcp_connections == 1
        out = await b.dial("up", "600")
        received: list[bytes] = []
        out.on_audio = received.append
        await out.wait_answered(timeout=5)
        frames = tone(30)
        for frame in frames:
            out.write_audio(frame)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert frames[10] in b"".join(received)
        await out.hang_up()
        assert out.end_reason is EndReason.LOCAL_HANGUP
        call = await a.dial("box", "555")
        await call.wait_answered(timeout=5)
        (remote,) = b.active_calls()
        await remote.hang_up()
        await call.wait_ended(timeout=3)
        assert call.end_reason is EndReason.REMOTE_HANGUP
        # Everything went over the one connection B opened.
        assert a.ua.transport.tcp_connections == 1 and b.ua.transport.tcp_connections == 1
    finally:
        await b.stop()
        await a.stop()
        a.store.close()
        b.store.close()
