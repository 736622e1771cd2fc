"""tools/system-packages.sh: what `make setup` (so `make demo`/`make test`) and .ci/run install.

The real script runs against a scratch root (CEREBRO_SYSROOT): an empty one is a bare machine,
one holding the probed files is a ready one. CEREBRO_DRY_RUN=1 makes it print the apt-get
commands instead of running them, so nothing here installs anything or needs a server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ROOT

SCRIPT = ROOT / "tools" / "system-packages.sh"
EVERY_PACKAGE = [
    "postgresql-common",
    "postgresql-15",
    "postgresql-plpython3-15",
    "python3.11",
    "python3.11-venv",
    "make",
]
# the real interpreter the venv was made from: it imports venv and ensurepip
SYSTEM_PYTHON = (
    Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
)
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the apt-get branch runs only as root")
as_nobody = pytest.mark.skipif(
    not IS_ROOT, reason="switching to user nobody (runuser) needs root; pytest is not root"
)


BROWSER_PACKAGES = ["chromium", "chromium-driver"]  # the web UI's browser test (--browser)


def run(
    sysroot: Path, *args: str, user: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CEREBRO_SYSROOT": str(sysroot),
        "CEREBRO_DRY_RUN": "1",
        **env,
    }
    cmd = ["bash", str(SCRIPT), *args]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", "env", *(f"{k}={v}" for k, v in environ.items()), *cmd]
    return subprocess.run(
        cmd, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def missing(proc: subprocess.CompletedProcess) -> list[str]:
    """The packages named on the script's `missing system packages:` line."""
    lines = [ln for ln in proc.stderr.splitlines() if "missing system packages:" in ln]
    assert len(lines) == 1, proc.stderr
    return lines[0].split("missing system packages:", 1)[1].split()


def executable(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)


def make_ready(root: Path) -> None:
    """Every file the script probes, as the Debian packages lay them out."""
    executable(root / "usr/bin/pg_config")
    executable(root / "usr/bin/make")
    executable(root / "usr/lib/postgresql/15/bin/postgres")
    (root / "usr/lib/postgresql/15/lib").mkdir(parents=True)
    (root / "usr/lib/postgresql/15/lib/plpython3.so").write_bytes(b"")
    (root / "usr/bin/python3.11").symlink_to(SYSTEM_PYTHON)


def make_browser_ready(root: Path) -> None:
    """What Debian's chromium and chromium-driver install where the script looks."""
    executable(root / "usr/bin/chromium")
    executable(root / "usr/bin/chromedriver")


