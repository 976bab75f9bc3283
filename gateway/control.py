"""The local control API: a Unix socket the web UI uses to ask the running gateway.

Not an RFC module; docs/control-api.md is the reference.  One JSON object per
line (UTF-8, ``\\n``-terminated) each way::

    -> {"id": 1, "method": "members.get", "params": {"id": 3}}
    <- {"id": 1, "result": {...}}
    <- {"id": 1, "error": {"code": "not_found", "message": "no member with id 3"}}

Requests on one connection are handled concurrently (at most
:data:`MAX_IN_FLIGHT` at once), so responses may come out of order: match them
by ``id``.  A request line longer than :data:`MAX_LINE` gets ``too_large`` and
the connection is closed; any other bad line gets ``bad_request`` and the
connection stays open.  Nothing a client sends can stop the server.

Access control is the file system: the socket is mode 0660 in a directory the
gateway creates 0700.  The socket is bound and chmod-ed before ``listen()``,
so there is no moment when it is open to anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import json
import logging
import math
import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from gateway.errors import LinegramError
from gateway.store import DIRECTIONS, OUTCOMES, InvitationRecord, NotFound, Store

__all__ = [
    "MAX_IN_FLIGHT",
    "MAX_LINE",
    "ControlClient",
    "ControlError",
    "ControlServer",
    "ControlSocketError",
    "Handler",
    "Params",
    "call_sync",
    "store_methods",
    "to_json",
]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

MAX_LINE = 64 * 1024  # bytes of one request line, without its newline
MAX_RESPONSE = 16 * 1024 * 1024  # what clients accept: a page of 200 calls is ~100 KiB
MAX_IN_FLIGHT = 16  # concurrent requests per connection; reading pauses beyond
CALLS_PAGE_MAX = 200
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with the terminating NUL


class ControlError(LinegramError, RuntimeError):
    """An error response: raised by handlers, and by clients when the server answers one.

    Codes sent by the server: ``bad_request``, ``too_large``, ``unknown_method``,
    ``invalid``, ``not_found``, ``internal``, and any a handler chooses.  Raised
    by the clients only: ``unavailable`` (no gateway listening, or the connection
    dropped) and ``timeout`` (:func:`call_sync`).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ControlSocketError(LinegramError, OSError):
    """The control socket cannot be created at the configured path."""


# ------------------------------------------------------------------ encoding


