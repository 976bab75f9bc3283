"""Settings reloaded while the gateway runs (control methods ``config.reload`` and
``lines.retry``), against real peers: sipp calls and registers, Kamailio is the provider.

Not an RFC module.  What is checked: a line added by a reload takes a REGISTER (RFC 3261
§10.3) and one removed refuses it; calls in progress survive a reload, on a line left alone
and on a line removed (their BYE still gets 200, §15.1.2); a changed provider line
unregisters its old account (Expires: 0, §10.2.2) and registers the new one; ``lines.retry``
sends a REGISTER at once instead of after the back-off; the log buffer never shows a password.

The gateway runs in process, started from a settings file as ``python -m gateway`` is; the
test rewrites that file and asks for the reload through the control socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.interop.peers.gateway import (
    ATA_PASSWORD,
    PROVIDER_PASSWORD,
    READY_TIMEOUT,
    InProcessGateway,
    ata_line,
    gateway_config,
    provider_line,
)
from tests.interop.peers.harness import Peers
from tests.interop.peers.kamailio import CHALLENGED, REGISTERED, USERS, Kamailio, KamailioVariant
from tests.interop.peers.net import PEER_IP, SIPP_IP
from tests.interop.peers.procs import LogBook, wait_until
from tests.interop.peers.sipmsg import SipProbe

pytestmark = pytest.mark.interop

CALL_MS = 5000  # how long each sipp call stays up: the reload happens meanwhile


class FileGateway(InProcessGateway):
    """The in-process gateway started from ``gateway.toml``, so config.reload can re-read it."""

    def __init__(self, run_dir: Path, logbook: LogBook, config: dict[str, Any]) -> None:
        super().__init__(run_dir, logbook, config)
        self.path = run_dir / "gateway.toml"
        logbook.add("gateway.toml", self.path)
        self.write(config)

    def write(self, config: dict[str, Any]) -> None:
        self.config = config
        self.path.write_bytes(tomli_w.dumps(config).encode())
        self.path.chmod(0o600)

    async def start(self) -> Any:
        from gateway.app import Gateway
        from gateway.config import load_config
        from gateway.store import Store

        self._attach_log()
        config = load_config(self.path)
        self._store = Store.open(Path(config.data_dir) / "linegram.db")
        self.gw = Gateway(config, self._store, self.path)
        await asyncio.wait_for(self.gw.start(), READY_TIMEOUT)
        return self.gw

    async def call(self, method: str, **params: Any) -> Any:
        """A control-API call, as the web UI makes it."""
        from gateway.control import ControlClient

        async with ControlClient(self.gw.control.path) as client:
            return await client.call(method, **params)

    async def reload(self, config: dict[str, Any]) -> dict[str, Any]:
        self.write(config)
        result: dict[str, Any] = await self.call("config.reload")
        return result


Start = Callable[[dict[str, Any]], Awaitable[FileGateway]]


@pytest.fixture
async def start_gateway(peers: Peers, logbook: LogBook) -> AsyncIterator[Start]:
    started: list[FileGateway] = []

    async def start(config: dict[str, Any]) -> FileGateway:
        gateway = FileGateway(peers.directory("gateway"), logbook, config)
        started.append(gateway)
        await gateway.start()
        return gateway

    try:
        yield start
    finally:  # before the peers fixture stops sipp and Kamailio
        for gateway in started:
            await gateway.stop()


def lines_of(config: dict[str, Any], *lines: dict[str, Any]) -> dict[str, Any]:
    return {**config, "lines": list(lines)}


async def test_reload_adds_and_removes_ata_lines_while_calls_go_on(
    peers: Peers, tmp_path: Path, start_gateway: Start
) -> None:
    keep = ata_line([SIPP_IP], name="keep", username="", password="")
    gone = ata_line([PEER_IP], name="gone", username="", password="")
    hall = ata_line([], name="hall", username="hall1", password=ATA_PASSWORD)
    first = gateway_config(tmp_path / "data", [keep, gone])
    first["echo"] = {"allow": []}  # only the lines' sources may talk to the gateway
    gateway = await start_gateway(first)
    gw = gateway.gw
    address = gateway.address
    hostport = "{}:{}".format(*address)
    async with SipProbe(PEER_IP) as probe:
        answer = await probe.options(address)
        assert answer is not None and answer.status == 200  # PEER_IP is line gone's ATA

    # One call on each line; they stay up while the settings change.
    calls = []
    for ip in (SIPP_IP, PEER_IP):
        _capture, media_port = await peers.sipp_media(ip)
        sipp = peers.sipp(
            "uac_long_call",
            ip=ip,
            remote=hostport,
            media_port=media_port,
            extra_args=["-d", str(CALL_MS)],
        )
        await sipp.start()
        calls.append(sipp)
    await wait_until(
        lambda: sorted(c.line.name for c in gw.active_calls() if c.answered_at) == ["gone", "keep"],
        5,
        "both calls answered",
    )

    # gone removed, keep left alone.
    result = await gateway.reload(lines_of(first, keep))
    assert result["applied"] == ["lines.gone: removed"]
    assert result["restart_needed"] == []
    assert [(s["name"], s["state"]) for s in result["lines"]] == [("keep", "ready")]
    assert len(gw.active_calls()) == 2
    async with SipProbe(PEER_IP) as probe:
        # The removed line's ATA is a stranger now: its OPTIONS go unanswered...
        assert await probe.options(address, within=1.0) is None

    # ...but both calls end with their own BYE, answered 200: none was dropped or
    # screened out.
    for sipp in calls:
        result_call = await sipp.finish()
        assert result_call.ok, result_call.describe()
    await wait_until(lambda: gw.active_calls() == [], 3, "no call left")
    rows = gw.store.recent_calls(5)
    assert sorted((r.line, r.outcome, r.end_reason) for r in rows) == [
        ("gone", "answered", "remote-hangup"),
        ("keep", "answered", "remote-hangup"),
    ]

    # hall added: an ATA that registers (sipp computes the MD5 digest).
    result = await gateway.reload(lines_of(first, keep, hall))
    assert result["applied"] == ["lines.hall: added"]
    registered = await peers.sipp(
        "uac_register_digest",
        remote=hostport,
        keys={"user": "hall1", "expires": "120"},
        extra_args=["-au", "hall1", "-ap", ATA_PASSWORD],
    ).run()
    assert registered.ok, registered.describe()
    status = gw.line_status("hall")
    assert status.state == "registered" and status.registered_until is not None

    # hall removed again: the same REGISTER is refused, no registrar serves it any more
    # (405 to keep's ATA, which may still talk to the gateway; silence to a stranger).
    result = await gateway.reload(lines_of(first, keep))
    assert result["applied"] == ["lines.hall: removed"]
    async with SipProbe(SIPP_IP) as probe:
        refused, answer = await probe.register(address, "hall1", ATA_PASSWORD, within=1.5)
    assert refused is not None and refused.status == 405 and answer is None
    async with SipProbe(PEER_IP) as probe:
        assert await probe.register(address, "hall1", ATA_PASSWORD, within=1.0) == (None, None)
    assert gw.registrar is None and list(gw.lines) == ["keep"]


async def test_changed_provider_line_re_registers_and_retry_registers_now(
    peers: Peers, tmp_path: Path, start_gateway: Start
) -> None:
    kamailio = await peers.kamailio(KamailioVariant())
    wrong = provider_line(kamailio.hostport, password="not-alice-s-password")
    first = gateway_config(tmp_path / "data", [wrong])
    gateway = await start_gateway(first)
    gw = gateway.gw
    await wait_until(lambda: gw.line_status("prov").state == "failed", 5, "line prov failed")
    assert "wrong username or password" in (gw.line_status("prov").last_error or "")

    # The next attempt is 5 s away (back-off); lines.retry sends it now.
    before = len(kamailio.log.matches(CHALLENGED))
    status = await gateway.call("lines.retry", name="prov")
    assert status["name"] == "prov" and status["kind"] == "provider"
    await kamailio.log.wait_for(CHALLENGED, within=2, count=before + 1)

    # The right password: the line restarts and registers.
    right = provider_line(kamailio.hostport, password=PROVIDER_PASSWORD)
    result = await gateway.reload(lines_of(first, right))
    assert result["applied"] == ["lines.prov: restarted"]
    await wait_until(lambda: gw.line_status("prov").state == "registered", 5, "prov registered")
    [alice] = kamailio.registrations("alice")
    assert Kamailio.requested_expires(alice) == 60

    # Only the incoming mode changes: the registration stays as it is.
    count = len(kamailio.log.matches(REGISTERED))
    result = await gateway.reload(lines_of(first, {**right, "incoming": "reject"}))
    assert result["applied"] == ["lines.prov.incoming"]
    assert gw.lines["prov"].incoming == "reject"
    await asyncio.sleep(0.5)
    assert len(kamailio.log.matches(REGISTERED)) == count
    assert gw.line_status("prov").state == "registered"

    # Another account on the same line: alice unregisters, bob registers.
    bob = provider_line(kamailio.hostport, username="bob", password=USERS["bob"])
    result = await gateway.reload(lines_of(first, bob))
    assert result["applied"] == ["lines.prov: restarted"]
    await kamailio.log.wait_for(REGISTERED, within=3, count=count + 2)
    alice_again = kamailio.registrations("alice")
    assert [Kamailio.requested_expires(m) for m in alice_again] == [60, 0]
    await wait_until(lambda: gw.line_status("prov").state == "registered", 5, "prov as bob")
    assert len(kamailio.registrations("bob")) == 1

    # A registered line retried registers again at once.
    await gateway.call("lines.retry", name="prov")
    await kamailio.log.wait_for(REGISTERED, within=2, count=count + 3)

    # The log buffer has the story, with no password in it (DEBUG: every SIP message).
    entries = await gateway.call("logs.recent", limit=1000)
    text = "\n".join(e["message"] for e in entries)
    assert "line prov: registered" in text and "REGISTER sip:" in text
    for password in ("not-alice-s-password", PROVIDER_PASSWORD, USERS["bob"]):
        assert password not in text
