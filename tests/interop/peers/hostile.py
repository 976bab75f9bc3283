"""What an exposed SIP port receives all day: malformed datagrams and sipvicious scans.

Not an RFC module.  The datagrams break RFC 3261 §7 in the ways parsers tend
to trip over (truncation, oversize, lying Content-Length, bytes that are not
UTF-8); the scanners are the sipvicious 0.3.8 console scripts from the venv
(``svmap`` maps SIP devices with OPTIONS, ``svwar`` guesses extensions with
REGISTER or INVITE).  Both identify themselves as ``friendly-scanner``.
Exit status: 0 when they found something, 30 when they found nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sys
from pathlib import Path
from typing import cast

from tests.interop.peers.net import free_port
from tests.interop.peers.procs import LogBook, ManagedProcess
from tests.interop.peers.sipmsg import Response

SCANNER_TIMEOUT = 90.0
BAD_UTF8 = b"\xff\xfe\xc3\x28\xed\xa0\x80"  # invalid start bytes, bad continuation, surrogate
FOUND_NOTHING = 30


def _invite(target: str, source: str, extra: str = "", body: bytes = b"") -> bytes:
    branch = "z9hG4bK" + secrets.token_hex(6)
    head = (
        f"INVITE sip:600@{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source};branch={branch}\r\n"
        f"From: <sip:evil@{source}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:600@{target}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}@{source}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:evil@{source}>\r\n"
        "Max-Forwards: 70\r\n"
        f"{extra}"
    )
    if "Content-Length" not in extra:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def garbage(target: str, source: str, seed: int = 3261) -> list[tuple[str, bytes]]:
    """``(label, datagram)`` pairs; *target* and *source* are ``host:port``."""
    rng = random.Random(seed)
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.14\r\ns=-\r\nc=IN IP4 127.0.0.14\r\nt=0 0\r\n"
    sdp += b"m=audio 40000 RTP/AVP 0\r\n"
    whole = _invite(target, source, "Content-Type: application/sdp\r\n", sdp)
    out: list[tuple[str, bytes]] = []
    out += [(f"random {i}", rng.randbytes(rng.randrange(1, 1400))) for i in range(20)]
    out += [(f"truncated at {n}", whole[:n]) for n in (7, 30, 120, len(whole) // 2, len(whole) - 9)]
    out += [
        ("huge header", _invite(target, source, f"Subject: {'x' * 60000}\r\n")),
        ("4000 headers", _invite(target, source, "X-Junk: 1\r\n" * 4000)),
        ("content-length too big", _invite(target, source, "Content-Length: 65000\r\n", sdp)),
        ("content-length negative", _invite(target, source, "Content-Length: -5\r\n", sdp)),
        ("content-length not a number", _invite(target, source, "Content-Length: ten\r\n")),
        (
            "two content-lengths",
            _invite(target, source, "Content-Length: 3\r\nContent-Length: 9\r\n"),
        ),
        ("bad utf-8", _invite(target, source, "Subject: @\r\n").replace(b": @", b": " + BAD_UTF8)),
        ("nul bytes", b"INVITE sip:600@" + target.encode() + b" SIP/2.0\r\n\x00\x00\x00\r\n\r\n"),
        ("stray response", b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n\r\n"),
        ("request line only", b"OPTIONS sip:x SIP/2.0\r\n\r\n"),
        ("wrong version", whole.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)),
        ("crlf keep-alive", b"\r\n\r\n"),
        ("empty", b""),
        ("unknown method", whole.replace(b"INVITE", b"FROBNICATE")),
        ("well-formed invite from a stranger", whole),
    ]
    return out


def rtp_garbage(seed: int = 3550) -> list[bytes]:
    """Datagrams for an RTP port that are not RTP v2 (a gateway must not latch onto them)."""
    rng = random.Random(seed)
    short = [rng.randbytes(n) for n in (1, 4, 11)]
    wrong_version = [
        bytes([rng.choice((0x00, 0x40, 0xC0))]) + rng.randbytes(171) for _ in range(10)
    ]
    return short + wrong_version


class _Listener(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.replies.append(data)


class Attacker:
    """A UDP socket on the hostile address that sends junk and keeps whatever comes back."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self._listener = _Listener()
        self.port = 0

    async def __aenter__(self) -> Attacker:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self._listener, local_addr=(self.ip, 0))
        assert self._listener.transport is not None
        self.port = self._listener.transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._listener.transport is not None:
            self._listener.transport.close()

    @property
    def source(self) -> str:
        return f"{self.ip}:{self.port}"

    async def send(
        self, datagrams: list[bytes], target: tuple[str, int], gap: float = 0.01
    ) -> None:
        assert self._listener.transport is not None
        for data in datagrams:
            self._listener.transport.sendto(data, target)
            await asyncio.sleep(gap)

    def responses(self) -> list[Response]:
        """The SIP responses that came back (anything unparsable is skipped)."""
        out = []
        for data in self._listener.replies:
            try:
                out.append(Response.parse(data))
            except ValueError:
                pass
        return out


def sipvicious(tool: str) -> str:
    """A sipvicious console script installed next to this interpreter (the venv's bin)."""
    path = Path(sys.executable).parent / f"sipvicious_{tool}"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: pip install -e .[test] installs sipvicious")
    return str(path)


def scanner(
    tool: str, args: list[str], source_ip: str, run_dir: Path, logbook: LogBook
) -> ManagedProcess:
    """One sipvicious run from *source_ip*; its session files go to *run_dir*, not ~/."""
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [sipvicious(tool), "-b", source_ip, "-P", str(free_port(source_ip)), *args]
    env = {**os.environ, "HOME": str(run_dir)}
    return ManagedProcess(
        f"sipvicious {tool} {' '.join(args)}",
        argv,
        run_dir / "output.log",
        logbook,
        cwd=run_dir,
        env=env,
    )
