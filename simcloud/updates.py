"""Per-account update sequences, live pushes and updates.getDifference.

Telegram gives each account one "common" sequence (pts): every message box
change (new, edited, deleted, read message) takes the next pts, and clients
detect gaps from it (core.telegram.org/api/updates).  The hub keeps a log of
those updates per account so `updates.getDifference` can replay exactly what a
client missed; pushes and RPC results must carry the same numbers or Telethon
falls into getDifference loops.  Updates without pts (phone calls, inline and
callback queries, typing) are only pushed to live sessions.

Sessions signed in as the account get every push except the device that caused
it (`exclude_session`), which learns the pts from its RPC result instead.
`seq` stays 0: every push is a plain `Updates` with seq 0, which clients accept
without a seq check.
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from telethon.tl import functions, types

from simcloud.cloud import Caller, Cloud, SessionSink, handler
from simcloud.state import State

UserRef = Any  # a SimUser, a types.User already rendered for the recipient, or a user id
MakeUpdate = Callable[[int, int], Any]


def tl_date(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)


@dataclass
class LoggedUpdate:
    pts: int
    pts_count: int
    update: Any
    user_ids: tuple[int, ...]
    date: int


@dataclass
class UpdateBox:
    """One account's common sequence and the log getDifference replays."""

    pts: int = 1
    qts: int = 0
    seq: int = 0
    date: int = 0
    log: deque[LoggedUpdate] = field(default_factory=deque)


