"""Builds the versioned install script ``extension/cerebro--<version>.sql`` from ``sql/``.

``sql/incremental/NNN-*.sql`` run once (tables, types); ``sql/idempotent/NNN-*.sql`` are
``create or replace`` objects (functions, aggregates, views, grants) that every install and
upgrade re-runs. Keeping the sources split by object and building one script is what lets a
future upgrade script be built from the same files.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import __version__
from .paths import extension_dir, sql_dir

_NAME = re.compile(r"^\d{3}-[a-z0-9-]+\.sql$")
HEADER = '-- complain if this script is sourced in psql rather than via CREATE EXTENSION\n' \
    '\\echo Use "CREATE EXTENSION cerebro" to load this file. \\quit\n'


def _sources(kind: str) -> list[Path]:
    files = sorted((sql_dir() / kind).glob("*.sql"))
    bad = [f.name for f in files if not _NAME.match(f.name)]
    if bad:
        raise ValueError(f"sql/{kind}: file names must look like 001-name.sql, got {bad}")
    return files


def render(version: str = __version__) -> str:
    """The install script text for ``version``."""
    parts = [HEADER, f"-- cerebro {version}: built from sql/ by `cerebro build-sql`; do not edit.\n"]
    for kind in ("incremental", "idempotent"):
        for f in _sources(kind):
            parts.append(f"\n-- ==== {kind}/{f.name} ====\n")
            parts.append(f.read_text())
    return "".join(parts)


def control_version() -> str:
    text = (extension_dir() / "cerebro.control").read_text()
    m = re.search(r"default_version\s*=\s*'([^']+)'", text)
    if not m:
        raise ValueError("extension/cerebro.control has no default_version")
    return m.group(1)


def install_script_path(version: str = __version__) -> Path:
    return extension_dir() / f"cerebro--{version}.sql"


def build(version: str = __version__) -> Path:
    if control_version() != version:
        raise ValueError(
            f"package version {version} differs from cerebro.control {control_version()}"
        )
    path = install_script_path(version)
    path.write_text(render(version))
    return path
