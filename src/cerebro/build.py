"""Builds the versioned install script ``extension/cerebro--<version>.sql`` from ``sql/``.

``sql/incremental/NNN-*.sql`` run once (tables, types); ``sql/idempotent/NNN-*.sql`` are
``create or replace`` objects (functions, aggregates, views, grants) that every install and
upgrade re-runs. A release owns the incremental files from its first number on (``RELEASES``),
so the install script of a version is every incremental file up to it plus every idempotent
file, and the upgrade script from the previous release is that release's incremental files
plus every idempotent file. Earlier releases' install scripts are frozen: they are what
existing databases were created with, and the upgrade test installs them.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import __version__
from .paths import extension_dir, sql_dir

_NAME = re.compile(r"^\d{3}-[a-z0-9-]+\.sql$")
HEADER = '-- complain if this script is sourced in psql rather than via CREATE EXTENSION\n' \
    '\\echo Use "CREATE EXTENSION cerebro" to load this file. \\quit\n'


# release -> number of its first incremental file (releases in order)
RELEASES: dict[str, int] = {"0.1.0": 1, "0.2.0": 3}


def _sources(kind: str) -> list[Path]:
    files = sorted((sql_dir() / kind).glob("*.sql"))
    bad = [f.name for f in files if not _NAME.match(f.name)]
    if bad:
        raise ValueError(f"sql/{kind}: file names must look like 001-name.sql, got {bad}")
    return files


def _number(f: Path) -> int:
    return int(f.name[:3])


def _release_range(version: str) -> tuple[int, int]:
    """The incremental file numbers [first, last] that ``version`` introduces."""
    names = list(RELEASES)
    if version not in RELEASES:
        raise ValueError(f"version {version} is not in build.RELEASES ({', '.join(names)})")
    i = names.index(version)
    last = RELEASES[names[i + 1]] - 1 if i + 1 < len(names) else 999
    return RELEASES[version], last


def previous_release(version: str = __version__) -> str | None:
    names = list(RELEASES)
    i = names.index(version)
    return names[i - 1] if i else None


def _render(title: str, incremental: list[Path]) -> str:
    parts = [HEADER, f"-- cerebro {title}: built from sql/ by `cerebro build-sql`; do not edit.\n"]
    for kind, files in (("incremental", incremental), ("idempotent", _sources("idempotent"))):
        for f in files:
            parts.append(f"\n-- ==== {kind}/{f.name} ====\n")
            parts.append(f.read_text())
    return "".join(parts)


def render(version: str = __version__) -> str:
    """The install script text for ``version``."""
    _, last = _release_range(version)
    return _render(version, [f for f in _sources("incremental") if _number(f) <= last])


def render_upgrade(version: str = __version__) -> str:
    """The upgrade script text from the previous release to ``version``."""
    first, last = _release_range(version)
    prev = previous_release(version)
    return _render(f"{prev} -> {version}",
                   [f for f in _sources("incremental") if first <= _number(f) <= last])


def upgrade_script_path(version: str = __version__) -> Path | None:
    prev = previous_release(version)
    return extension_dir() / f"cerebro--{prev}--{version}.sql" if prev else None


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
    upgrade = upgrade_script_path(version)
    if upgrade is not None:
        upgrade.write_text(render_upgrade(version))
    return path
