"""The web UI's side of the control API: blocking calls from request threads.

A gateway that is not running is an ordinary state, not a crash: pages show
it (:class:`GatewayDown`) and keep working from the store where they can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.control import ControlError, call_sync

__all__ = ["ControlError", "GatewayClient", "GatewayDown"]

# Sign-in steps wait for Telegram (connect 20 s, a request up to 60 s in gateway.telegram.login).
SLOW_METHODS = {
    "telegram.login.app": 90.0,
    "telegram.login.phone": 90.0,
    "telegram.login.code": 90.0,
    "telegram.login.password": 90.0,
    "telegram.login.resend": 90.0,
    "telegram.login.log_out": 30.0,
    "telegram.bot.set_token": 40.0,
    "members.check_privacy": 30.0,
    "config.reload": 20.0,
}


class GatewayDown(ControlError):
    """The gateway does not answer (not running, restarting, or too slow)."""


@dataclass(frozen=True)
class GatewayClient:
    socket: Path
    timeout: float = 10.0

    def call(self, method: str, /, **params: Any) -> Any:
        """The method's result. **Raises** GatewayDown, or ControlError with the gateway's code."""
        timeout = SLOW_METHODS.get(method, self.timeout)
        try:
            return call_sync(self.socket, method, timeout=timeout, **params)
        except ControlError as exc:
            if exc.code in ("unavailable", "timeout", "bad_response"):
                raise GatewayDown(exc.code, exc.message) from exc
            raise

    def status(self) -> dict[str, Any] | None:
        """The gateway's status, or None when it is down."""
        try:
            result: dict[str, Any] = self.call("status")
        except GatewayDown:
            return None
        return result
