"""End-to-end fixtures: a real gateway, real SIP peers and simulated members with real media.

Every test here needs ntgcalls media (``media`` marker: run through
``tools/in-netns.sh``) and the interop peers (sipp, baresip).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.scene import Scene
from tests.interop.conftest import logbook, media, peers, pytest_runtest_makereport  # noqa: F401
from tests.interop.peers.harness import Peers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.media)
            item.add_marker(pytest.mark.interop)


@pytest.fixture
async def scene(tmp_path: Path, peers: Peers) -> AsyncIterator[Scene]:  # noqa: F811
    async with Scene.build(tmp_path, peers) as built:
        yield built
