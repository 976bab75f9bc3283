"""The appliance's default settings file, derived from ``python -m gateway --init``.

``image/rootfs/usr/share/linegram/linegram.toml`` is this module's output; the
first boot copies it to ``/var/lib/linegram/linegram.toml`` when that is
missing.  After a change to ``gateway/config.py``'s template, regenerate it:

    .venv/bin/python -m tests.appliance.appliance_settings \
        > image/rootfs/usr/share/linegram/linegram.toml
"""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.config import default_config_text

SHIPPED = Path(__file__).resolve().parents[2] / "image/rootfs/usr/share/linegram/linegram.toml"

# (section, line start, the appliance's line): the box serves the household's LAN.
CHANGES = (
    (
        "sip",
        "listen = ",
        'listen = "0.0.0.0"        # the appliance: the ATA and phones on the LAN',
    ),
    (
        "webui",
        "listen = ",
        'listen = "0.0.0.0"        # the appliance: browse to http://linegram.local',
    ),
    ("webui", "port = ", "port = 80"),
)
HEADER = (
    "# Linegram appliance: the settings the image starts with (the web UI edits them).\n"
    "# The data directory is this file's own: /var/lib/linegram on the data partition.\n"
)


def appliance_settings() -> str:
    lines = default_config_text().splitlines()
    section = ""
    done: set[tuple[str, str]] = set()
    for index, line in enumerate(lines):
        if line.startswith("[") and not line.startswith("[["):
            section = line.strip("[] ")
        for wanted, start, replacement in CHANGES:
            if section == wanted and line.startswith(start) and (wanted, start) not in done:
                lines[index] = replacement
                done.add((wanted, start))
    missing = [f"[{s}] {k.strip(' =')}" for s, k, _ in CHANGES if (s, k) not in done]
    if missing:
        raise ValueError(f"the --init template has no {', '.join(missing)} any more")
    return HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(appliance_settings())
