"""A web UI on a settings file in a temporary directory, logged in, for the page tests.

By default no gateway runs: its control socket is absent, so the pages take
the "gateway not running" path (GatewayDown).  :class:`StubGateway` serves
chosen control methods on the real socket (gateway.control.ControlServer in a
thread) for the tests of what the pages do with the gateway's answers.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from gateway.control import ControlServer
from webui import create_app

ADMIN_PASSWORD = "correct horse battery staple"

SETTINGS = """\
[gateway]
data_dir = "data"

[[lines]]
name = "home"
kind = "provider"
registrar = "sip.example.net"
username = "4930123456"
password = "provider-secret-1"
country_code = "49"

[[lines]]
name = "landline"
kind = "ata"
username = "ata"
password = "ata-secret-2"
allow = ["192.168.1.20"]
"""

_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


@dataclass
class Site:
    app: Flask
    client: FlaskClient
    settings_file: Path

    def html(self, path: str, status: int = 200) -> str:
        response = self.client.get(path)
        assert response.status_code == status, (path, response.status_code)
        return response.get_data(as_text=True)

    def csrf(self, path: str = "/lines") -> str:
        match = _CSRF.search(self.html(path))
        assert match is not None
        return match.group(1)

    def post(self, path: str, data: dict[str, Any], *, follow: bool = False) -> Any:
        """POST *data* with a valid CSRF token (taken from a page, as a browser would)."""
        form = {"csrf_token": self.csrf(), **data}
        return self.client.post(path, data=form, follow_redirects=follow)

    def text(self) -> str:
        return self.settings_file.read_text("utf-8")


def make_site(tmp_path: Path, settings: str = SETTINGS) -> Site:
    settings_file = tmp_path / "linegram.toml"
    settings_file.write_text(settings, "utf-8")
    settings_file.chmod(0o600)
    (tmp_path / "data").mkdir(exist_ok=True)
    app = create_app(settings_file)
    app.config["TESTING"] = True
    app.extensions["linegram"].admin.set_password(ADMIN_PASSWORD)
    client = app.test_client()
    with client.session_transaction() as session:
        session["since"] = time.time() + 1  # logged in after the password was set
    return Site(app, client, settings_file)


Method = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass
class StubGateway:
    """Control methods answered on the data directory's socket, as the gateway would.

    ``calls`` records (method, params) of every request.
    """

    socket: Path
    methods: dict[str, Method]
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: ControlServer | None = None

    def __enter__(self) -> StubGateway:
        def recorded(name: str, method: Method) -> Method:
            async def handler(params: dict[str, Any]) -> Any:
                self.calls.append((name, dict(params)))
                return await method(params)

            return handler

        loop = asyncio.new_event_loop()
        server = ControlServer(
            self.socket, {name: recorded(name, m) for name, m in self.methods.items()}
        )
        loop.run_until_complete(server.start())
        self._loop, self._server = loop, server
        self._thread = threading.Thread(target=loop.run_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        loop, server = self._loop, self._server
        assert loop is not None and server is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5)
        loop.close()

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]


def stub_gateway(site: Site, **methods: Method) -> StubGateway:
    """A StubGateway on *site*'s control socket; method names use _ for . (config_reload)."""
    socket = site.app.extensions["linegram"].settings.control_socket
    return StubGateway(socket, {name.replace("_", "."): m for name, m in methods.items()})
