"""Where the web UI finds the gateway: its settings file, data directory and control socket."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config, load_config

CONTROL_SOCKET = "control.sock"  # gateway.app.CONTROL_SOCKET, in the data directory
STATE_DIR = "webui"  # the web UI's own files, in the data directory


@dataclass(frozen=True)
class WebSettings:
    config_path: Path  # the gateway's settings file, edited by the Lines and Settings pages
    data_dir: Path
    listen: str = "127.0.0.1"
    port: int = 8080
    # Seconds a control-API call may take; the login steps talk to Telegram and take longer.
    control_timeout: float = 10.0

    @property
    def control_socket(self) -> Path:
        return self.data_dir / CONTROL_SOCKET

    @property
    def state_dir(self) -> Path:
        return self.data_dir / STATE_DIR

    @property
    def database(self) -> Path:
        return self.data_dir / "linegram.db"

    @classmethod
    def from_config(cls, config_path: Path | str) -> WebSettings:
        """Read the gateway's settings file (which also holds `[webui]`)."""
        path = Path(config_path).resolve()
        config = load_config(path)
        return cls.from_loaded(config, path)

    @classmethod
    def from_loaded(cls, config: Config, path: Path) -> WebSettings:
        webui = getattr(config, "webui", None)  # [webui] is optional in older files
        listen = getattr(webui, "listen", "127.0.0.1")
        port = int(getattr(webui, "port", 8080))
        return cls(config_path=path, data_dir=config.data_dir, listen=listen, port=port)
