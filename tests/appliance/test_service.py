"""gateway/service.py against real AF_UNIX datagram sockets, as systemd listens."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.__main__ import main
from gateway.config import Config, default_config
from gateway.service import Notifier
from gateway.store import Store


class Manager:
    """The service manager's end: a bound datagram socket that collects messages."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind = b"\0" + address[1:].encode() if address.startswith("@") else address
        self.sock.bind(bind)
        self.sock.settimeout(5.0)

    def receive(self) -> list[str]:
        return self.sock.recv(4096).decode().split("\n")

    def pending(self) -> list[list[str]]:
        messages = []
        self.sock.setblocking(False)
        try:
            while True:
                messages.append(self.sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(5.0)
        return messages


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    m = Manager(str(tmp_path / "notify"))
    yield m
    m.sock.close()


@pytest.fixture
def abstract_manager() -> Iterator[Manager]:
    m = Manager(f"@linegram-test-{secrets.token_hex(6)}")
    yield m
    m.sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert notifier.ready() is False
    assert notifier.ping() is False
    assert notifier.stopping("bye") is False


def test_ready_with_status_is_one_datagram(manager: Manager) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": manager.address})
    assert notifier.ready("running")
    assert manager.receive() == ["READY=1", "STATUS=running"]
    notifier.close()


def test_abstract_socket(abstract_manager: Manager) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": abstract_manager.address})
    assert notifier.reloading()
    assert abstract_manager.receive() == ["RELOADING=1"]
    notifier.close()


def test_status_text_cannot_inject_fields(manager: Manager) -> None:
    notifier = Notifier(manager.address)
    notifier.status("two\nREADY=1")
    assert manager.receive() == ["STATUS=two READY=1"]
    notifier.close()


def test_missing_socket_logs_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "nobody"))
    with caplog.at_level(logging.WARNING, logger="gateway.service"):
        assert notifier.ready() is False
        assert notifier.stopping() is False
    assert len(caplog.records) == 1
    assert "cannot notify systemd" in caplog.records[0].getMessage()


def test_a_full_queue_does_not_block(manager: Manager, caplog: pytest.LogCaptureFixture) -> None:
    # Nobody reads: the kernel's queue fills and a blocking send would hang here.
    notifier = Notifier(manager.address)
    with caplog.at_level(logging.WARNING, logger="gateway.service"):
        results = [notifier.status(f"{n}") for n in range(5000)]
    assert results[0] is True
    assert False in results
    assert len(caplog.records) == 1
    notifier.close()


def test_watchdog_usec_for_another_pid_is_ignored(manager: Manager) -> None:
    env = {"NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_environ(env).watchdog_interval == 15.0
    assert Notifier.from_environ({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_usec
    assert Notifier.from_environ({**env, "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier.from_environ({**env, "WATCHDOG_USEC": "x"}).watchdog_interval is None


async def test_watchdog_pings_while_the_loop_turns_and_not_while_it_is_blocked(
    manager: Manager,
) -> None:
    notifier = Notifier(manager.address, watchdog_usec=100_000)  # a ping every 50 ms
    notifier.start_watchdog()
    await asyncio.sleep(0.3)
    assert manager.pending().count(["WATCHDOG=1"]) >= 3
    time.sleep(0.5)  # noqa: ASYNC251 -- on purpose: a blocked loop must send no ping
    assert manager.pending() == []
    await asyncio.sleep(0.2)
    assert ["WATCHDOG=1"] in manager.pending()
    await notifier.stop_watchdog()
    manager.pending()
    await asyncio.sleep(0.2)
    assert manager.pending() == []
    notifier.close()


class FakeGateway:
    """Starts, then asks for a restart or lets SIGTERM stop it."""

    def __init__(self, restart: bool) -> None:
        self.restart = restart
        self.on_restart: Callable[[], None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.restart:
            assert self.on_restart is not None
            loop.call_soon(self.on_restart)
        else:
            loop.call_soon(os.kill, os.getpid(), 15)

    async def stop(self) -> None:
        pass


@pytest.mark.parametrize(("restart", "last"), [(False, "STOPPING=1"), (True, "RELOADING=1")])
async def test_main_tells_systemd_ready_then_stopping_or_reloading(
    manager: Manager, tmp_path: Path, restart: bool, last: str
) -> None:
    config: Config = default_config(tmp_path)
    store = Store.open(tmp_path / "linegram.db")
    notifier = Notifier(manager.address, watchdog_usec=60_000_000)
    try:
        result = await main(config, store, lambda c, s, p: FakeGateway(restart), None, notifier)
    finally:
        store.close()
    assert result is restart
    messages = [m for m in manager.pending() if m != ["WATCHDOG=1"]]
    assert [m[0] for m in messages] == ["READY=1", last]
    assert notifier._watchdog is None  # stopped with the gateway
    notifier.close()
