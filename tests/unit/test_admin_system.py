"""The System/Settings/Lines control methods (gateway/admin_system.py) on a real gateway in
this process, and the parts under them: the in-memory log buffer (gateway/logs.py), the ATA
registrar's new accounts, the default outgoing method of a new member, the re-execution of
``python -m gateway``.

The gateway listens on 127.0.0.41 (SIP and RTP); the real SIP peers of a reload are in
tests/interop/test_reload.py.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tomli_w

from gateway import __main__ as entry
from gateway import logs
from gateway.app import Gateway
from gateway.calls.onboarding import Onboarding
from gateway.config import Config, load_config
from gateway.control import ControlClient, ControlError
from gateway.logs import RecentLogs, kv, register_secret, setup_logging
from gateway.sip.digest import Credentials, DigestClient, choose_challenge
from gateway.sip.line import LineContext
from gateway.sip.message import SipRequest, parse_message
from gateway.sip.registrar import AtaAccount, Registrar
from gateway.sip.security import SourceList
from gateway.store import Store
from gateway.telegram.messages import Member, StartCommand
from gateway.telegram.privacy import PrivacyVerdict

IP = "127.0.0.41"
SECRET = "ata-pass-5521"


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    root, gw = logging.getLogger(), logging.getLogger("gateway")
    handlers, level, gw_level = list(root.handlers), root.level, gw.level
    logs.clear_secrets()
    yield
    logs.clear_secrets()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    gw.setLevel(gw_level)


# ------------------------------------------------------------------ the log buffer


def emit(handler: logging.Handler, level: int, msg: str, *args: object, **extra: Any) -> None:
    logger = logging.getLogger("gateway.test.buffer")
    record = logger.makeRecord(logger.name, level, __file__, 1, msg, args, None, extra=extra)
    handler.handle(record)


def test_recent_logs_newest_last_limit_and_minimum_level() -> None:
    buffer = RecentLogs()
    for i, level in enumerate([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]):
        emit(buffer, level, "record %d", i)
    assert [e.message for e in buffer.entries()] == [f"record {i}" for i in range(4)]
    assert [e.level for e in buffer.entries()] == ["debug", "info", "warning", "error"]
    assert [e.message for e in buffer.entries(2)] == ["record 2", "record 3"]
    assert [e.message for e in buffer.entries(10, "warning")] == ["record 2", "record 3"]
    assert [e.message for e in buffer.entries(1, "info")] == ["record 3"]
    entry = buffer.entries()[0]
    assert entry.logger == "gateway.test.buffer" and entry.time > 1.7e9


def test_recent_logs_keeps_the_last_1000() -> None:
    buffer = RecentLogs()
    for i in range(1005):
        emit(buffer, logging.INFO, "n=%d", i)
    kept = buffer.entries(5000)
    assert len(kept) == 1000
    assert (kept[0].message, kept[-1].message) == ("n=5", "n=1004")


def test_recent_logs_masks_secrets_in_message_fields_and_traceback() -> None:
    register_secret(SECRET)
    buffer = RecentLogs()
    emit(buffer, logging.INFO, "password is %s", SECRET, **kv(password=SECRET, line="home"))
    try:
        raise RuntimeError(f"login failed for {SECRET}")
    except RuntimeError:
        logger = logging.getLogger("gateway.test.buffer")
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "boom", None, sys.exc_info()
        )
        buffer.handle(record)
    emit(buffer, logging.DEBUG, 'Authorization: Digest username="a", response="0123abcd"')
    texts = [e.message for e in buffer.entries()]
    assert texts[0] == "password is *** password=*** line=home"
    assert texts[1].startswith("boom\nTraceback") and "login failed for ***" in texts[1]
    assert texts[2] == "Authorization: ***"
    assert not any(SECRET in t for t in texts)


def test_recent_logs_cuts_a_huge_record() -> None:
    buffer = RecentLogs()
    emit(buffer, logging.INFO, "x" * 20000)
    (entry,) = buffer.entries()
    assert len(entry.message) == logs.RECENT_TEXT_MAX and entry.message.endswith("…")


def test_recent_logs_takes_records_from_other_threads() -> None:
    buffer = RecentLogs()
    threads = [
        threading.Thread(
            target=lambda n=n: [emit(buffer, logging.INFO, f"{n}") for _ in range(200)]
        )
        for n in range(4)
    ]
    for t in threads:
        t.start()
    for _ in range(50):
        buffer.entries(1000)
    for t in threads:
        t.join()
    assert len(buffer.entries(1000)) == 800


def test_setup_logging_attaches_one_buffer_to_the_root_and_keeps_it() -> None:
    stream = io.StringIO()
    setup_logging("info", "text", stream=stream)
    buffer = logs.recent_logs()
    assert buffer is not None and buffer in logging.getLogger().handlers
    logging.getLogger("gateway.test").info("first")
    setup_logging("warning", "json", stream=stream)  # __main__ calls it twice
    assert logs.recent_logs() is buffer
    logging.getLogger("gateway.test").warning("second")
    logging.getLogger("gateway.test").info("dropped by the level")
    assert [e.message for e in buffer.entries()][-2:] == ["first", "second"]
    assert logging.getLogger().handlers.count(buffer) == 1


def test_install_recent_logs_reuses_an_attached_buffer_and_replaces_a_detached_one() -> None:
    logger = logging.getLogger("gateway.test.own")
    first = logs.install_recent_logs(logger)
    try:
        assert logs.install_recent_logs() is first  # attached: nobody gets a second one
        logger.removeHandler(first)  # detached behind its back (a test fixture)
        assert logs.recent_logs() is None
        second = logs.install_recent_logs(logger)
        assert second is not first and logs.recent_logs() is second
    finally:
        logs.remove_recent_logs(logs.recent_logs() or first)
    assert logs.recent_logs() is None and not logger.handlers


# ------------------------------------------------------------------ the ATA registrar


def register_request(user: str, auth: str = "") -> SipRequest:
    text = (
        "REGISTER sip:linegram.local SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.168.1.50:5062;branch=z9hG4bK-{user}-{len(auth)};rport\r\n"
        f"From: <sip:{user}@linegram.local>;tag=f1\r\n"
        f"To: <sip:{user}@linegram.local>\r\n"
        f"Call-ID: reg-{user}\r\nCSeq: 2 REGISTER\r\n"
        f"Contact: <sip:{user}@192.168.1.50:5062>\r\nExpires: 300\r\n"
        f"{auth}Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, SipRequest)
    return message


def bind(registrar: Registrar, user: str, password: str) -> int:
    source = ("192.168.1.50", 5062)
    challenge = registrar.handle_register(register_request(user), source)
    assert challenge.status == 401
    value = DigestClient(Credentials(user, password)).authorize(
        choose_challenge(challenge.headers.get_all("WWW-Authenticate")),
        "REGISTER",
        "sip:linegram.local",
    )
    return registrar.handle_register(
        register_request(user, f"Authorization: {value}\r\n"), source
    ).status


def account(line: LineContext, user: str, password: str = "pw-1") -> AtaAccount:
    return AtaAccount(line, user, password, SourceList())


def test_registrar_new_accounts_keep_bindings_of_lines_that_keep_their_user() -> None:
    hall, shed = LineContext("hall", "ata"), LineContext("shed", "ata")
    registrar = Registrar([account(hall, "hall1"), account(shed, "shed1")], user_agent="t")
    assert bind(registrar, "hall1", "pw-1") == 200 and bind(registrar, "shed1", "pw-1") == 200
    # hall: a new context (the line changed) with the same user; shed: another user.
    new_hall, new_shed = LineContext("hall", "ata"), LineContext("shed", "ata")
    registrar.set_accounts(
        [account(new_hall, "hall1", "pw-2"), account(new_shed, "shed2")], ("MD5", "SHA-256")
    )
    assert registrar.binding("hall") is not None and registrar.binding("shed") is None
    assert new_hall.ata_target is not None and new_hall.ata_target.host == "192.168.1.50"
    assert "192.168.1.50" in new_hall.sources and new_shed.ata_target is None
    assert bind(registrar, "shed1", "pw-1") == 403  # the old user is gone
    assert bind(registrar, "hall1", "pw-1") == 403  # the old password too
    assert bind(registrar, "hall1", "pw-2") == 200
    registrar.set_accounts([account(new_shed, "shed2")], ("MD5",))
    assert registrar.binding("hall") is None
    assert registrar.digest.algorithms == ("MD5",)


# ------------------------------------------------------------------ a new member's method


class FakeMessenger:
    """What onboarding needs from the Messenger when there is no bot."""

    def __init__(self) -> None:
        self.account = SimpleNamespace(user=None)
        self.sent: list[str] = []

    async def introduce(self, member: Member) -> Member:
        return member

    async def send(self, member: Member, message: Any) -> None:
        self.sent.append(message.text)


async def test_a_new_member_gets_the_configured_outgoing_method(tmp_path: Path) -> None:
    method = ["callback"]

    async def verdict(member: Member) -> PrivacyVerdict:
        return PrivacyVerdict(True, "ok", "fine")

    with Store.open(tmp_path / "m.db") as store:
        onboarding = Onboarding(
            store,
            FakeMessenger(),  # type: ignore[arg-type]
            bot_username=lambda: "",
            gateway_username=lambda: "home_gateway",
            lines=lambda: ["home", "office"],
            check_privacy=verdict,
            outgoing_method=lambda: method[0],  # type: ignore[arg-type,return-value]
        )

        async def link(user_id: int, lines: list[str]) -> str:
            token = onboarding.invite(lines).token
            await onboarding.handle(StartCommand(Member(user_id, 7, "M"), token, via="gateway"))
            record = store.member_by_telegram(user_id)
            assert record is not None
            return record.outgoing_method

        assert await link(111, ["home"]) == "callback"
        method[0] = "invite"  # config.reload changed the default
        assert await link(222, ["home"]) == "invite"
        # Linked again (another line): a member keeps the method they have.
        assert await link(111, ["office"]) == "callback"


# ------------------------------------------------------------------ the gateway's methods


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((IP, 0))
        port: int = sock.getsockname()[1]
    return port


def settings(
    tmp_path: Path, port: int, lines: list[dict[str, Any]], **tables: Any
) -> dict[str, Any]:
    return {
        "gateway": {"data_dir": str(tmp_path / "data"), "log_level": "debug"},
        "sip": {"listen": IP, "port": port},
        "media": {"address": IP, "rtp_port_min": 36400, "rtp_port_max": 36479},
        "lines": lines,
        **tables,
    }


DESK = {"name": "desk", "kind": "ata", "allow": ["127.0.0.42"]}
HALL = {"name": "hall", "kind": "ata", "username": "hall1", "password": SECRET}


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(tomli_w.dumps(data))
    path.chmod(0o600)  # it holds passwords
    Path(data["gateway"]["data_dir"]).mkdir(exist_ok=True)


class Running:
    def __init__(self, gateway: Gateway, path: Path, data: dict[str, Any]) -> None:
        self.gw = gateway
        self.path = path
        self.data = data
        self.client = ControlClient(gateway.control.path)

    async def call(self, method: str, **params: Any) -> Any:
        return await self.client.call(method, **params)

    async def error(self, method: str, **params: Any) -> ControlError:
        with pytest.raises(ControlError) as info:
            await self.client.call(method, **params)
        return info.value


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    path = tmp_path / "linegram.toml"
    data = settings(tmp_path, free_port(), [DESK, HALL])
    write(path, data)
    config = load_config(path)
    store = Store.open(config.data_dir / "linegram.db")
    gateway = Gateway(config, store, path)
    await gateway.start()
    run = Running(gateway, path, data)
    try:
        yield run
    finally:
        await run.client.close()
        await asyncio.sleep(0.05)  # the server sees the close before it stops
        await gateway.stop()
        store.close()


async def test_reload_applies_lines_and_settings_and_reports_restart_keys(
    running: Running,
) -> None:
    gw = running.gw
    desk = gw.lines["desk"]
    old_port = gw.config.sip.port
    assert gw.registrar is not None
    data = {
        **running.data,
        "sip": {**running.data["sip"], "port": old_port + 1},
        "lines": [
            {**DESK, "incoming": "reject", "no_answer": "reject", "country_code": "44"},
            {"name": "office", "kind": "ata", "allow": ["127.0.0.43"]},
        ],
        "echo": {"extension": "601"},
        "telegram": {"ring_timeout": 30},
        "calls": {"default_outgoing_method": "callback"},
        "leds": {"line": 17},
        "webui": {"port": 9000},
    }
    write(running.path, data)
    result = await running.call("config.reload")
    assert result["applied"] == [
        "lines.hall: removed",
        "lines.desk.incoming",
        "lines.desk.no_answer",
        "lines.desk.dialing",
        "lines.office: added",
        "echo.extension",
        "telegram.ring_timeout",
        "calls.default_outgoing_method",
    ]
    assert result["restart_needed"] == ["sip.port", "leds.line", "webui.port"]
    assert [(line["name"], line["state"]) for line in result["lines"]] == [
        ("desk", "ready"),
        ("office", "ready"),
    ]
    # The unchanged parts of desk run on: the same context, only `incoming` changed.
    assert gw.lines["desk"] is desk and desk.incoming == "reject"
    assert gw.ua is not None and gw.ua.lines is gw.lines and list(gw.lines) == ["desk", "office"]
    assert "127.0.0.43" in gw.lines["office"].sources
    # No ATA line with an account is left: no registrar, REGISTER is refused.
    assert gw.registrar is None and gw.ua.on_register is None
    assert gw.manager.no_answer_status("desk") == (480, "Temporarily Unavailable")
    assert gw.manager.plans["desk"].country_code == "44"
    assert gw.manager.ring_timeout == 30.0 and gw.telegram.call_settings.ring_timeout == 30.0
    assert gw.ua.echo_extension == "601"
    assert gw.config.calls.default_outgoing_method == "callback"
    # What needs a restart keeps running as it started, and is reported again.
    assert gw.config.sip.port == old_port and gw.ua.listen[1] == old_port
    again = await running.call("config.reload")
    assert again["applied"] == []
    assert again["restart_needed"] == ["sip.port", "leds.line", "webui.port"]


async def test_reload_restarts_a_changed_line_and_builds_the_registrar(running: Running) -> None:
    gw = running.gw
    desk = gw.lines["desk"]
    hall = gw.lines["hall"]
    data = {
        **running.data,
        "lines": [
            {**DESK, "allow": ["127.0.0.44"]},
            {**HALL, "enabled": False},
            {"name": "loft", "kind": "ata", "username": "loft1", "password": "pw-loft"},
        ],
    }
    write(running.path, data)
    result = await running.call("config.reload")
    assert result["applied"] == [
        "lines.hall: disabled",
        "lines.desk: restarted",
        "lines.loft: added",
    ]
    assert result["restart_needed"] == []
    assert gw.lines["desk"] is not desk and "127.0.0.44" in gw.lines["desk"].sources
    assert "127.0.0.42" not in gw.lines["desk"].sources and "hall" not in gw.lines
    assert hall.name == "hall"  # a call holding it still could use it
    assert gw.registrar is not None and list(gw.registrar.accounts) == ["loft1"]
    assert gw.ua is not None and gw.ua.on_register == gw.registrar.handle_register
    # Back to the first file: hall enabled again, loft removed.
    write(running.path, running.data)
    result = await running.call("config.reload")
    assert result["applied"] == [
        "lines.loft: removed",
        "lines.desk: restarted",
        "lines.hall: enabled",
    ]
    assert gw.registrar is not None and list(gw.registrar.accounts) == ["hall1"]


async def test_reload_of_an_invalid_file_changes_nothing(running: Running) -> None:
    before = running.gw.config
    lines = dict(running.gw.lines)
    write(running.path, {**running.data, "lines": [{**DESK, "alow": []}], "leds": {"line": 99}})
    error = await running.error("config.reload")
    assert error.code == "invalid"
    assert error.message == (
        f'{running.path}: lines[0].alow: unknown key (did you mean "allow"?); '
        "leds.line: must be a GPIO pin number (BCM) between 0 and 27, got 99"
    )
    running.path.write_text("[sip\nport = 1")
    error = await running.error("config.reload")
    assert error.code == "invalid" and "invalid TOML" in error.message
    running.path.unlink()
    error = await running.error("config.reload")
    assert (error.code, error.message) == (
        "invalid",
        f"{running.path}: no such file (create one with --init)",
    )
    assert running.gw.config is before and running.gw.lines == lines
    assert (await running.error("config.reload", force=True)).message == "unknown parameter 'force'"


async def test_reload_without_a_settings_file_is_unsupported(tmp_path: Path) -> None:
    config = load_config_from(tmp_path)
    with Store.open(tmp_path / "x.db") as store:
        gateway = Gateway(config, store)
        await gateway.start()
        try:
            async with ControlClient(gateway.control.path) as client:
                with pytest.raises(ControlError) as info:
                    await client.call("config.reload")
            assert info.value.code == "unsupported"
        finally:
            await gateway.stop()


def load_config_from(tmp_path: Path) -> Config:
    path = tmp_path / "plain.toml"
    write(path, settings(tmp_path, free_port(), [DESK]))
    return load_config(path)


async def test_lines_retry_refusals(running: Running) -> None:
    error = await running.error("lines.retry", name="nowhere")
    assert (error.code, error.message) == ("not_found", "no line named 'nowhere' is running")
    error = await running.error("lines.retry", name="hall")
    assert error.code == "invalid"
    assert error.message.startswith("line hall is an ATA line: the ATA registers itself; ")
    assert (await running.error("lines.retry")).message == "name is required"
    assert (await running.error("lines.retry", name=3)).message == "name must be a string, got int"


async def test_logs_recent_reads_the_gateway_log_masked(running: Running) -> None:
    logging.getLogger("gateway").setLevel(logging.DEBUG)
    log = logging.getLogger("gateway.test.system")
    log.debug("a debug line")
    log.warning("the ATA password is %s", SECRET)
    entries = await running.call("logs.recent", limit=2)
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("debug", "gateway.test.system", "a debug line"),
        ("warning", "gateway.test.system", "the ATA password is ***"),
    ]
    assert set(entries[0]) == {"time", "level", "logger", "message"}
    warnings = await running.call("logs.recent", level="warning")
    assert warnings[-1]["message"] == "the ATA password is ***"
    assert all(e["level"] in ("warning", "error", "critical") for e in warnings)
    # The gateway's own records (at the level the gateway logger lets through).
    await running.call("config.reload")
    last = (await running.call("logs.recent", level="info", limit=1))[0]
    assert (last["logger"], last["message"]) == (
        "gateway.app",
        "settings reloaded: nothing changed",
    )
    for params, message in [
        ({"limit": 0}, "limit must be an integer 1..1000, got 0"),
        ({"limit": 1001}, "limit must be an integer 1..1000, got 1001"),
        ({"level": "verbose"}, "level must be one of debug, info, warning, error, got 'verbose'"),
    ]:
        error = await running.error("logs.recent", **params)
        assert (error.code, error.message) == ("invalid", message)


async def test_gateway_restart_answers_first_then_runs_the_restart_action(
    running: Running,
) -> None:
    error = await running.error("gateway.restart")
    assert error.code == "unsupported"
    restarted = asyncio.Event()
    running.gw.on_restart = restarted.set
    assert await running.call("gateway.restart") == {"restarting": True}
    assert not restarted.is_set()  # not before the answer left
    await asyncio.wait_for(restarted.wait(), 2)


# ------------------------------------------------------------------ python -m gateway


class RestartingGateway:
    """Asks for a restart once started, like the control method does."""

    events: list[str] = []

    def __init__(self, config: Config, store: Store, config_path: Path | None = None) -> None:
        self.store = store
        self.on_restart: Any = None

    async def start(self) -> None:
        RestartingGateway.events.append("start")
        assert self.on_restart is not None
        asyncio.get_running_loop().call_soon(self.on_restart)

    async def stop(self) -> None:
        RestartingGateway.events.append("stop")


def test_cli_stops_closes_the_database_then_re_executes_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text('[gateway]\nlog_level = "warning"\n')
    execs: list[tuple[str, list[str]]] = []

    def fake_execv(program: str, argv: list[str]) -> None:
        with Store.open(tmp_path / "linegram.db"):  # closed by now: opens fine
            pass
        execs.append((program, argv))

    monkeypatch.setattr(entry.os, "execv", fake_execv)
    RestartingGateway.events.clear()
    assert entry.cli(["--config", str(path)], gateway_factory=RestartingGateway) == 0
    assert RestartingGateway.events == ["start", "stop"]
    assert execs == [(sys.executable, [sys.executable, *sys.orig_argv[1:]])]

    def failing_execv(program: str, argv: list[str]) -> None:
        raise OSError(8, "Exec format error")

    monkeypatch.setattr(entry.os, "execv", failing_execv)
    assert entry.cli(["--config", str(path)], gateway_factory=RestartingGateway) == 1
    assert os.path.exists(path)
