"""``python -m webui --config SETTINGS``: serve the web UI with waitress.

``--reset-password`` (at the box, as the service's user) asks for a new admin
password on the terminal instead: the way back in when it is forgotten.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

import waitress

from gateway.errors import ConfigError
from webui import create_app
from webui.admin import AdminAccount, password_problem
from webui.settings import WebSettings

THREADS = 8  # the dashboard polls every 2 s per open tab; a household opens few


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webui", description=__doc__)
    parser.add_argument("--config", required=True, help="the gateway's settings file")
    parser.add_argument("--listen", help="address to serve on (default: [webui] listen)")
    parser.add_argument("--port", type=int, help="port (default: [webui] port)")
    parser.add_argument("--reset-password", action="store_true", help="set a new admin password")
    args = parser.parse_args(argv)
    try:
        settings = WebSettings.from_config(args.config)
    except ConfigError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    if args.reset_password:
        return reset_password(AdminAccount(settings.state_dir))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    host = args.listen or settings.listen
    port = args.port or settings.port
    try:
        waitress.serve(app, host=host, port=port, threads=THREADS, ident="linegram")
    except OSError as exc:
        print(f"cannot start: {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def reset_password(admin: AdminAccount) -> int:
    while True:
        password = getpass.getpass("New admin password: ")
        problem = password_problem(password)
        if problem:
            print(problem)
            continue
        if getpass.getpass("Repeat it: ") != password:
            print("Not the same; again.")
            continue
        admin.set_password(password)
        print("Admin password changed; every browser has to log in again.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
