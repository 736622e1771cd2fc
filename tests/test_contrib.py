"""The systemd unit shipped in contrib/: systemd accepts it, and its command line is one the
`cerebro` CLI accepts (pure: no server)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT

UNIT = ROOT / "contrib" / "systemd" / "cerebro-scheduler@.service"
CEREBRO = ROOT / ".venv" / "bin" / "cerebro"


def _exec_start(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0].removeprefix("ExecStart="))


def test_unit_restarts_the_scheduler_always_and_stops_it_with_sigterm() -> None:
    text = UNIT.read_text()
    assert "\nRestart=always\n" in text
    assert "\nKillSignal=SIGTERM\n" in text
    argv = _exec_start(text)
    assert argv[1:] == ["scheduler", "--dsn", "service=%i"]
    assert "password" not in text.split("[Unit]")[1].lower()  # secrets stay in ~/.pgpass


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """With ExecStart pointed at this checkout's cerebro, `systemd-analyze verify` reports
    nothing: every directive and section is valid."""
    argv = _exec_start(UNIT.read_text())
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(argv[0], str(CEREBRO)))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr


def test_the_units_command_line_is_one_the_cli_accepts() -> None:
    argv = _exec_start(UNIT.read_text())
    args = [a.replace("%i", "cerebro") for a in argv[1:]]
    out = subprocess.run([str(CEREBRO), *args, "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--dsn" in out.stdout and "scheduler" in out.stdout.lower()
