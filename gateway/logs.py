"""Logging set-up: text or JSON lines, structured fields, secret redaction.

Not an RFC module.  It masks what RFC 3261 §22.4 and RFC 7616 §3.4 put on the
wire that must not reach a log file: ``Authorization``/``Proxy-Authorization``
header values and digest parameters (``response``, ``nonce``, ``cnonce``...).

Two formats, one record per line (multi-line SIP text stays multi-line in the
text format; JSON escapes it)::

    2026-11-26T10:00:00.123Z INFO gateway.sip.line: registered line=home expires=600
    {"ts": "2026-11-26T10:00:00.123Z", "level": "INFO", "logger": "gateway.sip.line",
     "msg": "registered", "line": "home", "expires": 600}

Structured fields travel in ``extra={"fields": {...}}``, most easily written
``log.info("registered", extra=kv(line="home", expires=600))``.

Every value passed to :func:`register_secret` (config loading registers each
password) is replaced by ``***`` wherever it shows up: message, arguments,
fields, exception text.  Redaction happens twice: in a filter on our handler
(so the record itself is cleaned before any formatter sees it) and again on the
formatted output (so nothing a formatter adds can reintroduce a secret).

The last 1000 records are also kept in memory (:class:`RecentLogs`, redacted
the same way) for the web UI's System page (control method ``logs.recent``).
:func:`setup_logging` attaches that buffer to the root logger; a gateway
started in process without it (tests) attaches one to the ``gateway`` logger
(:func:`install_recent_logs`), so it holds what that logger lets through.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

__all__ = [
    "LEVELS",
    "FORMATS",
    "JsonFormatter",
    "LogEntry",
    "RecentLogs",
    "RedactFilter",
    "TextFormatter",
    "clear_secrets",
    "install_recent_logs",
    "kv",
    "recent_logs",
    "redact",
    "register_secret",
    "remove_recent_logs",
    "setup_logging",
]

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")
MASK = "***"

# Header values are masked whole: the username and realm are not secret, but a
# Digest response is an offline-crackable password hash.  The header may end a
# real line or, when bytes were logged with repr(), a literal "\r\n".
_AUTH_HEADER = re.compile(
    r"(?i)(?:(?<=\\n)|(?<![A-Za-z0-9-]))((?:proxy-)?authorization[ \t]*:)[ \t]*"
    r"(?:(?!\\r\\n|\\n)[^\r\n])*(?:\r?\n[ \t]+[^\r\n]*)*"
)
_DIGEST_PARAM = re.compile(
    r"(?i)\b(response|nonce|cnonce|nextnonce|rspauth)([ \t]*=[ \t]*)"
    r"(\\\"(?:(?!\\\").)*\\\"|\"(?:[^\"\\]|\\.)*\"|[^\s,;\"\\]+)"
)

_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Mask *value* (and its repr/JSON-escaped spellings) in every log line.

    Empty strings are ignored.  Call it for every password or token as soon as
    it is read.
    """
    global _secret_pattern
    if not value:
        return
    variants = {value, json.dumps(value)[1:-1], repr(value)[1:-1]}
    if (encoded := repr(value.encode())[2:-1]) != value:
        variants.add(encoded)
    new = {v for v in variants if v} - _secrets
    if not new:
        return
    _secrets.update(new)
    # Longest first, so a secret that contains another is masked whole.
    ordered = sorted(_secrets, key=len, reverse=True)
    _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def clear_secrets() -> None:
    """Forget every registered secret (tests only)."""
    global _secret_pattern
    _secrets.clear()
    _secret_pattern = None


def redact(text: str) -> str:
    """Return *text* with registered secrets and SIP credentials masked."""
    if _secret_pattern is not None:
        text = _secret_pattern.sub(MASK, text)
    if "authorization" in text.lower():
        text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    if "=" in text:
        text = _DIGEST_PARAM.sub(_mask_param, text)
    return text


def _mask_param(m: re.Match[str]) -> str:
    # Keep the quoting style, so a JSON-escaped string stays valid JSON.
    quote = '\\"' if m.group(3).startswith('\\"') else '"'
    return f"{m.group(1)}{m.group(2)}{quote}{MASK}{quote}"


def kv(**fields: object) -> dict[str, dict[str, object]]:
    """Structured fields for ``extra=``: ``log.info("x", extra=kv(line="home"))``."""
    return {"fields": fields}


