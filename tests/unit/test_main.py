"""Tests for gateway/__main__.py: --init, --check, bad configs, and a run."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.__main__ import cli
from gateway.config import Config, default_config, default_config_text, load_config
from gateway.store import MIGRATIONS, Store

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_init_writes_default_config(tmp_path: Path) -> None:
    path = tmp_path / "var" / "linegram.toml"
    result = run("--config", str(path), "--init", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"wrote default settings to {path}\n"
    assert path.read_text() == default_config_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_config(path) == default_config(path.parent)


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text("# mine\n")
    result = run("--config", str(path), "--init", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"linegram: {path} already exists; not overwriting it\n"
    assert path.read_text() == "# mine\n"


def test_check_valid(tmp_path: Path) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text('[[lines]]\nname = "landline"\nkind = "ata"\n')
    result = run("--config", str(path), "--check", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{path}: OK (1 line(s), data in {tmp_path})\n"


def test_check_invalid_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text('[sip]\nprot = 5060\n\n[[lines]]\nname = "x"\nkind = "ata"\nport = "abc"\n')
    result = run("--config", str(path), "--check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f'{path}: sip.prot: unknown key (did you mean "port"?)\n'
        f"{path}: lines[0].port: unknown key\n"
    )


def test_check_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text("[sip\n")
    result = run("--config", str(path), "--check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: invalid TOML: ")
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_run_with_invalid_config_prints_one_line(tmp_path: Path) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text("[media]\nptime = 25\n")
    result = run("--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"linegram: invalid configuration: {path}: media.ptime: must be one of"
        " 10, 20, 30, 40, got 25 (details: --check)\n"
    )
    assert not (tmp_path / "linegram.db").exists()


def test_run_with_missing_config(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    result = run("--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"linegram: invalid configuration: {path}: no such file (create one with --init)"
        " (details: --check)\n"
    )


def test_config_is_required(tmp_path: Path) -> None:
    result = run("--check", cwd=tmp_path)
    assert result.returncode == 2
    assert "the following arguments are required: --config" in result.stderr


# ------------------------------------------------------------------ a run, in process


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


class FakeGateway:
    """Records the calls made by __main__.main and sends itself SIGTERM on start."""

    instances: list[FakeGateway] = []

    def __init__(self, config: Config, store: Store, config_path: Path | None = None) -> None:
        self.config = config
        self.store = store
        self.config_path = config_path
        self.events: list[str] = []
        FakeGateway.instances.append(self)

    async def start(self) -> None:
        self.events.append("start")
        self.calls_at_start = self.store.recent_calls()
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    async def stop(self) -> None:
        self.events.append("stop")


@pytest.mark.usefixtures("restore_root_logger")
def test_run_starts_and_stops_gateway_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text('[gateway]\ndata_dir = "state"\nlog_level = "warning"\n')
    # A call left open by a previous crash.
    (tmp_path / "state").mkdir(mode=0o755)
    (tmp_path / "state").chmod(0o755)
    with Store.open(tmp_path / "state" / "linegram.db") as store:
        store.call_started("in", "home", "", "1", "", "", 1.0)

    FakeGateway.instances.clear()
    assert cli(["--config", str(path)], gateway_factory=FakeGateway) == 0

    (gw,) = FakeGateway.instances
    assert gw.events == ["start", "stop"]
    assert gw.config.data_dir == tmp_path / "state"
    assert [c.outcome for c in gw.calls_at_start] == ["interrupted"]
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.usefixtures("restore_root_logger")
def test_run_creates_private_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text('[gateway]\ndata_dir = "new/state"\n')
    FakeGateway.instances.clear()
    assert cli(["--config", str(path)], gateway_factory=FakeGateway) == 0
    data = tmp_path / "new" / "state"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    with Store.open(data / "linegram.db") as store:
        assert store.schema_version == len(MIGRATIONS)


class BusyPortGateway(FakeGateway):
    async def start(self) -> None:
        self.events.append("start")
        raise OSError(98, "Address already in use")


@pytest.mark.usefixtures("restore_root_logger")
def test_start_failure_is_one_line_and_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "linegram.toml"
    path.write_text('[gateway]\ndata_dir = "state"\nlog_level = "warning"\n')
    FakeGateway.instances.clear()
    assert cli(["--config", str(path)], gateway_factory=BusyPortGateway) == 1
    (gateway,) = FakeGateway.instances
    assert gateway.events == ["start", "stop"]
    err = capsys.readouterr().err
    assert "cannot start:" in err and "Address already in use" in err
    assert "Traceback" not in err
