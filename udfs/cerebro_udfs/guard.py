"""Segment safety: inside the training and evaluation path, database access must fail.

Greenplum/Cloudberry segments cannot read user tables, so the code that runs there must take
everything from its arguments. While the guard is active, ``plpy.execute``, ``plpy.prepare``
and ``plpy.cursor`` raise, so any regression (or a model script reaching for the database)
fails on PostgreSQL exactly as it would on a segment, instead of only in production.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_GUARDED = ("execute", "prepare", "cursor")


class SegmentSafetyError(RuntimeError):
    pass


@contextlib.contextmanager
def segment_safe(plpy: Any) -> Iterator[None]:
    saved = {name: getattr(plpy, name) for name in _GUARDED if hasattr(plpy, name)}

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise SegmentSafetyError(
            "database access (plpy.execute/prepare/cursor) is not allowed in the training "
            "and evaluation path: it must be segment-safe and take data from its arguments"
        )

    for name in saved:
        setattr(plpy, name, refuse)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(plpy, name, fn)
