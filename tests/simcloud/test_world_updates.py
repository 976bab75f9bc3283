"""updates.getState / getDifference replay exactly what a device missed."""

from __future__ import annotations

from typing import Any

from telethon.tl import functions, types

from simcloud.cloud import Cloud
from simcloud.state import SimUser
from tests.simcloud import world_support as ws
from tests.simcloud.world_support import Device, input_peer, rpc_error, signed_in

clock, cloud, alice, bob = ws.clock, ws.cloud, ws.alice, ws.bob


async def difference(device: Device, pts: int, limit: int | None = None) -> Any:
    return await device(
        functions.updates.GetDifferenceRequest(pts=pts, date=None, qts=0, pts_total_limit=limit)
    )


async def test_nothing_missed_is_empty(cloud: Cloud, alice: SimUser) -> None:
    a = signed_in(cloud, alice)
    state = await a(functions.updates.GetStateRequest())
    diff = await difference(a, state.pts)
    assert isinstance(diff, types.updates.DifferenceEmpty)
    assert (await rpc_error(Device(cloud), functions.updates.GetStateRequest())).code == 401


async def test_difference_replays_messages_and_other_updates(
    cloud: Cloud, alice: SimUser, bob: SimUser
) -> None:
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    start = (await b(functions.updates.GetStateRequest())).pts
    for text in ("one", "two", "three"):
        await a(functions.messages.SendMessageRequest(input_peer(cloud, alice, bob), text))
    await a(functions.messages.EditMessageRequest(input_peer(cloud, alice, bob), 1, message="ONE"))
    await a(functions.messages.DeleteMessagesRequest([2], revoke=True))
    state = await b(functions.updates.GetStateRequest())
    assert state.pts == start + 5 and state.unread_count == 2

    diff = await difference(b, start)
    assert isinstance(diff, types.updates.Difference)
    # New messages in their current form; the deleted one is gone.
    assert [(m.id, m.message) for m in diff.new_messages] == [(1, "ONE"), (3, "three")]
    kinds = [(type(u).__name__, u.pts) for u in diff.other_updates]
    assert kinds == [("UpdateEditMessage", start + 4), ("UpdateDeleteMessages", start + 5)]
    assert diff.state.pts == state.pts
    assert {u.id for u in diff.users} == {alice.id, bob.id}
    # Pushes and the difference agree on every pts.
    pushed = [u.pts for u in b.updates() if getattr(u, "pts", None)]
    assert pushed == list(range(start + 1, start + 6))


async def test_long_gaps_come_in_slices(cloud: Cloud, alice: SimUser, bob: SimUser) -> None:
    cloud.updates.difference_limit = 4
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    pts = (await b(functions.updates.GetStateRequest())).pts
    for i in range(10):
        await a(functions.messages.SendMessageRequest(input_peer(cloud, alice, bob), f"m{i}"))
    got: list[str] = []
    for _ in range(10):
        diff = await difference(b, pts)
        got += [m.message for m in diff.new_messages]
        if isinstance(diff, types.updates.Difference):
            break
        assert isinstance(diff, types.updates.DifferenceSlice)
        pts = diff.intermediate_state.pts
    assert got == [f"m{i}" for i in range(10)]


async def test_too_old_or_future_pts_is_too_long(
    cloud: Cloud, alice: SimUser, bob: SimUser
) -> None:
    cloud.updates.log_limit = 3
    a, b = signed_in(cloud, alice), signed_in(cloud, bob)
    start = (await b(functions.updates.GetStateRequest())).pts
    for i in range(5):
        await a(functions.messages.SendMessageRequest(input_peer(cloud, alice, bob), f"m{i}"))
    diff = await difference(b, start)
    assert isinstance(diff, types.updates.DifferenceTooLong) and diff.pts == start + 5
    diff = await difference(b, start + 999)
    assert isinstance(diff, types.updates.DifferenceTooLong) and diff.pts == start + 5
    diff = await difference(b, start + 3)
    assert [m.message for m in diff.new_messages] == ["m3", "m4"]
