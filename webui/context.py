"""What every request needs: settings, admin account, gateway client, the store."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g

from gateway.store import Store
from webui.admin import AdminAccount
from webui.gateway import GatewayClient
from webui.settings import WebSettings


@dataclass(frozen=True)
class WebContext:
    settings: WebSettings
    admin: AdminAccount
    gateway: GatewayClient


def web() -> WebContext:
    context: WebContext = current_app.extensions["linegram"]
    return context


def store() -> Store:
    """The gateway's database, opened once per request (SQLite connections stay in one thread)."""
    if "store" not in g:
        g.store = Store.open(web().settings.database)
    opened: Store = g.store
    return opened


def close_store(_exc: BaseException | None = None) -> None:
    opened = g.pop("store", None)
    if opened is not None:
        opened.close()
