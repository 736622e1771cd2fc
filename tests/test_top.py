"""``cerebro top`` driven with textual's pilot on a real trained workload, and the demo's
leaderboard in a narrow, non-terminal console.

The App steers through the same verbs a person types, under the connecting role: each key
press is checked in ``cerebro.configs`` and ``cerebro.events`` (actor ``human:<role>``),
waiting on that state, never on time. The App's periodic refresh is set to a minute, so a
change made behind its back can only reach the screen through LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import html
import io
import itertools
import re
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from rich.console import Console

from cerebro import catalog
from cerebro.demo import Leaderboard
from cerebro.params_text import summarise, varying_keys
from cerebro.top_view import BARS, sparkline
from helpers import SPACE, launch, make_db, run_to_end

ROLE = "top_tina"
WORKLOAD = "top_wl"


def q(dsn: str, query: str, args: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(query, args).fetchall()


@pytest.fixture(scope="module")
def topdb(server_dsn: str) -> tuple[str, str]:
    """4 configs x 3 epochs trained to the end; a plain user ``top_tina`` may steer them.
    Returns (admin DSN, the user's DSN)."""
    dsn = make_db(server_dsn, "top")
    launch(dsn, WORKLOAD, SPACE, epochs=3)
    run_to_end(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        # roles are cluster-wide: reuse it (it may own rows in other test databases)
        if not c.execute("select 1 from pg_roles where rolname = %s", [ROLE]).fetchone():
            c.execute(f"create role {ROLE} login")
        c.execute(f"grant cerebro_user to {ROLE}")
        c.execute("select cerebro.share(%s, %s, 'steer')", [WORKLOAD, ROLE])
    return dsn, psycopg.conninfo.make_conninfo(dsn, user=ROLE)


# -- pure: the sparkline and the demo's leaderboard --------------------------------------------


def test_sparkline_maps_lowest_to_highest():
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁"  # a falling loss reads downhill
    assert sparkline([1.0, 1.0]) == "▄▄"
    assert sparkline([]) == ""
    assert sparkline(list(range(100)), width=5) == "▁▃▅▆█"  # only the last epochs
    assert set(sparkline([0.5, float("nan"), 0.2])) <= set(BARS)


def shaped_rows() -> list[tuple[Any, ...]]:
    """Rows shaped like the demo's leaderboard query (its 8-config grid, roster params)."""
    rows = []
    grid = itertools.product([[32], [128, 64]], [0.001, 0.01], [32, 128])
    for i, (h, lr, bs) in enumerate(grid):
        params = {"hidden": h, "learning_rate": lr, "batch_size": bs, "optimizer": "adam"}
        status = "completed" if i % 3 else "active"
        rows.append((i + 1, 1000 + i, status, 5, 5, 0.1 + i / 7, 0.2 + i / 9, params))
    return rows


def assert_board_on_one_line_per_row(rows: list[tuple[Any, ...]], width: int) -> str:
    console = Console(width=width, file=io.StringIO(), force_terminal=False)
    console.print(Leaderboard(rows, "leaderboard (objective: valid_loss, lower is better)"))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines)
    # no lone 1-2 character fragment (what a folded params column leaves behind)
    assert not [line for line in lines if 0 < len(line.strip()) <= 2], out
    first = varying_keys(r[7] for r in rows)
    fields = [[f for f in re.split(r"[\s│┃]+", line) if f] for line in lines]
    for r in rows:
        # the id column is the second: rank, then config id
        holding = [line for line, f in zip(lines, fields) if f[1:2] == [str(r[1])]]
        assert len(holding) == 1, (r[1], out)  # every config id appears once
        # its params start on that very line, with the first value that tells it apart
        assert summarise(r[7], 200, first=first).split(" ")[0] in holding[0], out
    # one line per row, plus title, header and rule: nothing continued on a next line
    assert len([line for line in lines if line.strip()]) <= len(rows) + 5, out
    return out


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_demo_board_never_folds_params(width):
    out = assert_board_on_one_line_per_row(shaped_rows(), width)
    if width >= 100:
        assert "hidden=[128,64]" in out and "lr=0.001" in out


# -- the App, on a real workload -------------------------------------------------------------


async def until(pilot: Any, predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Let the App run until ``predicate`` holds (state, polled), or fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    return value


def screen_text(app: Any) -> str:
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def event_by(dsn: str, cid: int, action: str) -> list[tuple[Any, ...]]:
    return q(
        dsn,
        "select actor from cerebro.events where config_id = %s and action = %s order by event_id",
        [cid, action],
    )


@pytest.mark.slow
def test_top_shows_and_steers(topdb):
    admin, user = topdb
    from cerebro.top_app import TopApp

    asyncio.run(drive(TopApp(user, WORKLOAD, refresh=60), admin))


async def drive(app: Any, admin: str) -> None:
    ranked = [r[0] for r in q(admin, "select config_id from cerebro.leaderboard order by rank")]
    async with app.run_test(size=(200, 50)) as pilot:
        await until(pilot, lambda: app._table("configs").row_count == 4, "the configs")
        await check_screen(app, admin)
        await pilot.press("down", "down")
        cid = app.selected_config()
        assert cid == ranked[2]
        await refused_resume(pilot, app, cid)
        await steer_keys(pilot, app, admin, cid)
        await clone_key(pilot, app, admin, cid)
        await live_news(pilot, app, admin, other=ranked[0])
        assert app.selected_config() == cid  # through every refresh
    rows = q(
        admin,
        "select rank, config_id, status, epochs, max_epochs, best_objective, "
        "last_objective, params from cerebro.leaderboard order by rank, config_id",
    )
    assert len(rows) == 5
    assert_board_on_one_line_per_row(rows, 60)  # the demo's board on real rows


async def check_screen(app: Any, admin: str) -> None:
    """The header names the role; the workload and each config's objective sparkline (3
    epochs, from cerebro.learning_curves) are on screen."""
    text = screen_text(app)
    assert f"human:{ROLE}" in text and WORKLOAD in text
    curves = q(
        admin,
        "select config_id, array_agg(value order by epoch) from cerebro.learning_curves "
        "where metric = 'valid_loss' group by 1",
    )
    assert len(curves) == 4
    for _, values in curves:
        line = sparkline(values)
        assert len(line) == 3 and line in text, (line, text)


async def refused_resume(pilot: Any, app: Any, cid: int) -> None:
    """Resuming a completed config: the server refuses, the App says why and carries on."""
    await pilot.press("r")
    said = await until(
        pilot, lambda: [n for n in app.notices if "cannot go from completed" in n], "refusal"
    )
    assert said[0].startswith(f"resume config {cid}: cerebro: config {cid} cannot go")
    assert app.is_running


async def steer_keys(pilot: Any, app: Any, admin: str, cid: int) -> None:
    """+ trains it one epoch longer (re-activating it), s stops it, r resumes it: each the
    same verb psql would run, recorded as the person."""
    actor = [(f"human:{ROLE}",)]
    state = "select status, max_epochs from cerebro.configs where config_id = %s"
    await pilot.press("plus")
    await until(pilot, lambda: q(admin, state, [cid]) == [("active", 4)], "max_epochs 4")
    assert event_by(admin, cid, "max_epochs") == actor
    await pilot.press("s")
    await until(pilot, lambda: q(admin, state, [cid]) == [("stopped", 4)], "stopped")
    assert event_by(admin, cid, "stop") == actor
    table = app._table("configs")
    await until(pilot, lambda: table.get_row(str(cid))[1] == "stopped", "stopped shown")
    assert app.selected_config() == cid
    await pilot.press("r")
    await until(pilot, lambda: q(admin, state, [cid]) == [("active", 4)], "resumed")
    # (raising max_epochs of a completed config re-activated it: a resume event too)
    assert event_by(admin, cid, "resume") == actor * 2


async def clone_key(pilot: Any, app: Any, admin: str, cid: int) -> None:
    """c asks for a learning rate (a bad one is refused in the prompt), then clones."""
    from textual.widgets import Input, Label

    await pilot.press("c")
    await until(pilot, lambda: app.screen.query(Input), "the prompt")
    await pilot.press("ctrl+u", *"-1", "enter")
    error = app.screen.query_one("#error", Label)
    await until(pilot, lambda: "positive" in str(error.content), "the prompt's complaint")
    await pilot.press("ctrl+u", *"0.0005", "enter")
    clones = "select config_id, (params ->> 'learning_rate')::float8 from cerebro.configs "
    clones += "where parent_config = %s"
    # (a clone restores the checkpoint in PL/Python: a fresh backend first imports Keras)
    made = await until(pilot, lambda: q(admin, clones, [cid]), f"a clone {app.notices}", 240)
    assert len(made) == 1 and made[0][1] == 0.0005
    assert event_by(admin, made[0][0], "clone") == [(f"human:{ROLE}",)]
    table = app._table("configs")
    await until(pilot, lambda: table.row_count == 5, "the clone shown")
    assert table.get_row(str(made[0][0]))[-1] == f"clone of {cid}@3"


async def live_news(pilot: Any, app: Any, admin: str, other: int) -> None:
    """A change made in psql by someone else reaches the screen through NOTIFY (the timer
    would take a minute)."""
    with catalog.connect(admin) as c:
        catalog.set_max_epochs(c, other, 7)  # type: ignore[arg-type]
    table = app._table("configs")
    await until(pilot, lambda: table.get_row(str(other))[2] == "3/7", "the news", timeout=10)
    assert app._table("events").row_count > 0
