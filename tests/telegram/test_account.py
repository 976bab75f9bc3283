"""TelegramAccount: session file, connection state, reconnection, members, demo server."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from pytgcalls.pytgcalls_session import PyTgCallsSession
from telethon.tl import functions

from gateway.config import ConfigError, Secret, parse_config
from gateway.telegram import account as account_module
from gateway.telegram.account import (
    ConnectionState,
    TelegramAccount,
    load_server_key,
    prepare_session_file,
)
from gateway.telegram.errors import NotReady
from simcloud.server import CloudServer
from tests.telegram.simworld import World, eventually, record

CONNECTED = ConnectionState.CONNECTED
CONNECTING = ConnectionState.CONNECTING


def test_session_file_is_private_even_when_it_was_not(tmp_path: Path) -> None:
    directory = tmp_path / "telegram"
    directory.mkdir(mode=0o755)
    path = directory / "gateway.session"
    path.write_bytes(b"")
    path.chmod(0o644)
    journal = directory / "gateway.session-journal"
    journal.write_bytes(b"")
    journal.chmod(0o644)
    prepare_session_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700

    fresh = tmp_path / "new" / "deeper" / "x.session"
    old_umask = os.umask(0)  # even a careless umask gives a private file
    try:
        prepare_session_file(fresh)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700


async def test_signed_in_session_is_private_and_survives_a_restart(world: World) -> None:
    account = await world.signed_in_account()
    client = account.client
    assert client._sequential_updates is False  # py-tgcalls answers inside update handlers
    assert PyTgCallsSession.notice_displayed is True  # no version check over the internet
    await account.stop()
    assert account.state is ConnectionState.DISCONNECTED
    assert stat.S_IMODE(world.session_path.stat().st_mode) == 0o600
    journal = world.session_path.with_name("gateway.session-journal")
    assert not journal.exists() or stat.S_IMODE(journal.stat().st_mode) == 0o600

    again = world.account()
    seen = record(again)
    await again.start()
    status = await again.wait_for(CONNECTED, timeout=10)
    assert status.user is not None and status.user.user_id == world.gateway_user.id
    assert status.user.name == "Home Gateway"
    assert [s.state for s in seen] == [CONNECTING, CONNECTED]
    assert "SignInRequest" in world.cloud.request_log  # once, by the first account only
    assert world.cloud.request_log.count("SignInRequest") == 1


async def test_log_out_removes_the_session_file(world: World) -> None:
    account = await world.signed_in_account()
    keys_before = world.state.keys_of(world.gateway_user.id)
    assert len(keys_before) == 1
    await account.log_out()
    assert account.state is ConnectionState.LOGGED_OUT
    assert account.user is None
    assert not world.session_path.exists()
    assert world.state.keys_of(world.gateway_user.id) == []
    assert "LogOutRequest" in world.cloud.request_log
    with pytest.raises(NotReady):
        account.client  # noqa: B018 - no client until the next login asks for one


async def test_reconnects_after_the_connection_drops(world: World) -> None:
    account = await world.signed_in_account()
    seen = record(account)
    dropped = world.cloud.drop_connections()
    assert dropped >= 1
    await eventually(lambda: any(s.state is CONNECTING for s in seen))
    status = await account.wait_for(CONNECTED, timeout=10)
    assert status.error is None
    states = [s.state for s in seen]
    assert states[-1] is CONNECTED
    assert states.index(CONNECTING) < len(states) - 1
    connecting = next(s for s in seen if s.state is CONNECTING)
    assert connecting.error is not None and connecting.user is not None
    # The client works again, with the same user.
    me = await asyncio.wait_for(account.client.get_me(), 10)
    assert me.id == world.gateway_user.id


async def test_keeps_retrying_with_backoff_through_a_long_outage(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Telethon's own retries quickly used up, so ours (with back-off) take over.
    monkeypatch.setattr(account_module, "TELETHON_RETRIES", 0)
    monkeypatch.setattr(account_module, "TELETHON_RETRY_DELAY", 0.05)
    account = await world.signed_in_account()
    seen = record(account)
    host, port, key = world.server.host, world.server.port, world.server.key
    await world.server.close()
    waiting = await account.wait_for(ConnectionState.DISCONNECTED, timeout=20)
    assert waiting.retry_in is not None and waiting.retry_in > 0
    assert waiting.error is not None and waiting.error.startswith("Cannot reach Telegram")
    # Several attempts, with growing delays (FAST back-off: 0.05, 0.1, 0.2, 0.2...).
    await eventually(
        lambda: len([s for s in seen if s.state is ConnectionState.DISCONNECTED]) >= 3, 20
    )
    delays = [s.retry_in for s in seen if s.state is ConnectionState.DISCONNECTED]
    assert delays[:3] == [0.05, 0.1, 0.2]

    async with CloudServer(world.cloud, host, port, key=key):
        status = await account.wait_for(CONNECTED, timeout=20)
        assert status.user is not None and status.error is None
        me = await asyncio.wait_for(account.client.get_me(), 10)
        assert me.id == world.gateway_user.id
        await account.stop()


async def test_session_ended_elsewhere_shows_logged_out(world: World) -> None:
    account = await world.signed_in_account()
    for key in world.state.keys_of(world.gateway_user.id):
        world.state.log_out(key)  # "terminate all other sessions" from a phone
    world.cloud.drop_connections()
    status = await account.wait_for(ConnectionState.LOGGED_OUT, timeout=10)
    assert status.error is not None and "logged out" in status.error
    assert account.user is None


async def test_damaged_session_file_is_set_aside(world: World) -> None:
    world.session_path.parent.mkdir(parents=True)
    world.session_path.write_bytes(b"this is not an SQLite database" * 100)
    account = world.account()
    await account.start()
    await account.wait_for(ConnectionState.NEEDS_LOGIN, timeout=10)
    damaged = world.session_path.with_name("gateway.session.damaged")
    assert damaged.read_bytes().startswith(b"this is not")
    assert stat.S_IMODE(damaged.stat().st_mode) == 0o600
    assert stat.S_IMODE(world.session_path.stat().st_mode) == 0o600


async def test_without_an_api_app_the_account_waits_for_login(world: World) -> None:
    account = world.account(api_id=0, api_hash=Secret(""))
    await account.start()
    assert account.state is ConnectionState.NEEDS_LOGIN
    assert not account.has_app
    with pytest.raises(NotReady, match="not set up yet"):
        account.client  # noqa: B018


async def test_remembered_member_resolves_after_a_restart(world: World) -> None:
    member, sim_member = await world.member("+999 66 1001", "Alice", "alice_home")
    account = await world.signed_in_account()
    client = account.client
    with pytest.raises(ValueError):
        await client.get_input_entity(sim_member.id)  # never met: Telethon cannot find her
    stored_hash = world.state.access_hash(world.gateway_user, sim_member)
    account.remember(sim_member.id, stored_hash)
    peer = await client.get_input_entity(sim_member.id)
    assert (peer.user_id, peer.access_hash) == (sim_member.id, stored_hash)

    await account.stop()
    again = world.account()
    await again.start()
    await again.wait_for(CONNECTED, timeout=10)
    user = await again.ensure_known(sim_member.id, stored_hash)
    assert user is not None and user.first_name == "Alice"
    peer = await again.client.get_input_entity(sim_member.id)
    assert peer.access_hash == stored_hash
    assert await again.ensure_known(sim_member.id, stored_hash + 1) is None
    assert member is not None


async def test_flood_wait_above_the_threshold_raises_with_seconds(world: World) -> None:
    from simcloud.cloud import FloodRule

    account = await world.signed_in_account(options={"flood_sleep_threshold": 2})
    world.cloud.faults.flood.append(FloodRule("GetFullUserRequest", seconds=120))
    from telethon import errors as tg

    from gateway.telegram.errors import describe

    with pytest.raises(tg.FloodWaitError) as info:
        await account.client(functions.users.GetFullUserRequest(account.input_user(1, 1)))
    assert describe(info.value) == "Telegram asks to wait 2 min before trying again."


def test_server_key_is_checked_and_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^telegram\.server\.public_key: cannot read .*missing"):
        load_server_key(tmp_path / "missing.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN RSA PUBLIC KEY-----\nnot a key\n-----END RSA PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="is not an RSA public key in PEM format"):
        load_server_key(bad)


async def test_demo_server_comes_from_the_config(world: World) -> None:
    config = parse_config(
        {
            "gateway": {"data_dir": "state"},
            "telegram": {
                "api_id": world.settings().api_id,
                "api_hash": world.settings().api_hash.reveal(),
                "server": {
                    "address": f"{world.server.host}:{world.server.port}",
                    "public_key": world.key_file.name,
                },
            },
        },
        base_dir=world.tmp,
    )
    account = TelegramAccount.from_config(config, backoff=(0.05,), watch_interval=0.05)
    world.closers.append(account.stop)
    await account.start()
    status = await account.wait_for(ConnectionState.NEEDS_LOGIN, timeout=10)
    assert status.error is None
    assert account.session_path == world.tmp / "state" / "telegram" / "gateway.session"
    assert account.client.session.server_address == world.server.host
    assert account.client.session.port == world.server.port
