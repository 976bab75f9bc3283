"""Shared pieces of the world tests: a fake session, devices and the usual fixtures.

`Device` plays one signed-in auth key: it records what the cloud pushes to it
and serialises every push and result, so a missing TL field fails a test too.
Test modules re-export the fixtures they use (`cloud = world_support.cloud`).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from telethon.tl import TLObject, types

from simcloud.cloud import Caller, Cloud, RpcError
from simcloud.state import SimUser
from simcloud.world import build_cloud

API_ID, API_HASH = 100001, "5ca1ab1e" * 4
_keys = itertools.count(0x1000)


class FakeSink:
    """A live session that records pushes instead of sending them."""

    def __init__(self, auth_key_id: int) -> None:
        self.auth_key_id = auth_key_id
        self.session_id = auth_key_id * 7
        self.no_updates = False
        self.closed = False
        self.pushed: list[Any] = []
        self.arrived = asyncio.Event()

    def push(self, updates: Any) -> None:
        bytes(updates)  # must serialise, as the real server would do it
        self.pushed.append(updates)
        self.arrived.set()

    def close(self) -> None:
        self.closed = True


class Device:
    """One auth key (a phone, a desktop app, a bot process) with a live session."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.sink = FakeSink(next(_keys))
        self.caller = Caller(auth_key_id=self.sink.auth_key_id, session=self.sink)
        self._taken: set[int] = set()
        cloud.attach(self.sink)

    async def __call__(self, request: Any) -> Any:
        result = await self.cloud.invoke(self.caller, request)
        if isinstance(result, TLObject):
            bytes(result)
        return result

    def updates(self, kind: type | None = None) -> list[Any]:
        """Every pushed update, in order (optionally only one class)."""
        found = [u for envelope in self.sink.pushed for u in envelope.updates]
        return [u for u in found if kind is None or isinstance(u, kind)]

    def clear(self) -> None:
        self.sink.pushed.clear()

    async def next_update(self, kind: type, timeout: float = 2.0) -> Any:
        """Wait for the first pushed update of `kind` not yet taken, and take it."""
        async with asyncio.timeout(timeout):
            while True:
                for envelope in self.sink.pushed:
                    for u in envelope.updates:
                        if isinstance(u, kind) and id(u) not in self._taken:
                            self._taken.add(id(u))
                            return u
                self.sink.arrived.clear()
                await self.sink.arrived.wait()


def signed_in(cloud: Cloud, user: SimUser) -> Device:
    device = Device(cloud)
    cloud.state.authorize(device.caller.auth_key_id, user)
    return device


def input_user(cloud: Cloud, viewer: SimUser, target: SimUser) -> types.InputUser:
    return types.InputUser(target.id, cloud.state.access_hash(viewer, target))


def input_peer(cloud: Cloud, viewer: SimUser, target: SimUser) -> types.InputPeerUser:
    return types.InputPeerUser(target.id, cloud.state.access_hash(viewer, target))


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cloud(clock: Clock) -> Cloud:
    cloud = build_cloud(clock=clock)
    cloud.state.add_app(API_ID, API_HASH)
    return cloud


@pytest.fixture
def alice(cloud: Cloud) -> SimUser:
    return cloud.state.add_user(phone="+999 66 1001", first_name="Alice", username="alice_h")


@pytest.fixture
def bob(cloud: Cloud) -> SimUser:
    return cloud.state.add_user(phone="+99966 1002", first_name="Bob")


async def rpc_error(device: Device, request: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        await device(request)
    return info.value