class UpdateHub:
    """Numbers, records and delivers updates for every account."""

    def __init__(
        self, cloud: Cloud, state: State, log_limit: int = 10_000, difference_limit: int = 100
    ) -> None:
        self.cloud = cloud
        self.state = state
        self.log_limit = log_limit
        self.difference_limit = difference_limit
        self.boxes: dict[int, UpdateBox] = {}
        # Hooks set by simcloud.history: unread incoming messages, and the current
        # form of a logged message (None once deleted) for getDifference.
        self.unread_count: Callable[[int], int] = lambda user_id: 0
        self.current_message: Callable[[int, Any], Any | None] = lambda user_id, m: m

    def box(self, user_id: int) -> UpdateBox:
        box = self.boxes.get(user_id)
        if box is None:
            box = self.boxes[user_id] = UpdateBox(date=self.state.now())
        return box

    def get_state(self, user_id: int) -> types.updates.State:
        box = self.box(user_id)
        return types.updates.State(
            pts=box.pts,
            qts=box.qts,
            date=tl_date(box.date),
            seq=box.seq,
            unread_count=self.unread_count(user_id),
        )

    # -- live delivery -------------------------------------------------------------

    def sessions_of(
        self, user_id: int, exclude_session: SessionSink | Caller | None = None
    ) -> list[SessionSink]:
        """Live sessions signed in as `user_id`, minus the excluded device's auth key."""
        skip = exclude_session.auth_key_id if exclude_session is not None else None
        return [
            s
            for s in list(self.cloud.sessions)
            if self.state.authorizations.get(s.auth_key_id) == user_id
            and s.auth_key_id != skip
            and not getattr(s, "no_updates", False)
        ]

    def render_users(self, viewer_id: int, users: Iterable[UserRef]) -> list[types.User]:
        viewer = self.state.users.get(viewer_id)
        out: dict[int, types.User] = {}
        for ref in users:
            if isinstance(ref, types.User):
                out.setdefault(ref.id, ref)
                continue
            target = self.state.users.get(ref) if isinstance(ref, int) else ref
            if target is not None and viewer is not None:
                out.setdefault(target.id, self.state.user_view(target, viewer))
        return list(out.values())

    def envelope(
        self, user_id: int, updates: list[Any], users: Sequence[UserRef] = ()
    ) -> types.Updates:
        """`updates` for `user_id` in a plain Updates (seq 0): a push, or an RPC result
        of the Updates kind (edits, inline sends, deep links, discarded calls)."""
        return types.Updates(
            updates=updates,
            users=self.render_users(user_id, users),
            chats=[],
            date=tl_date(self.state.now()),
            seq=0,
        )

    def push(
        self,
        user_id: int,
        update: Any,
        users: Sequence[UserRef] = (),
        exclude_session: SessionSink | Caller | None = None,
    ) -> None:
        """Send a pts-less update (calls, bot queries, typing) to the account's sessions."""
        sinks = self.sessions_of(user_id, exclude_session)
        if not sinks:
            return
        envelope = self.envelope(user_id, [update], users)
        for sink in sinks:
            sink.push(envelope)

    def push_pts(
        self,
        user_id: int,
        make_update: MakeUpdate,
        users: Sequence[UserRef] = (),
        pts_count: int = 1,
        exclude_session: SessionSink | Caller | None = None,
    ) -> Any:
        """Give the account's next `pts_count` pts to `make_update(pts, pts_count)`,
        log the update for getDifference and push it; returns the update."""
        box = self.box(user_id)
        box.pts += pts_count
        box.date = self.state.now()
        update = make_update(box.pts, pts_count)
        ids = tuple(self._user_id(u) for u in users)
        box.log.append(LoggedUpdate(box.pts, pts_count, update, ids, box.date))
        while len(box.log) > self.log_limit:
            box.log.popleft()
        self.push(user_id, update, users, exclude_session)
        return update

    @staticmethod
    def _user_id(ref: UserRef) -> int:
        return ref if isinstance(ref, int) else cast(int, ref.id)

    # -- catching up ---------------------------------------------------------------

    def difference(self, user_id: int, pts: int, limit: int | None = None) -> Any:
        """updates.getDifference from the client's `pts`: Empty, Difference, Slice or TooLong."""
        box = self.box(user_id)
        if pts == box.pts:
            return types.updates.DifferenceEmpty(date=tl_date(box.date), seq=box.seq)
        oldest = box.log[0].pts - box.log[0].pts_count if box.log else box.pts
        if pts > box.pts or pts < oldest:
            # A client ahead of us (state from another cloud) or behind the log.
            return types.updates.DifferenceTooLong(pts=box.pts)
        pending = [e for e in box.log if e.pts > pts]
        limit = min(limit or self.difference_limit, self.difference_limit)
        chunk = pending[:limit]
        new_messages: list[Any] = []
        other_updates: list[Any] = []
        user_ids: set[int] = {user_id}
        for entry in chunk:
            user_ids.update(entry.user_ids)
            if isinstance(entry.update, types.UpdateNewMessage):
                current = self.current_message(user_id, entry.update.message)
                if current is not None:
                    new_messages.append(current)
            else:
                other_updates.append(entry.update)
        last = chunk[-1]
        state = types.updates.State(
            pts=last.pts,
            qts=box.qts,
            date=tl_date(last.date),
            seq=box.seq,
            unread_count=self.unread_count(user_id),
        )
        users = self.render_users(user_id, sorted(user_ids))
        if len(chunk) < len(pending):
            return types.updates.DifferenceSlice(
                new_messages=new_messages,
                new_encrypted_messages=[],
                other_updates=other_updates,
                chats=[],
                users=users,
                intermediate_state=state,
            )
        return types.updates.Difference(
            new_messages=new_messages,
            new_encrypted_messages=[],
            other_updates=other_updates,
            chats=[],
            users=users,
            state=state,
        )


def updates_of(cloud: Cloud) -> UpdateHub:
    """The cloud's UpdateHub (attached by simcloud.world.build_cloud)."""
    return cast(UpdateHub, vars(cloud)["updates"])


@handler(functions.updates.GetStateRequest)
async def get_state(
    cloud: Cloud, caller: Caller, req: functions.updates.GetStateRequest
) -> types.updates.State:
    user = updates_of(cloud).state.require_user(caller)
    return updates_of(cloud).get_state(user.id)


@handler(functions.updates.GetDifferenceRequest)
async def get_difference(
    cloud: Cloud, caller: Caller, req: functions.updates.GetDifferenceRequest
) -> Any:
    hub = updates_of(cloud)
    user = hub.state.require_user(caller)
    return hub.difference(user.id, req.pts, req.pts_total_limit)