def _redact_value(value: object) -> object:
    """Redact one field value, keeping JSON scalars typed when they are clean."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        text = str(value)
        return value if redact(text) == text else redact(text)
    return redact(value if isinstance(value, str) else str(value))


def _fields_of(record: logging.LogRecord) -> dict[str, object]:
    fields = getattr(record, "fields", None)
    if isinstance(fields, Mapping):
        return {str(k): v for k, v in fields.items()}
    return {}


class RedactFilter(logging.Filter):
    """Clean a record in place: message (with args), fields and exception text.

    Attached to the handler :func:`setup_logging` installs.  It never drops a
    record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not hide the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        fields = _fields_of(record)
        if fields:
            record.fields = {redact(k): _redact_value(v) for k, v in fields.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{base}.{int(record.msecs):03d}Z"


def _text_value(value: object) -> str:
    text = "" if value is None else str(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger>: <msg> key=value ...`` plus any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"]
        for key, value in _fields_of(record).items():
            parts.append(f"{key}={_text_value(value)}")
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


_RESERVED = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line; fields are merged in (a clash gets a ``_`` suffix)."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in _fields_of(record).items():
            name = redact(key)
            while name in obj:
                name += "_"
            obj[name] = _redact_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            obj["exc"] = redact(record.exc_text)
        if record.stack_info:
            obj["stack"] = redact(record.stack_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


RECENT_MAX = 1000  # records kept by RecentLogs
RECENT_TEXT_MAX = 8192  # characters kept of one record (a SIP message at debug is 1-2 KB)


@dataclass(frozen=True)
class LogEntry:
    """One record as ``logs.recent`` returns it; *time* is Unix seconds."""

    time: float
    level: str  # debug | info | warning | error | critical
    logger: str
    message: str  # the message, its fields as key=value, and any traceback


class RecentLogs(logging.Handler):
    """The last *maxlen* records in memory, newest last.

    Records pass :class:`RedactFilter` and the text is redacted again, as in
    the stderr handler, so the buffer never holds a registered secret.
    """

    def __init__(self, maxlen: int = RECENT_MAX) -> None:
        super().__init__(logging.NOTSET)
        self.addFilter(RedactFilter())
        self._entries: deque[tuple[int, LogEntry]] = deque(maxlen=maxlen)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = [record.getMessage()]
            parts += [f"{k}={_text_value(v)}" for k, v in _fields_of(record).items()]
            text = " ".join(parts)
            if record.exc_text:
                text += "\n" + record.exc_text
            if record.stack_info:
                text += "\n" + record.stack_info
            text = redact(text)
            if len(text) > RECENT_TEXT_MAX:
                text = text[: RECENT_TEXT_MAX - 1] + "…"
            entry = LogEntry(record.created, record.levelname.lower(), record.name, text)
            self._entries.append((record.levelno, entry))
        except Exception:
            self.handleError(record)

    def entries(self, limit: int = 200, level: str | int = logging.DEBUG) -> list[LogEntry]:
        """The newest *limit* records at *level* or above, oldest first."""
        minimum = LEVELS[level] if isinstance(level, str) else level
        self.acquire()  # emit() may run in another thread (it holds the same lock)
        try:
            snapshot = list(self._entries)
        finally:
            self.release()
        picked = [entry for levelno, entry in snapshot if levelno >= minimum]
        return picked[-limit:] if limit > 0 else []


_recent: tuple[RecentLogs, logging.Logger] | None = None


def recent_logs() -> RecentLogs | None:
    """The process's :class:`RecentLogs`, if one is attached to a logger."""
    if _recent is None or _recent[0] not in _recent[1].handlers:
        return None
    return _recent[0]


def install_recent_logs(logger: logging.Logger | None = None) -> RecentLogs:
    """Attach a :class:`RecentLogs` to *logger* (default: the root logger) unless
    one is already attached somewhere; returns the attached one."""
    global _recent
    current = recent_logs()
    if current is not None:
        return current
    target = logger if logger is not None else logging.getLogger()
    handler = RecentLogs()
    target.addHandler(handler)
    _recent = (handler, target)
    return handler


def remove_recent_logs(handler: RecentLogs) -> None:
    """Detach *handler* (installed by :func:`install_recent_logs`)."""
    global _recent
    if _recent is not None and _recent[0] is handler:
        _recent[1].removeHandler(handler)
        _recent = None


_installed: logging.Handler | None = None


def setup_logging(
    level: str | int = "info", fmt: str = "text", *, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record to *stream* (default stderr) in format *fmt*.

    **Arguments**: *level* is ``"debug"``, ``"info"``, ``"warning"``, ``"error"``
    or a :mod:`logging` number; *fmt* is ``"text"`` or ``"json"``.  Calling it
    again replaces the handler installed by the previous call.

    The in-memory :class:`RecentLogs` is attached to the root logger too (once).

    **Returns** the installed handler.  **Raises** :class:`ValueError` on an
    unknown level or format.
    """
    global _installed
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
        level = LEVELS[level.lower()]
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use text or json")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    root.addHandler(handler)
    root.setLevel(level)
    _installed = handler
    install_recent_logs()  # kept across calls: the records of the first call stay
    return handler
