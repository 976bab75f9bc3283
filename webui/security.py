"""Login rate limits, CSRF, cookie flags and response headers.

Lock-out: five failed logins from one address within 15 minutes lock that
address out until the window passes; thirty failures from anywhere within an
hour lock everyone out (a guessing attack spread over many addresses).  Only
failures count (the login view answers them with 401).  The counters live in
memory: a restarted web UI forgets them, which is fine for a LAN appliance
whose password costs 64 MiB of Argon2 per guess.
"""

from __future__ import annotations

import time

from flask import Flask, Response, render_template, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError, CSRFProtect

LOGIN_LIMIT = "5 per 15 minutes"
LOGIN_LIMIT_ALL = "30 per hour"

csrf = CSRFProtect()


def _remote_address() -> str:
    # No proxy in front of the appliance: the TCP peer is the client.
    return request.remote_addr or "unknown"


limiter = Limiter(key_func=_remote_address, storage_uri="memory://", default_limits=[])


def failed_login(response: Response) -> bool:
    return response.status_code == 401


def init_security(app: Flask) -> None:
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME="linegram_session",
        # Plain HTTP on the home network: a Secure cookie would never come back.
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        # The token lives as long as the session (a form left open over lunch still posts).
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,  # a backup to restore fits easily
    )
    csrf.init_app(app)
    limiter.init_app(app)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> tuple[str, int]:
        return render_template("error.html", title="Form expired", message=error.description), 400

    @app.errorhandler(RateLimitExceeded)
    def locked_out(error: RateLimitExceeded) -> Response:
        retry = limiter.current_limit.reset_at if limiter.current_limit else None
        html = render_template("auth/locked.html", retry_at=retry)
        response = Response(html, status=429)
        if retry:
            response.headers["Retry-After"] = str(max(1, int(retry - time.time())))
        return response

    @app.after_request
    def headers(response: Response) -> Response:
        # Everything is served from the box itself: no CDN, no inline script.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
            " frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response
