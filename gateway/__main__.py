"""Command line: ``python -m gateway --config PATH [--init | --check]``.

Not an RFC module.  Exit codes: 0 ok, 1 cannot do what was asked (``--init``
onto an existing file, unwritable path), 2 invalid configuration.  Errors go
to stderr as one line per problem, never as a traceback.

A restart asked for over the control API (``gateway.restart``) stops the
gateway like SIGTERM does, closes the database, then replaces this process
with a new run of the same command line (``os.execv``): same PID, so systemd
and a terminal keep it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from gateway.config import (
    Config,
    ConfigError,
    ConfigInvalid,
    default_config_text,
    load_config,
    write_atomic,
)
from gateway.logs import setup_logging
from gateway.service import Notifier
from gateway.store import Store, StoreError

log = logging.getLogger("gateway")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
DB_NAME = "linegram.db"


class GatewayLike(Protocol):
    """What :func:`main` needs from ``gateway.app.Gateway``."""

    on_restart: Callable[[], None] | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


GatewayFactory = Callable[[Config, Store, Path | None], GatewayLike]


def _gateway_factory() -> GatewayFactory:
    # Imported late: the SIP and media stacks load only for a real run.
    module = importlib.import_module("gateway.app")
    factory: GatewayFactory = module.Gateway
    return factory


async def main(
    config: Config,
    store: Store,
    gateway_factory: GatewayFactory | None = None,
    config_path: Path | None = None,
    notifier: Notifier | None = None,
) -> bool:
    """Run the gateway until SIGTERM or SIGINT, then stop it cleanly.

    ``notifier`` tells systemd (gateway/service.py): ready once started, the
    watchdog fed while the loop turns, reloading or stopping at the end.

    **Returns** True when it stopped because a restart was asked for.
    """
    notifier = notifier if notifier is not None else Notifier()
    gw = (gateway_factory or _gateway_factory())(config, store, config_path)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    restart = False

    def on_restart() -> None:
        nonlocal restart
        restart = True
        stopping.set()

    gw.on_restart = on_restart
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stopping.set)
    try:
        notifier.start_watchdog()  # before start(): it may wait on the network
        await gw.start()
        notifier.ready("running")
        log.info("gateway running; SIGTERM or Ctrl-C stops it")
        await stopping.wait()
        log.info("restarting" if restart else "stopping")
    finally:
        # A re-exec keeps the PID: systemd sees "reloading" until the new READY=1.
        if restart:
            notifier.reloading("restarting")
        else:
            notifier.stopping("stopping")
        for sig in signals:
            loop.remove_signal_handler(sig)
        try:
            await gw.stop()
        finally:
            await notifier.stop_watchdog()
    return restart


def _reexec(notifier: Notifier | None = None) -> None:
    """Replace this process with the same command (``python -m gateway --config ...``)."""
    if notifier is not None:
        notifier.ping()  # the new process has a full watchdog period to start its loop
        notifier.close()
    # orig_argv keeps the interpreter's own options (-m gateway, -X ...) as typed.
    argv = [sys.executable, *sys.orig_argv[1:]]
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway", description="Linegram: SIP lines that ring in Telegram."
    )
    parser.add_argument("--config", required=True, type=Path, help="the settings file (TOML)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--init", action="store_true", help="write the default settings file")
    mode.add_argument("--check", action="store_true", help="validate the settings file and exit")
    mode.add_argument(
        "--telegram-login",
        action="store_true",
        help="sign the gateway account in to Telegram on this terminal, then exit",
    )
    return parser


def _error(message: str) -> None:
    print(f"linegram: {message}", file=sys.stderr)


def _init(path: Path) -> int:
    if path.exists():
        _error(f"{path} already exists; not overwriting it")
        return EXIT_FAILED
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, default_config_text().encode("utf-8"))
    except OSError as exc:
        _error(f"cannot write {path}: {exc.strerror or exc}")
        return EXIT_FAILED
    print(f"wrote default settings to {path}")
    return EXIT_OK


def _check(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigInvalid as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    print(f"{path}: OK ({len(config.lines)} line(s), data in {config.data_dir})")
    return EXIT_OK


def _telegram_login(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        _error(f"invalid configuration: {exc} (details: --check)")
        return EXIT_INVALID
    setup_logging("warning", config.gateway.log_format)
    _data_dir(config.data_dir)
    from gateway.telegram.terminal import run_login  # Telethon loads only for this mode

    try:
        return asyncio.run(run_login(path))
    except KeyboardInterrupt:
        return EXIT_FAILED


def _data_dir(path: Path) -> None:
    """Create the data directory private to us; tighten it if others can read it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o700)
        log.warning("data directory %s was mode %04o; now 0700", path, mode)


def cli(argv: Sequence[str] | None = None, gateway_factory: GatewayFactory | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    path: Path = args.config
    if args.init:
        return _init(path)
    if args.check:
        return _check(path)
    if args.telegram_login:
        return _telegram_login(path)
    setup_logging("info", "text")  # until the file says otherwise; load_config may warn
    try:
        config = load_config(path)
    except ConfigError as exc:
        _error(f"invalid configuration: {exc} (details: --check)")
        return EXIT_INVALID
    setup_logging(config.gateway.log_level, config.gateway.log_format)
    try:
        _data_dir(config.data_dir)
        store = Store.open(config.data_dir / DB_NAME)
    except (OSError, StoreError) as exc:
        _error(str(exc))
        return EXIT_FAILED
    restart = False
    notifier = Notifier.from_environ()
    try:
        interrupted = store.mark_interrupted(time.time())
        if interrupted:
            log.warning("%d call(s) were cut off by the last shutdown", interrupted)
        restart = asyncio.run(main(config, store, gateway_factory, path, notifier))
    except KeyboardInterrupt:  # a second Ctrl-C during stop()
        pass
    except (ConfigError, OSError) as exc:
        # A taken port or an unusable [simulation]: one line, not a traceback.
        _error(f"cannot start: {exc}")
        return EXIT_FAILED
    finally:
        store.close()
    if restart:
        try:
            _reexec(notifier)
        except OSError as exc:
            _error(f"cannot restart: {exc}")
            return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(cli())
