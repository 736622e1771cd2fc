"""`make demo`: a whole model-selection workload on the embedded default.

Loads the handwritten-digits dataset that ships inside scikit-learn (1,797 8x8 images, no
download), packs it into partitions, launches a grid search of 8 MLP configs with
``cerebro.launch`` and watches the scheduler daemon (started by ``cerebro up``) train them with
model hopper parallelism: live progress from ``cerebro.progress``, then the leaderboard from
``cerebro.leaderboard``. Without a running daemon it runs a scheduler itself.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import numpy as np
import psycopg
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.table import Table

from .cluster import Cluster
from .params_text import summarise, varying_keys

WORKLOAD = "digits-demo"
SPACE = {
    "hidden": {"choice": [[32], [128, 64]]},
    "learning_rate": {"choice": [0.001, 0.01]},
    "batch_size": {"choice": [32, 128]},
}
EPOCHS = 5
SEED = 2026
MIN_PARAMS = 24  # below this the leaderboard drops its borders, then its last column
PIPE_WIDTH = 100  # `make demo | cat`, CI logs: no terminal to ask


def load_digits_table(conn: psycopg.Connection) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    conn.execute("drop view if exists public.digits_train, public.digits_valid")
    conn.execute("drop table if exists public.digits")
    conn.execute(
        "create table public.digits (id int primary key, pixels real[], label int not null)"
    )
    with conn.cursor().copy("copy public.digits (id, pixels, label) from stdin") as cp:
        for i, (img, lab) in enumerate(zip(digits.images, digits.target, strict=True)):
            cp.write_row([i, img.astype(np.float32).tolist(), int(lab)])
    conn.execute(
        "create view public.digits_train as select * from public.digits where id % 5 <> 0"
    )
    conn.execute("create view public.digits_valid as select * from public.digits where id % 5 = 0")


def _one(conn: psycopg.Connection, query: str, args: list[Any] | None = None) -> tuple[Any, ...]:
    """The one row an aggregate or a known name's query returns."""
    row = conn.execute(query, args).fetchone()
    if row is None:
        raise RuntimeError(f"no row for: {query}")
    return row


def _scheduler_active(conn: psycopg.Connection) -> bool:
    return bool(
        _one(
            conn,
            "select count(*) from cerebro.schedulers s join pg_stat_activity a using (pid) "
            "where s.role = 'leader'",
        )[0]
    )


def _progress(conn: psycopg.Connection) -> Group:
    p = _one(
        conn,
        "select configs, active, completed, failed, epochs_done, epochs_total, "
        "units_per_minute, eta from cerebro.progress where workload = %s",
        [WORKLOAD],
    )
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{WORKLOAD}[/]",
        f"configs {p[0]} (active {p[1]}, completed {p[2]}, failed {p[3]})",
        f"epochs {p[4]}/{p[5]}",
        f"{float(p[6]):.0f} units/min",
        f"eta {p[7] or '-'}",
    )
    return Group(head, _board(conn, "live leaderboard"))


def _board(conn: psycopg.Connection, title: str) -> Leaderboard:
    rows = conn.execute(
        "select rank, config_id, status, epochs, max_epochs, best_objective, "
        "last_objective, params from cerebro.leaderboard where workload = %s "
        "order by rank, config_id",
        [WORKLOAD],
    ).fetchall()
    return Leaderboard(rows, title)


class Leaderboard:
    """The leaderboard laid out for the width it is printed at (known only at render time:
    the live view and a pipe differ). Every column stays on one line: params are summarised
    to the room left (``params_text``) and anything still too long ends in an ellipsis, so
    a narrow terminal or a CI log never shows the params one character per line."""

    def __init__(self, rows: list[tuple[Any, ...]], title: str, objective: str = "valid_loss"):
        self.rows = rows
        self.title = title
        self.objective = objective

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)

    def table(self, width: int) -> Table:
        """Full headers and borders when they fit; else short headers, no borders, and
        without the last objective when even that leaves params too little room."""
        for wide, last in ((True, True), (False, True), (False, False)):
            cells = [self._cells(r, wide, last) for r in self.rows]
            heads = self._heads(wide, last)
            fixed = sum(max(len(c) for c in col) for col in zip(heads, *cells, strict=True))
            room = width - fixed - (3 * len(heads) + 4 if wide else 3 * len(heads))
            if room >= MIN_PARAMS or not last:
                break
        first = varying_keys(r[7] for r in self.rows)
        style = box.HEAVY_HEAD if wide else box.SIMPLE_HEAD
        t = Table(title=self.title, box=style, show_edge=wide, pad_edge=wide)
        for h in (*heads, "params"):
            t.add_column(h, no_wrap=True, overflow="ellipsis")
        for r, c in zip(self.rows, cells, strict=True):
            t.add_row(*c, summarise(r[7], max(room, 1), first=first))
        return t

    def _heads(self, wide: bool, last: bool) -> list[str]:
        o = self.objective
        heads = ["rank", "config", "status", "epochs", f"best {o}", f"last {o}"]
        if not wide:
            heads = ["#", "id", "status", "ep", "best", "last"]
        return heads if last else heads[:-1]

    @staticmethod
    def _cells(r: tuple[Any, ...], wide: bool, last: bool) -> list[str]:
        status = r[2] if wide or r[2] != "completed" else "done"
        cells = [str(r[0]), str(r[1]), status, f"{r[3]}/{r[4]}", _fmt(r[5]), _fmt(r[6])]
        return cells if last else cells[:-1]