def to_json(obj: Any) -> Any:
    """*obj* as plain JSON values: dataclasses become objects, tuples lists, enums values.

    **Raises** :class:`TypeError` for anything else that JSON cannot carry.
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        # JSON has no NaN or infinity; a missing value is the honest translation.
        return obj if math.isfinite(obj) else None
    if isinstance(obj, enum.Enum):
        return to_json(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"cannot encode a {type(key).__name__} key as JSON")
            out[key] = to_json(value)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_json(item) for item in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _error(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": request_id, "error": {"code": code, "message": message}}


# ------------------------------------------------------------------ server


class ControlServer:
    """Serves *methods* on a Unix socket at *path*.

    ``methods`` maps a method name to an async handler taking the request's
    ``params`` object.  It is copied into :attr:`methods`, which may be extended
    until (and after) :meth:`start`.
    """

    def __init__(self, path: Path | str, methods: Mapping[str, Handler]) -> None:
        self.path = Path(path)
        self.methods: dict[str, Handler] = dict(methods)
        self._server: asyncio.AbstractServer | None = None
        self._generation = 0  # which start() a connection belongs to
        self._connections: set[asyncio.Task[Any]] = set()
        self._inode: int | None = None

    async def start(self) -> None:
        """Listen.  **Raises** :class:`ControlSocketError` if the path is unusable
        or another process is already serving it."""
        if len(os.fsencode(self.path)) > _SUN_PATH_MAX:
            raise ControlSocketError(
                f"{self.path}: control socket path is longer than {_SUN_PATH_MAX} bytes"
            )
        parent = self.path.parent
        if not parent.exists():
            parent.mkdir(parents=True, mode=0o700)
            os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
        _remove_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(self.path))
            # Before listen(): nobody can connect while the mode is still the umask's.
            os.chmod(self.path, 0o660)
            self._inode = os.stat(self.path).st_ino
            self._generation += 1
            self._server = await asyncio.start_unix_server(
                functools.partial(self._serve, self._generation), sock=sock, limit=MAX_LINE
            )
        except OSError as exc:
            sock.close()
            raise ControlSocketError(f"{self.path}: cannot listen: {exc.strerror}") from exc
        log.info("control API listening on %s", self.path)

    async def stop(self) -> None:
        """Close the socket and every connection; requests in progress are cancelled."""
        if self._server is None:
            return
        # A connection accepted just now starts its task only after this returns;
        # the generation tells it the server it came to has gone.
        self._generation += 1
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        # Remove the file only if it is still ours (a new gateway may have replaced it).
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)

    async def _serve(
        self, generation: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if generation != self._generation:
            writer.close()
            return
        me = asyncio.current_task()
        assert me is not None
        self._connections.add(me)
        lock = asyncio.Lock()
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        pending: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            pending.discard(task)
            slots.release()

        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # the stream's limit: no newline within MAX_LINE bytes
                    await self._send(
                        writer,
                        lock,
                        _error(None, "too_large", f"request line longer than {MAX_LINE} bytes"),
                    )
                    break
                except ConnectionError:
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._answer(line, writer, lock))
                pending.add(task)
                task.add_done_callback(finished)
            # The client finished sending; let it have the answers still coming.
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            for task in pending:
                task.cancel()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._connections.discard(me)

    async def _answer(self, line: bytes, writer: asyncio.StreamWriter, lock: asyncio.Lock) -> None:
        await self._send(writer, lock, await self._respond(line))

    async def _respond(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return _error(None, "bad_request", f"not a JSON line: {_short(exc)}")
        if not isinstance(request, dict):
            return _error(None, "bad_request", "a request must be a JSON object")
        request_id = request.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, (int, str, type(None))):
            return _error(None, "bad_request", "id must be an integer, a string or null")
        unknown = sorted(set(request) - {"id", "method", "params"})
        if unknown:
            return _error(request_id, "bad_request", f"unknown request field {unknown[0]!r}")
        method = request.get("method")
        if not isinstance(method, str):
            return _error(request_id, "bad_request", "method must be a string")
        params = request.get("params")
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            return _error(request_id, "bad_request", "params must be a JSON object")
        handler = self.methods.get(method)
        if handler is None:
            return _error(request_id, "unknown_method", f"no method {method!r}")
        try:
            result = to_json(await handler(params))
            _line({"result": result})  # fail here, inside the try, if it cannot be sent
        except ControlError as exc:
            return _error(request_id, exc.code, exc.message)
        except NotFound as exc:
            return _error(request_id, "not_found", str(exc))
        except ValueError as exc:
            return _error(request_id, "invalid", str(exc))
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise  # we are being stopped
            # Something the handler awaited was cancelled: still an answer, not a hang.
            log.error("control API: method %s was cancelled", method)
            return _error(request_id, "internal", f"{method} failed; see the gateway log")
        except Exception:
            log.exception("control API: method %s failed", method)
            return _error(request_id, "internal", f"{method} failed; see the gateway log")
        return {"id": request_id, "result": result}

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, lock: asyncio.Lock, message: Any) -> None:
        # One lock per connection: whole lines, and one drain() at a time.
        async with lock:
            if writer.is_closing():
                return
            try:
                writer.write(_line(message))
                await writer.drain()
            except ConnectionError:
                pass  # the client left; its answers have nowhere to go


def _remove_stale(path: Path) -> None:
    """Unlink a socket file left by a gateway that died; refuse to touch anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlSocketError(f"{path}: exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        os.unlink(path)  # nobody listening: stale
        return
    finally:
        probe.close()
    raise ControlSocketError(f"{path}: another gateway is already listening there")


def _short(exc: BaseException) -> str:
    return str(exc)[:200] or type(exc).__name__


# ------------------------------------------------------------------ clients


def _request_line(request_id: int, method: str, params: dict[str, Any]) -> bytes:
    line = _line({"id": request_id, "method": method, "params": to_json(params)})
    if len(line) - 1 > MAX_LINE:
        raise ControlError("too_large", f"request line longer than {MAX_LINE} bytes")
    return line


def _result(response: Any, request_id: int) -> Any:
    if not isinstance(response, dict) or response.get("id") != request_id:
        raise ControlError("bad_response", "the gateway sent an answer to another request")
    error = response.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise ControlError("bad_response", "malformed error from the gateway")
        raise ControlError(str(error.get("code", "internal")), str(error.get("message", "")))
    return response.get("result")


def _unavailable(path: Path, exc: BaseException | None = None) -> ControlError:
    reason = f": {exc.strerror or exc}" if isinstance(exc, OSError) else ""
    return ControlError("unavailable", f"the gateway is not answering on {path}{reason}")


class ControlClient:
    """An asyncio client; one connection, opened on the first call, shared by
    concurrent calls.  Use ``async with`` or :meth:`close`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 1
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, method: str, /, **params: Any) -> Any:
        """Call *method*; returns its result.  **Raises** :class:`ControlError`
        with the server's code and message, or ``unavailable``."""
        request_id = self._next_id
        self._next_id += 1
        line = _request_line(request_id, method, params)
        async with self._lock:
            if self._writer is None or self._writer.is_closing():
                await self._connect()
            assert self._writer is not None
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting[request_id] = answer
            try:
                self._writer.write(line)
                await self._writer.drain()
            except ConnectionError as exc:
                self._waiting.pop(request_id, None)
                raise _unavailable(self.path, exc) from exc
        try:
            return _result(await answer, request_id)
        finally:
            self._waiting.pop(request_id, None)

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
            self._reading = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None

    async def _connect(self) -> None:
        try:
            reader, self._writer = await asyncio.open_unix_connection(
                os.fspath(self.path), limit=MAX_RESPONSE
            )
        except OSError as exc:
            raise _unavailable(self.path, exc) from exc
        self._reading = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        failure: ControlError = _unavailable(self.path)
        try:
            while line := await reader.readline():
                try:
                    response = json.loads(line)
                except ValueError:
                    failure = ControlError("bad_response", "the gateway sent a malformed line")
                    break
                response_id = response.get("id") if isinstance(response, dict) else None
                waiter = self._waiting.get(response_id) if isinstance(response_id, int) else None
                if waiter is not None and not waiter.done():
                    waiter.set_result(response)
        except (ConnectionError, ValueError) as exc:
            failure = _unavailable(self.path, exc)
        finally:
            if self._writer is not None:
                self._writer.close()
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(failure)


def call_sync(path: Path | str, method: str, /, *, timeout: float = 5.0, **params: Any) -> Any:
    """Blocking one-shot call for processes without an event loop (the web UI).

    One connection per call; *timeout* bounds the whole exchange.  **Raises**
    :class:`ControlError` (``unavailable``, ``timeout``, or the server's).
    """
    path = Path(path)
    line = _request_line(1, method, params)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
            sock.sendall(line)
            buffer = bytearray()
            while not buffer.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    raise _unavailable(path)
                buffer += chunk
                if len(buffer) > MAX_RESPONSE:
                    raise ControlError("bad_response", "the gateway's answer is too long")
        except TimeoutError as exc:
            raise ControlError(
                "timeout", f"no answer to {method} from the gateway within {timeout:g} s"
            ) from exc
        except OSError as exc:
            raise _unavailable(path, exc) from exc
    try:
        response = json.loads(buffer)
    except ValueError as exc:
        raise ControlError("bad_response", "the gateway sent a malformed line") from exc
    return _result(response, 1)


# ------------------------------------------------------------------ parameters


class Params:
    """A request's params, read one by one with errors that name the parameter.

    Call :meth:`done` after reading: any parameter not read is an error.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = dict(params)
        self._read: set[str] = set()

    def _get(self, name: str) -> Any:
        self._read.add(name)
        return self._params.get(name)

    def integer(
        self, name: str, *, default: int | None = None, low: int = 1, high: int = 2**63 - 1
    ) -> int:
        value = self._get(name)
        if value is None:
            if default is None:
                raise ValueError(f"{name} is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            bounds = f"at least {low}" if high == 2**63 - 1 else f"{low}..{high}"
            raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
        return value

    def optional_int(self, name: str, *, low: int = 1) -> int | None:
        if self._params.get(name) is None:
            self._read.add(name)
            return None
        return self.integer(name, low=low)

    def optional_str(self, name: str, choices: Sequence[str] = ()) -> str | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {type(value).__name__}")
        if choices and value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value

    def optional_lines(self, name: str) -> list[str] | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of line names")
        return value

    def done(self) -> None:
        unknown = sorted(set(self._params) - self._read)
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}")


# ------------------------------------------------------------------ store methods


def invitation_state(invitation: InvitationRecord, now: float) -> str:
    """pending, used, revoked or expired."""
    if invitation.used_at is not None:
        return "used"
    if invitation.revoked_at is not None:
        return "revoked"
    return "pending" if now < invitation.expires_at else "expired"


def store_methods(store: Store, *, clock: Callable[[], float] = time.time) -> dict[str, Handler]:
    """The methods that need only the database (see docs/control-api.md)."""

    async def members_list(params: dict[str, Any]) -> Any:
        Params(params).done()
        return store.members()

    async def members_get(params: dict[str, Any]) -> Any:
        p = Params(params)
        member_id = p.integer("id")
        p.done()
        member = store.member(member_id)
        if member is None:
            raise NotFound(f"no member with id {member_id}")
        return member

    async def members_update(params: dict[str, Any]) -> Any:
        p = Params(params)
        member_id = p.integer("id")
        method = p.optional_str("outgoing_method")
        default_line = p.optional_str("default_line")
        lines = p.optional_lines("lines")
        p.done()
        return store.update_member(
            member_id,
            outgoing_method=method,  # type: ignore[arg-type]  # the store validates it
            default_line=default_line,
            lines=lines,
        )

    async def members_remove(params: dict[str, Any]) -> Any:
        p = Params(params)
        member_id = p.integer("id")
        p.done()
        store.remove_member(member_id)
        return None

    async def invitations_list(params: dict[str, Any]) -> Any:
        p = Params(params)
        include_finished = p.flag("include_finished")
        p.done()
        now = clock()
        # The token's hash stays in the database: no client needs it.
        return [
            {
                **{k: v for k, v in to_json(inv).items() if k != "token_hash"},
                "state": invitation_state(inv, now),
            }
            for inv in store.invitations(include_finished, at=now)
        ]

    async def calls_list(params: dict[str, Any]) -> Any:
        p = Params(params)
        filters: dict[str, Any] = {
            "line": p.optional_str("line"),
            "member_id": p.optional_int("member_id"),
            "direction": p.optional_str("direction", DIRECTIONS),
            "outcome": p.optional_str("outcome", OUTCOMES),
        }
        limit = p.integer("limit", default=50, low=1, high=CALLS_PAGE_MAX)
        offset = p.integer("offset", default=0, low=0)
        p.done()
        return {
            "calls": store.calls(**filters, limit=limit, offset=offset),
            "total": store.count_calls(**filters),
        }

    return {
        "members.list": members_list,
        "members.get": members_get,
        "members.update": members_update,
        "members.remove": members_remove,
        "invitations.list": invitations_list,
        "calls.list": calls_list,
    }
