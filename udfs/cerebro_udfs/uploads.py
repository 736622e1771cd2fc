"""Initial weights uploaded as bytes (``cerebro.upload_weights``).

A ``weights`` parameter is a path the server reads when it builds a model. Letting users name
any path would let them read any file the server's OS user can (so that needs
``pg_read_server_files``); an upload instead writes the bytes to a file cerebro owns, under
the data directory (``cerebro_weights/<role oid>/<sha256>.<ext>``, a path relative to it),
and only its uploader may name that path. Files are content-addressed: the same bytes are
stored once per role.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from typing import Any

from . import limits, store
from .errors import CerebroError

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
DIRECTORY = "cerebro_weights"  # relative to the data directory (a backend's working dir)
# what keras' load_weights reads, by the file's first bytes
FORMATS = ((b"PK\x03\x04", ".keras"), (b"\x89HDF\r\n\x1a\n", ".weights.h5"))


def file_format(data: bytes) -> str:
    """The file extension for ``data``, or a clear error when it is neither format."""
    for magic, ext in FORMATS:
        if data.startswith(magic):
            return ext
    raise CerebroError(
        "weights must be the bytes of a .keras file (a zip archive) or a .weights.h5 file (HDF5)",
        hint="e.g. cerebro.export_model(config_id), or the file keras' model.save wrote",
    )


def _role_dir(plpy: Any) -> str:
    """This role's upload directory, relative to the data directory (a backend's working
    directory, so the path works as given and tells nobody where the data directory is);
    by oid, since role names may hold any character."""
    oid = plpy.execute("select r.oid from pg_catalog.pg_roles r where r.rolname = session_user")
    return os.path.join(DIRECTORY, str(oid[0]["oid"]))


def _write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` durably and atomically (a rename of a synced file)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def upload_weights(plpy: Any, name: str, data: bytes | None) -> str:
    """``cerebro.upload_weights``: store the file, record it, return its path."""
    if not isinstance(name, str) or not NAME.match(name):
        raise CerebroError(
            f"weights name {name!r} is not valid",
            hint="1-63 letters, digits, '_', '.', '-', starting with a letter, digit or '_'",
        )
    if not data:
        raise CerebroError("weights data is empty: give the bytes of a .keras or .weights.h5")
    data = bytes(data)
    limits.check(plpy, "max_upload_bytes", len(data), "upload_weights bytes")
    ext = file_format(data)
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(_role_dir(plpy), digest + ext)
    if not os.path.exists(path):
        _write(path, data)
    replaced = store.save_upload(plpy, name, path, digest, len(data))
    if replaced and not store.upload_in_use(plpy, replaced):
        _remove(replaced)
    return path


def drop_weights(plpy: Any, name: str) -> bool:
    """``cerebro.drop_weights``: forget an upload of the session user's and remove its file."""
    path = store.delete_upload(plpy, name)
    if path is None:
        raise CerebroError(f"weights {name!r} do not exist")
    if not store.upload_in_use(plpy, path):
        _remove(path)
    return True


def _remove(path: str) -> None:
    """Remove an upload's file if it is one (never anything outside the uploads directory)."""
    root = os.path.realpath(os.path.join(os.getcwd(), DIRECTORY))
    if os.path.commonpath([os.path.realpath(path), root]) == root:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
