"""First run (set the admin password), login, logout, and the login requirement."""

from __future__ import annotations

import time

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from gateway.hardware.setupmode import leave_setup_mode, setup_mode_until
from webui.context import web
from webui.forms.auth import LoginForm, SetPasswordForm
from webui.security import LOGIN_LIMIT, LOGIN_LIMIT_ALL, failed_login, limiter

bp = Blueprint("auth", __name__)

# Reachable without a session (besides static files).
OPEN_ENDPOINTS = {"auth.login", "auth.first_run", "auth.setup_mode", "static", "health.health"}


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
        return _login_page(form), 401
    return _login_page(form)


def _login_page(form: LoginForm, setup: SetPasswordForm | None = None) -> str:
    """The login form, and the setup-mode form while the box's button allows it."""
    if setup is None and setup_mode_until(web().settings.data_dir) is not None:
        setup = SetPasswordForm(prefix="setup", formdata=None)
    return render_template("auth/login.html", form=form, setup=setup)


@bp.route("/login/setup-mode", methods=["POST"])
def setup_mode() -> BaseResponse | tuple[str, int]:
    """A new admin password without the old one: the button on the box was held (5 s).

    Once: the setup-mode file is deleted, and every session is logged out.
    """
    data_dir = web().settings.data_dir
    if setup_mode_until(data_dir) is None:
        flash("Setup mode has ended. Hold the button on the box for 5 seconds to start it again.")
        return redirect(url_for("auth.login"))
    setup = SetPasswordForm(prefix="setup")
    if not setup.validate_on_submit():
        return _login_page(LoginForm(formdata=None), setup), 400
    web().admin.set_password(setup.password.data or "")
    leave_setup_mode(data_dir)
    session.clear()
    flash(
        "The new admin password is set and every other session was logged out."
        " Log in with the new password.",
        "ok",
    )
    return redirect(url_for("auth.login"))


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("auth.login"))
