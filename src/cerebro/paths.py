"""Where the project's files are: the checkout, the extension scripts, the in-database code."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path | None:
    """The source checkout this package runs from, if it runs from one (editable install)."""
    root = PACKAGE_DIR.parent.parent
    if (root / "pyproject.toml").exists() and (root / "extension").is_dir():
        return root
    return None


def _required_root() -> Path:
    root = repo_root()
    if root is None:
        raise RuntimeError(
            "cerebro must run from its source checkout (pip install -e .) to find the "
            "extension scripts and the in-database code"
        )
    return root


def extension_dir() -> Path:
    return _required_root() / "extension"


def sql_dir() -> Path:
    return _required_root() / "sql"


def udfs_dir() -> Path:
    """The directory to put on the server's PYTHONPATH so that ``import cerebro_udfs`` works."""
    return _required_root() / "udfs"


def site_packages() -> Path:
    """site-packages of the Python environment running this code (the server imports it too)."""
    return Path(sysconfig.get_paths()["purelib"])


def home() -> Path:
    """Where the embedded default keeps its data directory, socket and logs."""
    env = os.environ.get("CEREBRO_HOME")
    if env:
        return Path(env).resolve()
    root = repo_root()
    if root is not None:
        return root / ".cerebro"
    return Path.home() / ".cerebro"


def python_minor() -> tuple[int, int]:
    return sys.version_info[:2]
