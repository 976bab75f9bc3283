"""Changing the gateway's settings file from the web UI: load, validate, save, apply.

The pages never write TOML themselves: they change the document that
:func:`gateway.config.config_to_dict` gives, run it through the gateway's own
validator (:func:`gateway.config.parse_config`), and only a document without
problems is saved (atomically) and applied with the control API's
``config.reload``.  The validator's problems name their key
(``lines[2].registrar: "x:99999" has an invalid port``); :func:`problems_by_key`
sorts them back to the fields of the form that caused them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import flash

from gateway.config import Config, ConfigInvalid, load_config, parse_config, save_config
from webui.context import web
from webui.gateway import ControlError, GatewayDown

# waitress serves several requests at once: one read-modify-write of the file at a time.
WRITING = threading.Lock()

_PROBLEM = re.compile(r"(?P<key>[^:\s]+): (?P<message>.*)", re.DOTALL)


def load() -> Config:
    """The settings file as it is now.  **Raises** ConfigError (unreadable or invalid)."""
    return load_config(web().settings.config_path)


@contextmanager
def editing() -> Iterator[Config]:
    """The current settings, held against other writers of this web UI until the block ends."""
    with WRITING:
        yield load()


def validate(data: Mapping[str, Any], config: Config) -> Config:
    """*data* (a changed ``config_to_dict``) checked by the gateway's validator.

    **Raises** :class:`ConfigInvalid` with every problem.
    """
    return parse_config(data, base_dir=config.base_dir)


@dataclass
class Problems:
    """The validator's problems sorted into form fields and the rest."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.other)


def problems_by_key(
    problems: Iterable[str], prefix: str, field_of: Mapping[str, str] | None = None
) -> Problems:
    """Problems under *prefix* (``"lines[2]"``, ``"leds"``) by the form field of their key.

    The key's first name (``codecs`` of ``codecs[1]``) picks the field, renamed
    by *field_of* when the form calls it differently; a key the form has no
    field for, or a problem elsewhere in the file, goes to ``other`` (shown at
    the top of the form) with its key so it can still be found.
    """
    field_of = field_of or {}
    sorted_ = Problems()
    start = prefix + "."
    for problem in problems:
        match = _PROBLEM.fullmatch(problem)
        if match is None or not match["key"].startswith(start):
            sorted_.other.append(problem)
            continue
        rest = match["key"][len(start) :]
        base = re.match(r"[A-Za-z_]+", rest)
        name = base.group(0) if base else rest
        target = field_of.get(rest) or field_of.get(name, name)
        if target == "":
            sorted_.other.append(problem)
            continue
        sorted_.fields.setdefault(target, []).append(_sentence(match["message"]))
    return sorted_


def _sentence(message: str) -> str:
    """The validator's "must be ..., got ..." as a sentence next to a field."""
    text = message[:1].upper() + message[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def attach(form: Any, problems: Problems) -> list[str]:
    """Put field problems on *form*'s fields; returns what no field of the form shows."""
    left = list(problems.other)
    for name, messages in problems.fields.items():
        target = form._fields.get(name) if hasattr(form, "_fields") else None
        if target is None:
            left.extend(f"{name}: {m}" for m in messages)
            continue
        target.errors = [*target.errors, *messages]
    return left


def save_and_apply(config: Config, what: str) -> None:
    """Write *config* (already validated) and ask the gateway to apply it; flashes the outcome.

    Call inside :func:`editing`.  A gateway that is down is fine: it reads the
    file when it starts.
    """
    save_config(config, web().settings.config_path)
    try:
        result = web().gateway.call("config.reload")
    except GatewayDown:
        flash(
            f"{what}: saved. The gateway is not running; the change takes effect when it starts.",
            "warn",
        )
        return
    except ControlError as exc:
        flash(f"{what}: saved, but the gateway could not apply it: {exc.message}", "error")
        return
    restart = [str(key) for key in (result or {}).get("restart_needed") or []]
    if restart:
        flash(
            f"{what}: saved. Part of it takes effect after a restart of the gateway"
            f" (System → Restart): {', '.join(restart)}.",
            "warn",
        )
    else:
        flash(f"{what}: saved and applied.", "ok")


__all__ = [
    "ConfigInvalid",
    "Problems",
    "attach",
    "editing",
    "load",
    "problems_by_key",
    "save_and_apply",
    "validate",
]