@pytest.fixture()
def world_readable_dir() -> Iterator[Path]:
    """A scratch directory another user can read (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory(prefix="cerebro-sysroot-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


def test_bare_machine_lists_every_package(tmp_path):
    proc = run(tmp_path)
    assert missing(proc) == EVERY_PACKAGE


@needs_root
def test_bare_machine_as_root_runs_apt_get_update_then_install(tmp_path):
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    commands = [ln[2:] for ln in proc.stdout.splitlines() if ln.startswith("+ ")]
    assert len(commands) == 2, proc.stdout
    update, install = commands
    assert update.split()[:2] == ["apt-get", "update"]
    words = install.split()
    assert words[:4] == ["DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y"]
    assert [w for w in words[4:] if not w.startswith("-")] == EVERY_PACKAGE


def test_ready_machine_is_silent(tmp_path):
    make_ready(tmp_path)
    proc = run(tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("remove", "package"),
    [
        ("usr/bin/pg_config", "postgresql-common"),
        ("usr/lib/postgresql/15/bin/postgres", "postgresql-15"),
        ("usr/lib/postgresql/15/lib/plpython3.so", "postgresql-plpython3-15"),
        ("usr/bin/make", "make"),
    ],
)
def test_one_missing_file_is_one_missing_package(tmp_path, remove, package):
    make_ready(tmp_path)
    (tmp_path / remove).unlink()
    assert missing(run(tmp_path)) == [package]


def test_python_without_venv_support_needs_the_venv_package(tmp_path):
    make_ready(tmp_path)
    (tmp_path / "usr/bin/python3.11").unlink()
    # Debian's python3.11 without python3.11-venv: a real Python that cannot import ensurepip
    executable(
        tmp_path / "usr/bin/python3.11",
        f'#!/bin/sh\ncase "$*" in *ensurepip*) exit 1;; esac\nexec {SYSTEM_PYTHON} "$@"\n',
    )
    assert missing(run(tmp_path)) == ["python3.11-venv"]


def test_major_and_python_are_overridable(tmp_path):
    proc = run(tmp_path, PG_MAJOR="16", PYTHON="/usr/bin/python3.12")
    assert missing(proc) == [
        "postgresql-common",
        "postgresql-16",
        "postgresql-plpython3-16",
        "python3.12",
        "python3.12-venv",
        "make",
    ]


@as_nobody
def test_normal_user_on_a_bare_machine_gets_the_sudo_line(world_readable_dir):
    proc = run(world_readable_dir, user="nobody")
    assert proc.returncode != 0
    assert missing(proc) == EVERY_PACKAGE
    assert f"sudo apt-get install -y {' '.join(EVERY_PACKAGE)}" in proc.stderr
    assert "+ apt-get" not in proc.stdout  # it did not try to install


@as_nobody
def test_normal_user_on_a_ready_machine_is_silent(world_readable_dir):
    make_ready(world_readable_dir)
    proc = run(world_readable_dir, user="nobody")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def make_dry_run(target: str, tmp_path: Path) -> list[str]:
    proc = subprocess.run(
        ["make", "-n", "-B", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.splitlines()


@pytest.mark.parametrize("target", ["setup", "demo", "test", "up", "bench"])
def test_make_checks_system_packages_before_the_venv(target, tmp_path):
    lines = make_dry_run(target, tmp_path)
    script = [
        i
        for i, ln in enumerate(lines)
        if "bash tools/system-packages.sh" in ln and "--browser" not in ln
    ]
    venv = [i for i, ln in enumerate(lines) if " -m venv " in ln]
    assert len(script) == 1 and len(venv) == 1, lines
    assert script[0] < venv[0]


# -- the browser (--browser / CEREBRO_BROWSER=1) ----------------------------------------------


def test_bare_machine_with_browser_lists_chromium_and_its_driver_too(tmp_path):
    assert missing(run(tmp_path, "--browser")) == EVERY_PACKAGE + BROWSER_PACKAGES
    assert missing(run(tmp_path, CEREBRO_BROWSER="1")) == EVERY_PACKAGE + BROWSER_PACKAGES


def test_without_the_flag_no_browser_is_needed(tmp_path):
    make_ready(tmp_path)  # no chromium in the sysroot
    proc = run(tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_ready_machine_with_browser_is_silent(tmp_path):
    make_ready(tmp_path)
    make_browser_ready(tmp_path)
    proc = run(tmp_path, "--browser")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("remove", "package"),
    [("usr/bin/chromium", "chromium"), ("usr/bin/chromedriver", "chromium-driver")],
)
def test_one_missing_browser_file_is_one_missing_package(tmp_path, remove, package):
    make_ready(tmp_path)
    make_browser_ready(tmp_path)
    (tmp_path / remove).unlink()
    assert missing(run(tmp_path, "--browser")) == [package]


@needs_root
def test_browser_as_root_installs_chromium_with_apt(tmp_path):
    make_ready(tmp_path)
    proc = run(tmp_path, "--browser")
    assert proc.returncode == 0, proc.stderr
    commands = [ln[2:] for ln in proc.stdout.splitlines() if ln.startswith("+ ")]
    assert commands[0].split()[:2] == ["apt-get", "update"]
    assert [w for w in commands[1].split()[4:] if not w.startswith("-")] == BROWSER_PACKAGES


def test_an_unknown_argument_is_refused(tmp_path):
    proc = run(tmp_path, "--chrome")
    assert proc.returncode == 2
    assert "unknown argument '--chrome'" in proc.stderr


def test_make_test_and_ci_check_the_browser_but_demo_does_not(tmp_path):
    browser = "bash tools/system-packages.sh --browser"
    assert sum(browser in ln for ln in make_dry_run("test", tmp_path)) == 1
    assert not any(browser in ln for ln in make_dry_run("demo", tmp_path))
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert [ln for ln in ci if "tools/system-packages.sh" in ln and not ln.startswith("#")] == [
        browser
    ]