def _load(conn: psycopg.Connection, console: Console) -> None:
    """(Re)load the digits as a training and a validation dataset."""
    load_digits_table(conn)
    if conn.execute("select 1 from cerebro.workloads where name = %s", [WORKLOAD]).fetchone():
        conn.execute("select cerebro.drop_workload(%s)", [WORKLOAD])
    for name in ("digits_valid", "digits_train"):
        if conn.execute("select 1 from cerebro.datasets where name = %s", [name]).fetchone():
            conn.execute("select cerebro.drop_dataset(%s)", [name])
    t0 = time.perf_counter()
    conn.execute(
        "select cerebro.load_dataset('digits_train', 'public.digits_train', "
        "features => array['pixels'], label => 'label', seed => %s)",
        [SEED],
    )
    conn.execute(
        "select cerebro.load_dataset('digits_valid', 'public.digits_valid', "
        "like_dataset => 'digits_train')"
    )
    parts, rows = _one(
        conn,
        "select num_partitions, num_rows from cerebro.datasets where name = 'digits_train'",
    )
    console.print(
        f"packed digits_train: {rows} rows of 8x8 images in {parts} partitions "
        f"({time.perf_counter() - t0:.2f} s)"
    )


def _launch(conn: psycopg.Connection, console: Console) -> None:
    console.print(
        f"SELECT cerebro.launch('{WORKLOAD}', model => 'mlp', train => "
        f"'digits_train', valid => 'digits_valid', search => 'grid', space => "
        f"'{json.dumps(SPACE)}', max_epochs => {EPOCHS});"
    )
    conn.execute(
        "select cerebro.launch(%s, 'mlp', 'digits_train', 'digits_valid', 'grid', "
        "%s, max_epochs => %s, seed => %s)",
        [WORKLOAD, json.dumps(SPACE), EPOCHS, SEED],
    )


def _watch(conn: psycopg.Connection, console: Console, dsn: str) -> None:
    """Show the live leaderboard until no config is active (training in this process when no
    scheduler daemon runs)."""
    if not _scheduler_active(conn):
        from .scheduler import Scheduler

        console.print("no scheduler daemon is running: starting one in this process")
        own = Scheduler(dsn, once=True)
        threading.Thread(target=own.run, daemon=True).start()
    with Live(_progress(conn), console=console, refresh_per_second=2, transient=True) as live:
        while True:
            live.update(_progress(conn))
            left = _one(
                conn, "select active from cerebro.progress where workload = %s", [WORKLOAD]
            )[0]
            if left == 0:
                break
            time.sleep(0.5)  # display refresh, not synchronisation


def main() -> None:
    piped = not os.isatty(1) and not os.environ.get("COLUMNS")
    console = Console(width=PIPE_WIDTH if piped else None)
    dsn = os.environ.get("CEREBRO_DSN") or Cluster.default().conninfo()
    with psycopg.connect(dsn, autocommit=True) as conn:
        console.print(f"[bold]cerebro demo[/] on {dsn}")
        t0 = time.perf_counter()
        _load(conn, console)
        _launch(conn, console)
        _watch(conn, console, dsn)
        console.print(_board(conn, "leaderboard (objective: valid_loss, lower is better)"))
        console.print(
            f"done in {time.perf_counter() - t0:.1f} s. Steer it yourself: "
            "[bold]cerebro psql[/], then see README.md"
        )


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


if __name__ == "__main__":
    main()
