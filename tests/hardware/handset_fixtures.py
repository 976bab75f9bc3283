"""An ALSA "sound card" made of ALSA's own plugins, and the analysis of what it played.

Not an RFC module.  :func:`alsa_rig` writes an ALSA configuration into the
test's directory and points ``ALSA_CONFIG_PATH`` at it (alsa-lib reads that
list of files instead of ``/usr/share/alsa/alsa.conf``, and re-reads it when
the variable changes, so each test has its own).  The PCM it defines is an
``asym`` pair: playback through the ``file`` plugin into ``out.raw`` over a
``null`` slave, capture from the ``file`` plugin's ``infile`` (``in.raw``,
the "microphone") over a ``null`` slave.  No sound card, no kernel module.

The ``null`` slave never waits and never runs out, so the handset's pacing is
under test too: it must take exactly one period per media-clock tick.  The
file plugin writes ``out.raw`` in blocks and flushes it when the PCM closes,
which the handset does when it goes back to idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.hardware.handset import RING
from simcloud.audio import ToneGenerator, analyse, pcm_dbfs

DEVICE = "linegram_handset"
MISSING_DEVICE = "linegram_no_such_device"
FRAME = 160  # bytes in 10 ms of 8 kHz s16le
VOICED_DBFS = -40.0


@dataclass
class AlsaRig:
    device: str
    out: Path  # what the handset played (speaker)
    infile: Path  # what its microphone hears

    def played(self) -> bytes:
        return self.out.read_bytes() if self.out.exists() else b""


def tone(freq: float, seconds: float, amplitude: float = 0.3) -> bytes:
    return b"".join(ToneGenerator(freq, 8000, amplitude).frames(seconds))


def alsa_rig(tmp: Path, monkeypatch: pytest.MonkeyPatch, microphone: bytes = b"") -> AlsaRig:
    """Define :data:`DEVICE` for this process (``ALSA_CONFIG_PATH``), microphone input given."""
    tmp.mkdir(parents=True, exist_ok=True)
    out, infile = tmp / "out.raw", tmp / "in.raw"
    infile.write_bytes(microphone or bytes(FRAME * 100 * 60))
    config = tmp / "asound.conf"
    config.write_text(
        f"""pcm.{DEVICE} {{
    type asym
    playback.pcm {{
        type file
        slave.pcm {{ type null }}
        file "{out}"
        format raw
    }}
    capture.pcm {{
        type file
        slave.pcm {{ type null }}
        file "/dev/null"
        infile "{infile}"
        format raw
    }}
}}
"""
    )
    assert ":" not in str(config) and " " not in str(config), "ALSA splits the path list there"
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(config))
    return AlsaRig(DEVICE, out, infile)


def runs(pcm: bytes) -> list[tuple[bool, int]]:
    """(voiced, length in 10 ms frames) for each run of voiced or silent frames."""
    out: list[tuple[bool, int]] = []
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        voiced = pcm_dbfs(pcm[i : i + FRAME]) > VOICED_DBFS
        if out and out[-1][0] == voiced:
            out[-1] = (voiced, out[-1][1] + 1)
        else:
            out.append((voiced, 1))
    return out


def assert_ring_cadence(pcm: bytes) -> None:
    """*pcm* starts (after silence) with the handset's double ring, in its tones."""
    cadence = [length // 10 for length in RING.cadence_ms]  # 10 ms frames
    sound = runs(pcm)
    lead = 0
    if sound and not sound[0][0]:
        lead = sound[0][1]
        sound = sound[1:]  # the prefill's silence
    got = sound[: len(cadence)]
    assert [v for v, _ in got] == [True, False, True, False][: len(got)], got
    assert len(got) >= 3, f"no double ring in {sound[:8]}"
    for (_, length), want in zip(got[:3], cadence, strict=False):
        assert abs(length - want) <= 1, (got, cadence)
    burst = pcm[lead * FRAME : (lead + got[0][1]) * FRAME]
    heard = analyse(burst, settle_ms=0)
    assert heard.frequency_hz is not None, heard
    assert min(abs(heard.frequency_hz - f) for f in RING.frequencies) < 2.0, heard
