"""What the watching and steering tools read and do: one place for their SQL.

``cerebro tensorboard``, ``cerebro plot``, ``cerebro top`` and ``cerebro ui`` are clients like
psql: they read the views (``cerebro.progress``, ``cerebro.leaderboard``,
``cerebro.learning_curves``) and the tables row-level security filters, and they steer with
the same SQL verbs a person types, under the connecting role, so what they show is what that
role may see and every action lands in ``cerebro.events`` as ``human:<role>``. Nothing here
needs privileges beyond ``cerebro_user`` (or ``cerebro_reader`` for the reads).
"""

from __future__ import annotations

import json
import os
import select
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

# LISTEN channels (040-workloads.sql): an epoch committed / an event was recorded. No payload.
METRICS_CHANNEL = "cerebro_metrics"
EVENTS_CHANNEL = "cerebro_events"


def resolve_dsn(dsn: str | None) -> str:
    """The DSN every watching command uses: --dsn, else CEREBRO_DSN, else the embedded
    default (whether or not it is running: connecting says so)."""
    if dsn:
        return dsn
    env = os.environ.get("CEREBRO_DSN")
    if env:
        return env
    from .cluster import Cluster

    return Cluster.default().conninfo()


def connect(dsn: str) -> psycopg.Connection[dict[str, Any]]:
    """An autocommit connection returning dict rows (each read sees the latest commits)."""
    return psycopg.connect(dsn, autocommit=True, row_factory=dict_row)


# -- reads ------------------------------------------------------------------------------------


