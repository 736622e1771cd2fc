"""The textual App behind ``cerebro top`` (imported only when the command runs: textual is
heavy and ``cerebro --help`` should stay fast).

Reads go through ``top_view.load`` on the App's own connection; every key that steers runs
the ``catalog`` verb a person would type in psql, under the connecting role, so the audit
trail says ``human:<role>``. A worker thread LISTENs on the catalog's channels on a second
connection and posts ``News`` to the App; a timer refreshes anyway, in case a notification
is missed (or the server restarted).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import psycopg
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Label, Static
from textual.worker import get_current_worker

from . import catalog
from .top_view import (
    CONFIG_COLUMNS,
    EVENT_COLUMNS,
    WORKLOAD_COLUMNS,
    Snapshot,
    config_cells,
    connect,
    event_cells,
    load,
    workload_cells,
)

Check = Callable[[str], str | None]  # an input's error message, or None when it is valid
# a steering verb on (connection, config_id); may return what to tell the person
Verb = Callable[[psycopg.Connection, int], str | None]


def positive_number(text: str) -> str | None:
    try:
        v = float(text)
    except ValueError:
        return f"not a number: {text!r}"
    return None if math.isfinite(v) and v > 0 else "give a positive number"


def positive_int(text: str) -> str | None:
    try:
        v = int(text)
    except ValueError:
        return f"not a whole number: {text!r}"
    return None if v >= 1 else "give a whole number of at least 1"


class News(Message):
    """Something committed on a LISTENed channel (an epoch, an event)."""

    def __init__(self, channels: list[str]) -> None:
        super().__init__()
        self.channels = channels


class Ask(ModalScreen[str | None]):
    """A one-line prompt; Enter accepts a valid value, Escape cancels."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    Ask { align: center middle; }
    Ask > Vertical { width: 64; height: auto; border: thick $accent; padding: 1 2;
                     background: $surface; }
    Ask #error { color: $error; }
    """

    def __init__(self, prompt: str, value: str, check: Check) -> None:
        super().__init__()
        self.prompt, self.value, self.check = prompt, value, check

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.prompt)
            yield Input(value=self.value, id="answer")
            yield Label("", id="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        problem = self.check(text)
        if problem is None:
            self.dismiss(text)
        else:
            self.query_one("#error", Label).update(problem)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TopApp(App[None]):
    """Workloads, the selected workload's configs and its recent events, live."""

    TITLE = "cerebro top"
    CSS = """
    #header { height: 1; background: $boost; padding: 0 1; }
    #workloads { height: auto; max-height: 8; }
    #configs { height: 1fr; }
    #events { height: 9; }
    """
    BINDINGS: ClassVar = [
        Binding("s", "stop", "stop"),
        Binding("r", "resume", "resume"),
        Binding("c", "clone", "clone (new lr)"),
        Binding("plus", "more", "+1 epoch"),
        Binding("m", "max_epochs", "max epochs"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, dsn: str, workload: str | None = None, refresh: float = 2.0) -> None:
        super().__init__()
        self.dsn, self.workload, self.every = dsn, workload, refresh
        self.snap: Snapshot | None = None
        self.notices: list[str] = []  # what was said to the person, newest last
        self._shown: dict[str, list[Any]] = {}
        self._steering = threading.Lock()
        self._steer_conn: psycopg.Connection | None = None

    def compose(self) -> ComposeResult:
        yield Static("connecting…", id="header")
        yield DataTable(id="workloads", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="configs", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="events", cursor_type="none")
        yield Footer()

    def on_mount(self) -> None:
        self.conn = connect(self.dsn)
        self.role = catalog.whoami(self.conn)
        for name, cols in (
            ("workloads", WORKLOAD_COLUMNS),
            ("configs", CONFIG_COLUMNS),
            ("events", EVENT_COLUMNS),
        ):
            self._table(name).add_columns(*cols)
        self.reload()
        self.query_one("#configs").focus()
        self.set_interval(self.every, self.reload)
        self.run_worker(self._listen, thread=True, group="listen", exit_on_error=False)

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "listen")
        self.conn.close()
        if self._steer_conn is not None:
            self._steer_conn.close()

    # -- live ---------------------------------------------------------------------------------

    def _listen(self) -> None:
        """(worker thread) Wait for notifications on a connection of its own; post News."""
        worker = get_current_worker()
        with connect(self.dsn) as conn:
            catalog.listen(conn, catalog.METRICS_CHANNEL, catalog.EVENTS_CHANNEL)
            while not worker.is_cancelled:
                fired = catalog.wait_news(conn, 0.5)
                if fired:
                    self.post_message(News(fired))

    def on_news(self, message: News) -> None:
        self.reload()

    def reload(self) -> None:
        """Read a snapshot and show it; a lost connection is said once and retried on the
        next tick."""
        try:
            if self.conn.closed:
                self.conn = connect(self.dsn)
            snap = load(self.conn, self.workload, self.role)
        except psycopg.OperationalError as e:
            self.conn.close()
            self.say(f"lost the server: {e}", error=True)
            return
        self.snap, self.workload = snap, snap.workload
        where = f"{self.conn.info.dbname} on {self.conn.info.host}:{self.conn.info.port}"
        self.query_one("#header", Static).update(
            f"[b]cerebro top[/]  as [b]{snap.role}[/]  {where}  "
            f"workload [b]{snap.workload or '-'}[/]  (LISTEN + every {self.every:g} s)"
        )
        self._fill("workloads", [(str(w["workload"]), workload_cells(w)) for w in snap.workloads])
        self._fill("configs", [(str(k), cells) for k, cells in config_cells(snap)])
        self._fill("events", [(str(e["event_id"]), event_cells(e)) for e in snap.events])
        self._point_at("workloads", snap.workload)

    # -- tables ---------------------------------------------------------------------------

    def _table(self, name: str) -> DataTable:
        return self.query_one(f"#{name}", DataTable)

    def _fill(self, name: str, rows: list[tuple[str, tuple[str, ...]]]) -> None:
        """Replace a table's rows when they changed, keeping the cursor on the same key
        (the same config, whatever its new rank)."""
        if self._shown.get(name) == rows:
            return
        self._shown[name] = rows
        table = self._table(name)
        keep = self._key_at(table)
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        self._point_at(name, keep)

    def _point_at(self, name: str, key: str | None) -> None:
        table = self._table(name)
        if key is not None and key in {k.value for k in table.rows}:
            index = table.get_row_index(key)
            if table.cursor_row != index:
                table.move_cursor(row=index)

    @staticmethod
    def _key_at(table: DataTable) -> str | None:
        if table.row_count == 0 or table.cursor_row < 0:
            return None
        row = min(table.cursor_row, table.row_count - 1)
        return table.ordered_rows[row].key.value

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Moving in the workloads table selects a workload (read from the cursor as it is
        now: highlights queued by a refresh are stale)."""
        if event.data_table.id != "workloads":
            return
        name = self._key_at(event.data_table)
        if name is not None and name != self.workload:
            self.workload = name
            self.reload()

    def selected_config(self) -> int | None:
        key = self._key_at(self._table("configs"))
        return None if key is None else int(key)

    # -- steering: the verbs a person types ---------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        self.notices.append(text)
        self.notify(text, severity="error" if error else "information", timeout=8)

    def _steer(self, what: str, verb: Verb, cid: int | None = None) -> None:
        """Run one verb on a config (the selected one unless a prompt was opened for
        another) in a worker thread, on a connection kept for steering: a clone may take
        seconds (its backend imports Keras) and the view keeps refreshing meanwhile."""
        cid = self.selected_config() if cid is None else cid
        if cid is None:
            self.say("no config selected", error=True)
            return
        self.run_worker(lambda: self._run_verb(what, verb, cid), thread=True, group="steer")

    def _run_verb(self, what: str, verb: Verb, cid: int) -> None:
        """(worker thread) The verb, then what it did or the server's refusal (its message
        and hint, verbatim) as a notification; never an exception."""
        try:
            with self._steering:
                if self._steer_conn is None or self._steer_conn.closed:
                    self._steer_conn = connect(self.dsn)
                said = verb(self._steer_conn, cid) or f"{what} config {cid}: done"
        except psycopg.Error as e:
            diag = e.diag
            text = diag.message_primary or str(e)
            hint = f"\n{diag.message_hint}" if diag.message_hint else ""
            self.call_from_thread(self.say, f"{what} config {cid}: {text}{hint}", True)
            return
        self.call_from_thread(self.say, said)
        self.call_from_thread(self.reload)

    def action_stop(self) -> None:
        self._steer("stop", lambda conn, cid: catalog.stop(conn, cid))

    def action_resume(self) -> None:
        self._steer("resume", lambda conn, cid: catalog.resume(conn, cid))

    def action_more(self) -> None:
        cid = self.selected_config()
        shown = self._max(cid)
        if cid is None or shown is None:
            return
        self._steer("+1 epoch", lambda conn, c: catalog.set_max_epochs(conn, c, shown + 1), cid)

    def _max(self, cid: int | None) -> int | None:
        """The selected config's max_epochs as shown (what + raises by one)."""
        row = self.snap.config(cid) if self.snap and cid is not None else None
        return None if row is None else int(row["max_epochs"])

    def action_max_epochs(self) -> None:
        cid = self.selected_config()
        if cid is None:
            return

        def answer(v: str | None) -> None:
            if v is not None:
                self._steer(
                    "max_epochs", lambda conn, c: catalog.set_max_epochs(conn, c, int(v)), cid
                )

        prompt = f"max_epochs for config {cid}"
        self.push_screen(Ask(prompt, str(self._max(cid) or ""), positive_int), answer)

    def action_clone(self) -> None:
        cid = self.selected_config()
        if cid is None:
            return
        row = self.snap.config(cid) if self.snap else None
        lr = (row or {}).get("params", {}).get("learning_rate", "")

        def answer(v: str | None) -> None:
            if v is not None:
                self.say(f"cloning config {cid} with learning_rate={v}…")
                self._steer("clone", lambda conn, c: clone(conn, c, float(v)), cid)

        prompt = f"learning rate for a clone of config {cid}"
        self.push_screen(Ask(prompt, str(lr), positive_number), answer)


def clone(conn: psycopg.Connection, cid: int, lr: float) -> str:
    new = catalog.clone(conn, cid, {"learning_rate": lr})
    return f"config {new} is a clone of config {cid} with learning_rate={lr:g}"
