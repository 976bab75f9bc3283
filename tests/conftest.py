"""Project-wide test rules."""

from __future__ import annotations

import pytest

from simcloud.netns import private_netns_ready


@pytest.fixture(autouse=True)
def _media_needs_private_netns(request: pytest.FixtureRequest) -> None:
    """Tests marked `media` carry real WebRTC traffic: only inside tools/in-netns.sh.

    They fail rather than skip outside it, so a run that forgot the wrapper shows.
    """
    if request.node.get_closest_marker("media") is None:
        return
    reason = private_netns_ready()
    if reason is not None:
        pytest.fail(reason)
