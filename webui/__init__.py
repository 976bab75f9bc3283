"""The local web UI: a Flask app (factory + blueprints) served by waitress.

It is its own process.  It talks to the gateway only through the control API
(Unix socket, gateway/control.py) and reads the gateway's SQLite store and
settings file; a crashed or restarted web UI never touches a call.  Pages:
first run and wizard, dashboard, lines, members and invitations, call
history, settings, forwarding helper, system.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from flask import Flask

from webui.admin import AdminAccount
from webui.context import WebContext, close_store
from webui.gateway import GatewayClient
from webui.security import init_security
from webui.settings import WebSettings

# webui/views/<name>.py, each with a Blueprint `bp` of that name.
BLUEPRINTS = (
    "health",
    "auth",
    "dashboard",
    "wizard",
    "lines",
    "members",
    "history",
    "settings",
    "forwarding",
    "system",
)


def create_app(settings: WebSettings | Path | str, **overrides: Any) -> Flask:
    """The web UI for the gateway whose settings file (or WebSettings) is given."""
    if not isinstance(settings, WebSettings):
        settings = WebSettings.from_config(settings)
    app = Flask(__name__)
    admin = AdminAccount(settings.state_dir)
    app.secret_key = admin.secret_key()
    app.extensions["linegram"] = WebContext(
        settings, admin, GatewayClient(settings.control_socket, settings.control_timeout)
    )
    init_security(app)
    app.config.update(overrides)
    app.teardown_appcontext(close_store)

    for name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(f"webui.views.{name}").bp)
    from webui.views import auth

    app.before_request(auth.require_login)

    from webui.views.helpers import register_template_helpers

    register_template_helpers(app)
    return app
