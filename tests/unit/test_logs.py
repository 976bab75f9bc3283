"""Tests for gateway/logs.py: formats, fields, and that secrets never reach a log."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import logs
from gateway.config import parse_config
from gateway.logs import (
    JsonFormatter,
    RedactFilter,
    TextFormatter,
    kv,
    redact,
    register_secret,
    setup_logging,
)

PASSWORD = "Tr0ub4dor&3"
# 2026-11-26T10:00:00.123Z
CREATED = 1795687200.123

REGISTER = (
    "REGISTER sip:sip.example.net SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n"
    'Authorization: Digest username="4930123456", realm="example.net",'
    ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:sip.example.net",'
    ' response="6629fae49393a05397450978507c4ef1", algorithm=MD5, qop=auth,'
    ' nc=00000001, cnonce="0a4f113b"\r\n'
    'Proxy-Authorization: Digest username="x", response="abcdef0123"\r\n'
    "Content-Length: 0\r\n\r\n"
)


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logs.clear_secrets()
    yield
    logs.clear_secrets()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.makeLogRecord(
        {
            "name": "gateway.sip.line",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": msg,
            "args": args or None,
            "created": CREATED,
            "msecs": 123.0,
            **extra,
        }
    )
    return rec


# ------------------------------------------------------------------ formats


def test_text_format_exact() -> None:
    rec = record("registered", **kv(line="home", expires=600))
    assert (
        TextFormatter().format(rec)
        == "2026-11-26T10:00:00.123Z INFO gateway.sip.line: registered line=home expires=600"
    )


def test_text_format_quotes_values_with_spaces() -> None:
    rec = record("call ended", **kv(reason="no answer", empty="", ok=True, none=None))
    assert (
        TextFormatter()
        .format(rec)
        .endswith('call ended reason="no answer" empty="" ok=true none=""')
    )


def test_json_format_exact() -> None:
    rec = record("registered %s", "ok", **kv(line="home", expires=600, msg="clash"))
    obj = json.loads(JsonFormatter().format(rec))
    assert obj == {
        "ts": "2026-11-26T10:00:00.123Z",
        "level": "INFO",
        "logger": "gateway.sip.line",
        "msg": "registered ok",
        "line": "home",
        "expires": 600,
        "msg_": "clash",
    }


def test_setup_logging_text_end_to_end() -> None:
    out = io.StringIO()
    setup_logging("info", "text", stream=out)
    log = logging.getLogger("gateway.sip.line")
    log.debug("hidden")
    log.info("registered", extra=kv(line="home", expires=600))
    line = out.getvalue()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO gateway\.sip\.line: "
        r"registered line=home expires=600\n",
        line,
    ), line


def test_setup_logging_json_end_to_end() -> None:
    out = io.StringIO()
    setup_logging("debug", "json", stream=out)
    logging.getLogger("gateway.x").debug("two\nlines", extra={"fields": {"n": 1}})
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert (obj["level"], obj["logger"], obj["msg"], obj["n"]) == (
        "DEBUG",
        "gateway.x",
        "two\nlines",
        1,
    )


def test_setup_logging_replaces_its_previous_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "text", stream=first)
    handler = setup_logging("warning", "text", stream=second)
    logging.getLogger("gateway.t").warning("once")
    assert first.getvalue() == ""
    assert second.getvalue().endswith("gateway.t: once\n")
    assert logging.getLogger().handlers.count(handler) == 1
    assert logging.getLogger().level == logging.WARNING


@pytest.mark.parametrize(
    ("level", "fmt", "message"),
    [
        ("verbose", "text", "unknown log level 'verbose'; use one of debug, info, warning, error"),
        ("info", "xml", "unknown log format 'xml'; use text or json"),
    ],
)
def test_setup_logging_rejects(level: str, fmt: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        setup_logging(level, fmt, stream=io.StringIO())
    assert str(info.value) == message


def test_exception_traceback_is_logged() -> None:
    out = io.StringIO()
    setup_logging("info", "text", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("gateway.t").exception("failed")
    text = out.getvalue()
    assert "gateway.t: failed\nTraceback (most recent call last):" in text
    assert text.rstrip().endswith("RuntimeError: boom")


# ------------------------------------------------------------------ redaction


def test_redact_registered_secret_and_variants() -> None:
    register_secret('p"w\\1')
    assert redact('pw is p"w\\1') == "pw is ***"
    assert redact(json.dumps('p"w\\1')) == '"***"'
    assert redact(repr('p"w\\1')) == "'***'"
    register_secret("")
    assert redact("") == ""


def test_longer_secret_masked_whole() -> None:
    register_secret("abc")
    register_secret("abcdef")
    assert redact("x abcdef y abc") == "x *** y ***"


def test_sip_credentials_masked() -> None:
    masked = redact(REGISTER)
    assert "Authorization: ***\r\n" in masked
    assert "Proxy-Authorization: ***\r\n" in masked
    assert "6629fae4" not in masked
    assert "abcdef0123" not in masked
    assert "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n" in masked
    assert masked.endswith("Content-Length: 0\r\n\r\n")


def test_digest_parameters_masked_outside_authorization() -> None:
    challenge = 'WWW-Authenticate: Digest realm="example.net", nonce="84f1c1ae6cbe5ua9", qop="auth"'
    assert redact(challenge) == (
        'WWW-Authenticate: Digest realm="example.net", nonce="***", qop="auth"'
    )
    assert redact("response=abc123, cnonce=xyz") == 'response="***", cnonce="***"'
    assert redact('rspauth="deadbeef"') == 'rspauth="***"'
    assert redact(json.dumps('nonce="n1", x')) == '"nonce=\\"***\\", x"'


def test_sip_credentials_masked_in_bytes_repr() -> None:
    masked = redact(repr(REGISTER.encode()))
    assert "6629fae4" not in masked
    assert "dcd98b71" not in masked
    assert "Authorization: ***\\r\\nProxy-Authorization: ***\\r\\nContent-Length" in masked


def test_redact_filter_cleans_record_in_place() -> None:
    register_secret(PASSWORD)
    rec = record("login %s as %s", PASSWORD, "bob", fields={"pw": PASSWORD, "n": 3})
    assert RedactFilter().filter(rec) is True
    assert rec.msg == "login *** as bob"
    assert rec.args is None
    assert rec.__dict__["fields"] == {"pw": "***", "n": 3}


def logged_everywhere(fmt: str) -> str:
    """Log PASSWORD every way a mistake could, return all output."""
    out = io.StringIO()
    setup_logging("debug", fmt, stream=out)
    log = logging.getLogger("gateway.mistake")
    log.info("password is " + PASSWORD)
    log.info("password is %s", PASSWORD)
    log.info("config %r", {"password": PASSWORD})
    log.info("fields", extra=kv(password=PASSWORD, nested={"p": PASSWORD}))
    log.info("fields", extra={"fields": {PASSWORD: "as key"}})
    log.debug("sip out:\n%s", REGISTER)
    log.debug("sip bytes %r", REGISTER.encode())
    try:
        raise ValueError(f"bad login with {PASSWORD}")
    except ValueError:
        log.exception("failed %s", PASSWORD)
    log.info("stack", stack_info=True, extra=kv(x=PASSWORD))
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_password_from_config_never_logged(fmt: str, tmp_path: Path) -> None:
    parse_config(
        {
            "lines": [
                {
                    "name": "home",
                    "kind": "provider",
                    "registrar": "sip.example.net",
                    "username": "u",
                    "password": PASSWORD,
                }
            ]
        },
        base_dir=tmp_path,
    )
    output = logged_everywhere(fmt)
    assert PASSWORD not in output
    assert json.dumps(PASSWORD)[1:-1] not in output
    assert "6629fae49393a05397450978507c4ef1" not in output
    assert "dcd98b7102dd2f0e8b11d0f600bfb0c093" not in output
    assert output.count("***") >= 12
    # Everything else is still there.
    assert "bad login with ***" in output
    assert "Via: SIP/2.0/UDP 192.0.2.10:5060" in output


def test_json_output_is_one_object_per_line_even_with_secrets() -> None:
    register_secret(PASSWORD)
    output = logged_everywhere("json")
    objs = [json.loads(line) for line in output.splitlines()]
    assert len(objs) == 9
    assert objs[0]["msg"] == "password is ***"
    assert objs[3]["password"] == "***"
    assert objs[3]["nested"] == "{'p': '***'}"
    assert objs[4]["***"] == "as key"
    assert objs[7]["exc"].endswith("ValueError: bad login with ***")


def test_numeric_password_in_int_field_masked() -> None:
    register_secret("123456")
    obj = json.loads(JsonFormatter().format(record("x", **kv(pin=123456, other=7))))
    assert (obj["pin"], obj["other"]) == ("***", 7)
