"""The ``world`` fixture: a simulated Telegram on 127.0.0.1 (see tests/telegram/simworld.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simcloud.client import SIM_API_HASH, SIM_API_ID
from simcloud.server import CloudServer
from simcloud.world import build_cloud
from tests.telegram.simworld import GATEWAY_PHONE, World


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    cloud = build_cloud()
    vars(cloud)["state"].add_app(SIM_API_ID, SIM_API_HASH)
    gateway_user = vars(cloud)["state"].add_user(
        phone=GATEWAY_PHONE, first_name="Home", last_name="Gateway", username="home_gateway"
    )
    async with CloudServer(cloud, "127.0.0.1", 0) as server:
        key_file = tmp_path / "sim.pem"
        key_file.write_bytes(server.key.public_pem)
        w = World(cloud, server, tmp_path, key_file, gateway_user)
        try:
            yield w
        finally:
            for close in reversed(w.closers):
                with contextlib.suppress(Exception):
                    result = close()
                    if result is not None:
                        await asyncio.wait_for(result, 10)
