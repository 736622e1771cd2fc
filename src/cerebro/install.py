"""Installs the extension's control and SQL scripts into the server's share directory."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .paths import extension_dir


def sharedir() -> Path:
    exe = shutil.which("pg_config") or "/usr/bin/pg_config"
    return Path(subprocess.check_output([exe, "--sharedir"], text=True).strip()) / "extension"


def pkglibdir() -> Path:
    exe = shutil.which("pg_config") or "/usr/bin/pg_config"
    return Path(subprocess.check_output([exe, "--pkglibdir"], text=True).strip())


def install_extension_files() -> list[Path]:
    """Copy ``extension/cerebro*`` into ``pg_config --sharedir``/extension.

    Fails with a clear message when plpython3u is missing, since CREATE EXTENSION would then
    fail deep inside PostgreSQL with a less helpful error.
    """
    if not (pkglibdir() / "plpython3.so").exists():
        raise RuntimeError(
            "PL/Python (plpython3u) is not installed for this PostgreSQL: "
            "apt-get install postgresql-plpython3-15 (or the package for your version)"
        )
    target = sharedir()
    copied = []
    for f in sorted(extension_dir().glob("cerebro*")):
        dest = target / f.name
        if not dest.exists() or dest.read_bytes() != f.read_bytes():
            try:
                shutil.copyfile(f, dest)
            except PermissionError as e:
                raise RuntimeError(
                    f"cannot write {dest}: run `cerebro install` as root (or as the owner of "
                    f"{target})"
                ) from e
            copied.append(dest)
    return copied