def workloads(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """One row per visible workload: ``cerebro.progress`` plus model, datasets, max_epochs,
    parent workload and owner. The datasets are left-joined: row-level security hides
    another owner's datasets from a role a workload was shared with (train/valid are then
    NULL), and the workload must still show."""
    return _rows(
        conn,
        "select p.*, m.name as model, w.max_epochs, w.parent_workload, w.owner, "
        "       w.created_at, w.objective_direction as direction, w.space, "
        "       w.options ->> 'description' as description, "
        "       td.name as train, vd.name as valid "
        "  from cerebro.progress p join cerebro.workloads w using (workload_id) "
        "  join cerebro.models m using (model_id) "
        "  left join cerebro.datasets td on td.dataset_id = w.train_dataset "
        "  left join cerebro.datasets vd on vd.dataset_id = w.valid_dataset "
        " order by p.workload_id",
    )


def workload_id(conn: psycopg.Connection, name: str) -> int:
    """The id of a visible workload; LookupError naming it when there is none."""
    row = conn.execute(
        "select workload_id from cerebro.workloads where name = %s", [name]
    ).fetchone()
    if row is None:
        raise LookupError(f"no workload named {name!r} (or not visible to this role)")
    return int(_first(row))


def configs(conn: psycopg.Connection, workload: str | None = None) -> list[dict[str, Any]]:
    """One row per config (``cerebro.leaderboard`` plus epoch progress and lineage), in rank
    order; every visible workload when ``workload`` is None."""
    return _rows(
        conn,
        "select l.*, c.partitions_done, c.clone_epoch, c.priority, c.created_at, "
        "       c.updated_at "
        "  from cerebro.leaderboard l join cerebro.configs c using (config_id) "
        " where %(w)s::text is null or l.workload = %(w)s "
        " order by l.workload_id, l.rank, l.config_id",
        {"w": workload},
    )


@dataclass(frozen=True)
class Point:
    """One value of one metric of one config at the end of one epoch."""

    workload: str
    config_id: int
    epoch: int
    metric: str
    value: float | None
    from_config: int  # whose epoch it is: an ancestor's for a clone's inherited history
    created_at: datetime


def curves(
    conn: psycopg.Connection,
    workload: str | None = None,
    metric: str | None = None,
    since: datetime | None = None,
) -> list[Point]:
    """Learning curves in long format from ``cerebro.learning_curves`` (clones include their
    ancestors' epochs up to the clone point). ``since`` keeps the rows committed after it."""
    rows = _rows(
        conn,
        "select workload, config_id, epoch, metric, value, from_config, created_at "
        "  from cerebro.learning_curves "
        " where (%(w)s::text is null or workload = %(w)s) "
        "   and (%(m)s::text is null or metric = %(m)s) "
        "   and (%(t)s::timestamptz is null or created_at > %(t)s) "
        " order by workload, config_id, metric, epoch",
        {"w": workload, "m": metric, "t": since},
    )
    return [Point(**r) for r in rows]


def events(
    conn: psycopg.Connection, workload: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The most recent visible events (newest first): at, actor, workload, config_id, action,
    detail."""
    return _rows(
        conn,
        "select e.event_id, e.at, e.actor, w.name as workload, e.workload_id, e.config_id, "
        "       e.action, e.detail "
        "  from cerebro.events e left join cerebro.workloads w using (workload_id) "
        " where %(w)s::text is null or w.name = %(w)s "
        " order by e.event_id desc limit %(n)s",
        {"w": workload, "n": limit},
    )


def models(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The registered models (roster and custom): name, kind, description, entry point."""
    return _rows(
        conn,
        "select name, kind, description, entry_point, param_schema, owner "
        "  from cerebro.models order by kind desc, name",
    )


def datasets(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The visible datasets: name, rows, partitions, features, label."""
    return _rows(conn, "select * from cerebro.datasets order by name")


def whoami(conn: psycopg.Connection) -> str:
    """The actor this connection's actions are recorded as (``human:<role>``)."""
    return str(_first(conn.execute("select cerebro.actor()").fetchone()))


# -- steering: the same verbs a person types ---------------------------------------------------


def stop(conn: psycopg.Connection, config_id: int) -> None:
    """Stop a config at its next sub-epoch boundary (``cerebro.stop``)."""
    conn.execute("select cerebro.stop(%s)", [config_id])


def resume(conn: psycopg.Connection, config_id: int) -> None:
    """Resume a stopped or failed config (``cerebro.resume``)."""
    conn.execute("select cerebro.resume(%s)", [config_id])


def clone(
    conn: psycopg.Connection,
    config_id: int,
    overrides: dict[str, Any],
    max_epochs: int | None = None,
) -> int:
    """Clone a config with its weights and optimizer state, overriding some params; returns
    the new config's id (``cerebro.clone``)."""
    row = conn.execute(
        "select cerebro.clone(%s, %s::jsonb, max_epochs => %s)",
        [config_id, json.dumps(overrides), max_epochs],
    ).fetchone()
    return int(_first(row))


def set_max_epochs(conn: psycopg.Connection, config_id: int, max_epochs: int) -> None:
    """Train a config longer (or shorter): the whitelisted UPDATE a person would type."""
    conn.execute(
        "update cerebro.configs set max_epochs = %s where config_id = %s",
        [max_epochs, config_id],
    )


def add_config(
    conn: psycopg.Connection, workload_id: int, params: dict[str, Any], max_epochs: int | None
) -> int:
    """Add a config to a workload by hand (the INSERT a person would type); returns its id."""
    row = conn.execute(
        "insert into cerebro.configs (workload_id, params, max_epochs) values (%s, %s, %s) "
        "returning config_id",
        [workload_id, json.dumps(params), max_epochs],
    ).fetchone()
    return int(_first(row))


def launch(
    conn: psycopg.Connection,
    name: str,
    model: str,
    train: str,
    valid: str | None,
    search: str,
    space: dict[str, Any],
    *,
    num_configs: int | None = None,
    max_epochs: int = 10,
    objective: str = "valid_loss",
    seed: int = 0,
    params: dict[str, Any] | None = None,
    description: str | None = None,
) -> int:
    """Launch a workload (``cerebro.launch``; a description goes in its options); returns
    its id."""
    options = {"description": description} if description else {}
    row = conn.execute(
        "select cerebro.launch(%s, %s, %s, %s, %s, %s::jsonb, num_configs => %s, "
        "max_epochs => %s, objective => %s, seed => %s, params => %s::jsonb, "
        "options => %s::jsonb)",
        [
            name,
            model,
            train,
            valid,
            search,
            json.dumps(space),
            num_configs,
            max_epochs,
            objective,
            seed,
            json.dumps(params or {}),
            json.dumps(options),
        ],
    ).fetchone()
    return int(_first(row))


def drill_down(
    conn: psycopg.Connection,
    parent_workload: int,
    space: dict[str, Any],
    *,
    search: str = "grid",
    num_configs: int | None = None,
    config_id: int | None = None,
    max_epochs: int | None = None,
    name: str | None = None,
) -> int:
    """Launch a child workload on a refined space around the parent's best config (or
    ``config_id``); returns its id (``cerebro.drill_down``)."""
    row = conn.execute(
        "select cerebro.drill_down(%s, %s::jsonb, search => %s, num_configs => %s, "
        "config_id => %s, max_epochs => %s, name => %s)",
        [parent_workload, json.dumps(space), search, num_configs, config_id, max_epochs, name],
    ).fetchone()
    return int(_first(row))


def register_model(conn: psycopg.Connection, name: str, source: str, entry_point: str) -> None:
    """Register a custom Keras script (``cerebro.register_model``: admins only; the server
    refuses anyone else, and refuses scripts that do not compile or build)."""
    conn.execute("select cerebro.register_model(%s, %s, %s)", [name, source, entry_point])


# -- waiting for news -------------------------------------------------------------------------


def listen(conn: psycopg.Connection, *channels: str) -> None:
    """Subscribe this (autocommit) connection to the watcher channels."""
    for ch in channels:
        conn.execute(psycopg.sql.SQL("listen {}").format(psycopg.sql.Identifier(ch)))


def wait_news(conn: psycopg.Connection, timeout: float) -> list[str]:
    """Block until a notification arrives on a LISTENed channel or ``timeout`` seconds pass;
    returns the channels that fired (empty on timeout: callers poll as a fallback)."""
    fired: list[str] = []
    gen: Iterator[psycopg.Notify] = conn.notifies(timeout=timeout, stop_after=1)
    for n in gen:
        fired.append(n.channel)
    # drain whatever else is already queued, without blocking
    if fired and select.select([conn.fileno()], [], [], 0)[0]:
        fired.extend(n.channel for n in conn.notifies(timeout=0))
    return fired


def _rows(conn: psycopg.Connection, query: str, args: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query, args).fetchall())


def _first(row: Any) -> Any:
    """The first column of a row of either row factory (tuple or dict)."""
    if row is None:
        raise LookupError("the statement returned no row")
    if isinstance(row, dict):
        return next(iter(row.values()))
    return row[0]


# -- issue 13 part 3 (cerebro top) ------------------------------------------------------------


def progress(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """``cerebro.progress`` alone: one row per visible workload (configs by status, epochs
    done/total, units/min, ETA). Unlike ``workloads()`` it joins nothing, so a workload
    shared with a role that may not see its datasets (RLS on ``cerebro.datasets``) is
    still listed."""
    return _rows(conn, "select * from cerebro.progress order by workload_id")
