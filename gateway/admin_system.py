"""Control-API methods for the web UI's Lines, Settings and System pages (docs/control-api.md).

``config.reload`` applies the settings file the web UI saved, ``lines.retry``
registers a provider line now, ``logs.recent`` reads the in-memory log
buffer (:class:`gateway.logs.RecentLogs`), ``gateway.restart`` stops the
gateway and starts the process again.  Merged into the gateway's methods by
:func:`gateway.calls.api.gateway_methods`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.config import ConfigError
from gateway.control import ControlError, Handler, Params
from gateway.logs import LEVELS, recent_logs
from gateway.store import NotFound

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["LOG_LIMIT_DEFAULT", "LOG_LIMIT_MAX", "system_methods"]

LOG_LIMIT_DEFAULT = 200
LOG_LIMIT_MAX = 1000  # = the buffer's size


def system_methods(gateway: Gateway) -> dict[str, Handler]:
    async def config_reload(params: dict[str, Any]) -> Any:
        Params(params).done()
        if gateway.config_path is None:
            raise ControlError(
                "unsupported", "the gateway was started without a settings file: nothing to reload"
            )
        try:
            return await gateway.reload()
        except ConfigError as exc:  # ConfigInvalid too: every problem, naming its field
            raise ControlError("invalid", str(exc)) from None

    async def lines_retry(params: dict[str, Any]) -> Any:
        p = Params(params)
        name = p.optional_str("name")
        p.done()
        if name is None:
            raise ValueError("name is required")
        try:
            return await gateway.retry_line(name)
        except KeyError:
            raise NotFound(f"no line named {name!r} is running") from None

    async def logs_recent(params: dict[str, Any]) -> Any:
        p = Params(params)
        limit = p.integer("limit", default=LOG_LIMIT_DEFAULT, low=1, high=LOG_LIMIT_MAX)
        level = p.optional_str("level", tuple(LEVELS)) or "debug"
        p.done()
        buffer = recent_logs()
        return buffer.entries(limit, level) if buffer is not None else []

    async def gateway_restart(params: dict[str, Any]) -> Any:
        Params(params).done()
        try:
            gateway.request_restart()
        except RuntimeError as exc:
            raise ControlError("unsupported", str(exc)) from None
        return {"restarting": True}

    return {
        "config.reload": config_reload,
        "lines.retry": lines_retry,
        "logs.recent": logs_recent,
        "gateway.restart": gateway_restart,
    }
