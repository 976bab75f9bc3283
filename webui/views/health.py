"""`/health`: for systemd, the image test and a load balancer of one. No login, no secrets."""

from __future__ import annotations

from flask import Blueprint

from webui.context import web

bp = Blueprint("health", __name__)


@bp.route("/health")
def health() -> tuple[dict[str, object], int]:
    # The web UI answers even when the gateway is down; say which.
    gateway_up = web().gateway.status() is not None
    return {"webui": "ok", "gateway": "ok" if gateway_up else "down"}, 200
