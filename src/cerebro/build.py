"""Builds the versioned install and upgrade scripts in ``extension/`` from ``sql/``.

``sql/incremental/NNN-*.sql`` run once (tables, types); ``sql/idempotent/NNN-*.sql`` are
``create or replace`` objects (functions, aggregates, views, grants) that re-run whenever they
change. A release owns the incremental files from its first number on (``RELEASES``), so:

- the install script of a version is every incremental file up to it plus every idempotent
  file;
- the upgrade script from the previous release is a *delta*, like pgmq's: that release's
  incremental files, plus the idempotent files whose text differs from the previous release's
  frozen install script (and the grants, which cover new objects).

Released scripts are frozen: they are what existing databases were created with, and the
upgrade test installs the oldest and walks the chain. Cutting a release is described in the
README ("Cutting a release").
"""

from __future__ import annotations

import re
from pathlib import Path

from . import __version__
from .paths import extension_dir, sql_dir

_NAME = re.compile(r"^\d{3}-[a-z0-9-]+\.sql$")
HEADER = (
    "-- complain if this script is sourced in psql rather than via CREATE EXTENSION\n"
    '\\echo Use "CREATE EXTENSION cerebro" to load this file. \\quit\n'
)


# release -> number of its first incremental file (releases in order)
RELEASES: dict[str, int] = {"0.1.0": 1, "0.2.0": 3, "0.3.0": 6, "0.4.0": 6}
# idempotent files that every upgrade re-runs even when unchanged: grants "on all tables"
# must also cover the tables and functions that the upgrade creates
ALWAYS_RERUN = ("grants",)
_SECTION = re.compile(r"^-- ==== (incremental|idempotent)/(\S+) ====$", re.M)


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


def _render(title: str, incremental: list[Path], idempotent: list[Path]) -> str:
    parts = [HEADER, f"-- cerebro {title}: built from sql/ by `cerebro build-sql`; do not edit.\n"]
    for kind, files in (("incremental", incremental), ("idempotent", idempotent)):
        for f in files:
            parts.append(f"\n-- ==== {kind}/{f.name} ====\n")
            parts.append(f.read_text())
    return "".join(parts)


def sections(script: str) -> dict[str, str]:
    """The files a built script was made of: ``{"idempotent/010-x.sql": text, ...}``."""
    marks = list(_SECTION.finditer(script))
    out = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() - 1 if i + 1 < len(marks) else len(script)
        out[f"{m.group(1)}/{m.group(2)}"] = script[m.end() + 1 : end]
    return out


def changed_idempotent(previous: str) -> list[Path]:
    """Idempotent files whose text is not what release ``previous`` shipped (new ones too),
    plus the ones in ``ALWAYS_RERUN``."""
    shipped = sections(install_script_path(previous).read_text())
    return [
        f
        for f in _sources("idempotent")
        if shipped.get(f"idempotent/{f.name}") != f.read_text()
        or any(word in f.name for word in ALWAYS_RERUN)
    ]


def render(version: str = __version__) -> str:
    """The install script text for ``version``."""
    _, last = _release_range(version)
    return _render(
        version, [f for f in _sources("incremental") if _number(f) <= last], _sources("idempotent")
    )


def render_upgrade(version: str = __version__) -> str:
    """The upgrade script text from the previous release to ``version``."""
    first, last = _release_range(version)
    prev = previous_release(version)
    if prev is None:
        raise ValueError(f"{version} is the first release: it has no upgrade script")
    return _render(
        f"{prev} -> {version}",
        [f for f in _sources("incremental") if first <= _number(f) <= last],
        changed_idempotent(prev),
    )


def edited_releases(version: str = __version__) -> list[str]:
    """Released incremental files whose text differs from what their release shipped.

    A migration runs once per database: editing it after release would leave existing
    databases different from new ones, so the build refuses it (add a new file instead).
    """
    bad = []
    for release in list(RELEASES)[: list(RELEASES).index(version)]:
        shipped = sections(install_script_path(release).read_text())
        for f in _sources("incremental"):
            key = f"incremental/{f.name}"
            if key in shipped and shipped[key] != f.read_text():
                bad.append(f"{key} (released in {release})")
    return sorted(set(bad))


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
    edited = edited_releases(version)
    if edited:
        raise ValueError(
            f"released migrations were edited: {', '.join(edited)}; "
            "restore them and put the change in a new sql/incremental file"
        )
    path = install_script_path(version)
    path.write_text(render(version))
    upgrade = upgrade_script_path(version)
    if upgrade is not None:
        upgrade.write_text(render_upgrade(version))
    return path
