"""The web UI's one database connection, shared by Dash's callback threads.

Every action runs under the role of the DSN the UI was started with (the "logged-in role"),
through :mod:`cerebro.catalog`, so row-level security filters what the page shows and every
steering verb lands in ``cerebro.events`` as ``human:<role>``. Dash runs callbacks in
threads and a psycopg connection serves one statement at a time, so each connection sits
behind a lock (psycopg_pool is not a dependency; a page's few reads a second do not need
more than one backend for reads and one for actions).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from .. import catalog


class Session:
    """Two lock-protected autocommit connections, reopened after the server dropped them:
    one for the live reads, one for the actions, so a slow verb (a clone builds the model in
    its backend to compare architectures; the first one imports Keras there) does not freeze
    the curves and tables while it runs."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._locks = {"read": threading.Lock(), "act": threading.Lock()}
        self._conns: dict[str, psycopg.Connection[Any]] = {}

    @contextmanager
    def conn(self, purpose: str = "read") -> Iterator[psycopg.Connection[Any]]:
        """The connection for ``purpose`` ('read' or 'act'), held by one thread at a time; a
        broken one is closed so the next request reconnects (a server restart costs the page
        one failed refresh)."""
        with self._locks[purpose]:
            conn = self._conns.get(purpose)
            if conn is None or conn.closed:
                conn = self._conns[purpose] = catalog.connect(self.dsn)
            try:
                yield conn
            except psycopg.OperationalError:
                conn.close()
                raise

    def close(self) -> None:
        for purpose, lock in self._locks.items():
            with lock:
                conn = self._conns.pop(purpose, None)
                if conn is not None:
                    conn.close()


def server_message(e: BaseException) -> str:
    """What the server said, verbatim: psycopg's primary message plus DETAIL and HINT lines
    (the way psql prints them), so a person reads exactly what ``psql`` would show."""
    if isinstance(e, psycopg.Error) and e.diag.message_primary:
        lines = [f"ERROR:  {e.diag.message_primary}"]
        if e.diag.message_detail:
            lines.append(f"DETAIL:  {e.diag.message_detail}")
        if e.diag.message_hint:
            lines.append(f"HINT:  {e.diag.message_hint}")
        return "\n".join(lines)
    return str(e)


def parse_json_object(text: str | None, what: str) -> dict[str, Any]:
    """A form's JSON field as a dict; ValueError naming the field when it is not one (the
    page shows it like a server error, before anything is sent)."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object {{...}}, got {type(value).__name__}")
    return value
