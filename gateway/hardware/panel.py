"""The front panel: the gateway's status on the LEDs, the button's presses to the gateway.

Not an RFC module.  :class:`FrontPanel` polls the gateway in process every
:data:`POLL` seconds (a few dictionary look-ups and one indexed count in the
store: cheap), turns that into a :class:`~gateway.hardware.indicator.Snapshot`
and shows it; the LED board only switches what changed.  It starts with the
LED self-test, in its own task, so the gateway's start never waits for it.
Presses go to the local handset (``gateway.handset``: ``short_press()``,
``reject()``) and a long one starts setup mode.  Without GPIO it logs one line
and the gateway carries on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.hardware.button import Action, HomeButton, classify, decide
from gateway.hardware.indicator import Pattern, Snapshot, led_patterns, rgb_light
from gateway.hardware.leds import SELF_TEST_STEP, LedBoard, fitted, open_board
from gateway.hardware.setupmode import (
    enter_setup_mode,
    leave_setup_mode,
    setup_mode_path,
    setup_mode_until,
)
from gateway.sip.call import CallState

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.config import Config

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between looks at the gateway's state


class FrontPanel:
    def __init__(
        self,
        gateway: Gateway,
        *,
        pin_factory: Any = None,
        poll: float = POLL,
        self_test_step: float = SELF_TEST_STEP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.pin_factory = pin_factory  # None: gpiozero's default (lgpio on a Pi)
        self.poll = poll
        self.self_test_step = self_test_step
        self.clock = clock
        self.board: LedBoard | None = None
        self.button: HomeButton | None = None
        self.setup_until: float | None = None  # setup mode ends then (None: off)
        self._tasks: set[asyncio.Task[None]] = set()
        self._tick_failed = False

    # -- life ------------------------------------------------------------------

    def start(self) -> None:
        """Claim the pins of ``[leds]`` and ``[button]``; log once if there is no GPIO."""
        config = self.gateway.config
        self.setup_until = setup_mode_until(config.data_dir, self.clock())
        problems: list[str] = []
        if fitted(config.leds):
            self.board, why = open_board(config.leds, self.pin_factory)
            if self.board is None:
                problems.append(f"status LEDs: {why}")
        pin, pull_up = _button_settings(config)
        if pin is not None:
            try:
                self.button = HomeButton(
                    pin,
                    pull_up=pull_up,
                    on_press=self.on_press,
                    on_long=self.on_long_press,
                    pin_factory=self.pin_factory,
                )
            except Exception as exc:  # no GPIO here, or the pin is busy
                problems.append(f"button: {type(exc).__name__}: {exc}")
        if problems:
            log.warning(
                "status LEDs and button are off (no GPIO here, or a pin is busy): %s",
                "; ".join(problems),
            )
        if self.board is not None:
            self._spawn(self._run(self.board))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.board is not None:
            self.board.show(dict.fromkeys(self.board.leds, Pattern.OFF))
            self.board.close()
            self.board = None
        if self.button is not None:
            self.button.close()
            self.button = None

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, board: LedBoard) -> None:
        await board.self_test(self.self_test_step)
        while True:
            self.refresh(board)
            await asyncio.sleep(self.poll)

    def refresh(self, board: LedBoard) -> None:
        """Show the gateway's state now (one poll)."""
        try:
            snapshot = self.snapshot()
        except Exception:
            if not self._tick_failed:  # once: a broken store must not flood the log
                log.exception("status LEDs: cannot read the gateway's state")
                self._tick_failed = True
            return
        board.show(led_patterns(snapshot))
        board.show_rgb(rgb_light(snapshot))

    # -- state -----------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        gw = self.gateway
        account = gw.telegram.account.status
        groups = gw.manager.r.groups
        calls = gw.manager.active_calls()
        # SIP calls up count too: the echo test has no member, the handset's none either.
        sip_up = any(call.state is CallState.UP for call in gw.active_calls())
        in_call = sip_up or any(call.state != "ringing" for call in calls)
        return Snapshot(
            lines=tuple(gw.line_status(name).state for name in gw.lines),
            telegram=account.state.value,
            telegram_error=account.error is not None,
            ringing=any(group.winner is None for group in groups),
            in_call=in_call,
            missed=gw.store.missed_waiting(),
            setup_mode=self.in_setup_mode(),
        )

    def in_setup_mode(self) -> bool:
        """Setup mode is on until it expires or the web UI used it (deleted the file)."""
        if self.setup_until is None:
            return False
        data_dir = self.gateway.config.data_dir
        if self.clock() >= self.setup_until:
            leave_setup_mode(data_dir)
            self.setup_until = None
            log.info("setup mode ended (expired)")
        elif not setup_mode_path(data_dir).exists():
            self.setup_until = None
            log.info("setup mode ended (the web UI used it)")
        return self.setup_until is not None

    # -- the button ------------------------------------------------------------

    def on_press(self, held: float) -> None:
        handset = getattr(self.gateway, "handset", None)
        action = decide(
            classify(held), handset=handset is not None, ringing=self._handset_ringing(handset)
        )
        log.info("button: pressed %.1f s: %s", held, action.value if action else "nothing to do")
        if action is Action.ANSWER_OR_HANG_UP:
            self._call(handset, "short_press")
        elif action is Action.REJECT:
            self._call(handset, "reject")
        elif action is Action.SETUP_MODE:
            self.on_long_press()

    def on_long_press(self) -> None:
        self.setup_until = enter_setup_mode(self.gateway.config.data_dir, self.clock())
        log.warning("setup mode: the web UI offers a new admin password for 10 minutes")
        if self.board is not None:
            self.refresh(self.board)  # blink at once, not at the next poll

    def _handset_ringing(self, handset: Any) -> bool:
        if handset is None:
            return False
        ringing = getattr(handset, "ringing", None)
        if callable(ringing):
            ringing = ringing()
        if isinstance(ringing, bool):
            return ringing
        # A handset without its own flag rings with every ring group it joins.
        return any(group.winner is None for group in self.gateway.manager.r.groups)

    def _call(self, handset: Any, name: str) -> None:
        result = getattr(handset, name)()
        if inspect.isawaitable(result):
            self._spawn(_logged(result, name))


async def _logged(awaitable: Any, what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("button: handset %s failed", what)


def _button_settings(config: Config) -> tuple[int | None, bool]:
    return config.button.pin, config.button.pull_up
