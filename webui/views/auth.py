"""First run (set the admin password), login, logout, and the login requirement."""

from __future__ import annotations

import time

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from webui.context import web
from webui.forms.auth import LoginForm, SetPasswordForm
from webui.security import LOGIN_LIMIT, LOGIN_LIMIT_ALL, failed_login, limiter

bp = Blueprint("auth", __name__)

# Reachable without a session (besides static files).
OPEN_ENDPOINTS = {"auth.login", "auth.first_run", "static", "health.health"}


def logged_in() -> bool:
    started = session.get("since")
    if not isinstance(started, (int, float)):
        return False
    # A password change logs every older session out.
    return started >= web().admin.load().password_changed_at


def require_login() -> BaseResponse | None:
    """before_request: first run → set a password; otherwise a session or the login page."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if not web().admin.has_password:
        return redirect(url_for("auth.first_run"))
    if logged_in():
        return None
    if request.path.startswith("/api/"):
        return Response('{"error": "login required"}', 401, mimetype="application/json")
    return redirect(url_for("auth.login", next=request.full_path))


def _start_session() -> None:
    session.clear()
    session.permanent = True
    session["since"] = time.time()


def _safe_next(target: str | None) -> str:
    # Only paths on this site: never an open redirect.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("dashboard.index")


@bp.route("/setup", methods=["GET", "POST"])
def first_run() -> BaseResponse | str:
    admin = web().admin
    if admin.has_password:
        return redirect(url_for("auth.login"))
    form = SetPasswordForm()
    if form.validate_on_submit():
        admin.set_password(form.password.data or "")
        _start_session()
        return redirect(url_for("wizard.index"))
    return render_template("auth/first_run.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"], deduct_when=failed_login)
@limiter.shared_limit(
    LOGIN_LIMIT_ALL,
    scope="login-all",
    key_func=lambda: "everyone",
    methods=["POST"],
    deduct_when=failed_login,
)
def login() -> BaseResponse | tuple[str, int] | str:
    admin = web().admin
    if not admin.has_password:
        return redirect(url_for("auth.first_run"))
    form = LoginForm()
    if form.validate_on_submit():
        if admin.verify(form.password.data or ""):
            _start_session()
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors = ["Wrong password."]
        return render_template("auth/login.html", form=form), 401
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("auth.login"))
