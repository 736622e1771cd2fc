"""The database engine cerebro runs on, and the SQL its segment path needs there.

cerebro runs on PostgreSQL, Greenplum 7 and Apache Cloudberry. On the two MPP engines the
packed table is ``DISTRIBUTED BY (__dist_key__)`` and a sub-epoch must reach exactly one
segment, which the planner only does (direct dispatch) when the distribution key is compared
with a *constant*: a ``$n`` parameter of a generic plan defeats it. So every statement here is
rendered with literals only, and stays within PostgreSQL 12 syntax (Greenplum 7 is PG 12).

The model state travels as the aggregate's *direct* argument: an uncorrelated scalar subquery
on the coordinator's tables, which Greenplum/Cloudberry plan as an InitPlan that the
coordinator evaluates before dispatch (``preprocess_initplans`` in src/backend/cdb/
cdbsubplan.c) and ship to the segment as a parameter value; the segment itself reads only
``cerebro.buffers`` rows through the executor, never a table through ``plpy`` (guard.py).

Pure: no ``plpy`` at import, no database driver; the daemon and the extension may both use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

EngineName = Literal["postgres", "greenplum", "cloudberry"]
ENGINES: tuple[EngineName, ...] = ("postgres", "greenplum", "cloudberry")
MPP: tuple[EngineName, ...] = ("greenplum", "cloudberry")

# Cloudberry first: its version() is "PostgreSQL 14.4 (Apache Cloudberry 2.0.0-incubating ...)"
# (1.x: "(Cloudberry Database 1.6.0 build dev)"), and forks of it may also mention Greenplum.
_CLOUDBERRY = re.compile(r"\((?:Apache Cloudberry|Cloudberry Database) (\d+)\.(\d+)")
_GREENPLUM = re.compile(r"\(Greenplum Database (\d+)\.(\d+)")
_POSTGRES = re.compile(r"^PostgreSQL (\d+)(?:\.(\d+))?")

# Small catalog tables read on segments must be DISTRIBUTED REPLICATED. None is: the segment
# path takes the model spec and config as direct arguments and reads only its buffer rows.
REPLICATED_TABLES: tuple[str, ...] = ()
PROBE_TABLE = "cerebro_key_probe"
PROBE_KEYS_PER_SEGMENT = 64  # candidates per segment: hashing leaves none empty in practice


class UnsupportedEngine(ValueError):
    """The server is an engine (or a version of one) cerebro does not run on."""


@dataclass(frozen=True)
class Engine:
    """What ``version()`` says: the engine, its own major.minor, PostgreSQL's major."""

    name: EngineName
    major: int
    minor: int
    pg_major: int

    @property
    def mpp(self) -> bool:
        return self.name in MPP


def detect(version: str) -> Engine:
    """The engine of a ``select version()`` string; Greenplum older than 7 is refused
    (it is PostgreSQL 9.4: no PL/Python 3 aggregates of the kind cerebro defines)."""
    pg = _POSTGRES.match(version)
    if not pg:
        raise UnsupportedEngine(f"not a PostgreSQL-based server: {version[:80]!r}")
    pg_major = int(pg.group(1))
    cb = _CLOUDBERRY.search(version)
    if cb:
        return Engine("cloudberry", int(cb.group(1)), int(cb.group(2)), pg_major)
    gp = _GREENPLUM.search(version)
    if gp:
        major, minor = int(gp.group(1)), int(gp.group(2))
        if major < 7:
            raise UnsupportedEngine(
                f"Greenplum {major}.{minor} is not supported: cerebro needs Greenplum 7 "
                "(PostgreSQL 12) or Apache Cloudberry"
            )
        return Engine("greenplum", major, minor, pg_major)
    return Engine("postgres", pg_major, int(pg.group(2) or 0), pg_major)


# -- literals ---------------------------------------------------------------------------------


def literal(value: Any) -> str:
    """A SQL literal (standard_conforming_strings on, the default since PG 9.1 and on GP 7)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no literal for {type(value).__name__}")


def jsonb_literal(value: Any) -> str:
    """A jsonb constant; keys sorted so the same config renders the same statement."""
    return literal(json.dumps(value, sort_keys=True, separators=(", ", ": "))) + "::jsonb"


def int_array_literal(values: Iterable[int]) -> str:
    return "'{" + ",".join(str(int(v)) for v in values) + "}'::int[]"


# -- install / upgrade DDL --------------------------------------------------------------------


def distribution_ddl(engine: EngineName) -> list[str]:
    """What install/upgrade runs on ``engine`` (012-engine.sql does the same in a DO block)."""
    if engine not in MPP:
        return []
    ddl = ["alter table cerebro.buffers set distributed by (__dist_key__)"]
    ddl += [f"alter table {t} set distributed replicated" for t in REPLICATED_TABLES]
    return ddl


# -- key values: one per segment --------------------------------------------------------------


def probe_keys_sql(nseg: int) -> list[str]:
    """Statements that find, for ``nseg`` segments, the smallest key each segment holds: hash
    placement is the engine's, so ask it rather than reimplement its hash (jump consistent
    hash on GP 7, and a different one on older layouts)."""
    if nseg < 1:
        raise ValueError("nseg must be at least 1")
    top = nseg * PROBE_KEYS_PER_SEGMENT - 1
    return [
        f"create temp table {PROBE_TABLE} (k int) distributed by (k)",
        f"insert into {PROBE_TABLE} select generate_series(0, {top})",
        f"select gp_segment_id, min(k) from {PROBE_TABLE} group by gp_segment_id "
        "order by gp_segment_id",
        f"drop table {PROBE_TABLE}",
    ]


def partition_keys(probe: Sequence[tuple[int, int]], num_partitions: int) -> list[int]:
    """Partition p -> the ``__dist_key__`` value it is stored under: the probe's key of the
    p-th segment, so that each partition lands on a distinct segment. On PostgreSQL (no
    probe) the key is the partition number, as today."""
    if not probe:
        return list(range(num_partitions))
    keys = [k for _seg, k in sorted(probe)]
    if len(set(keys)) != len(keys):
        raise ValueError(f"the probe gave one key to two segments: {sorted(probe)}")
    if num_partitions > len(keys):
        raise UnsupportedEngine(
            f"{num_partitions} partitions need {num_partitions} segments, the cluster "
            f"has {len(keys)}: load the dataset with num_partitions <= {len(keys)}"
        )
    return keys[:num_partitions]


# -- the segment path: one sub-epoch, one evaluation ------------------------------------------


def state_from_states(config_id: int, epoch: int, done: Sequence[int]) -> str:
    """The input state of a sub-epoch continuing an epoch (statements.STATE_FROM_STATES)."""
    return (
        f"(select state from cerebro.states where config_id = {literal(config_id)} "
        f"and epoch = {literal(epoch)} and partitions_done = {int_array_literal(done)})"
    )


def state_from_checkpoint(config_id: int, epoch: int) -> str:
    """The input state of an epoch's first sub-epoch (statements.STATE_FROM_CHECKPOINT)."""
    return (
        f"(select state from cerebro.checkpoints where config_id = {literal(config_id)} "
        f"and epoch = {literal(epoch - 1)})"
    )


def _scan(engine: EngineName, dataset_id: int, key: int) -> str:
    """The one partition's rows; on MPP engines grouped by the key, so the aggregate runs
    whole on the segment holding it (no two-phase aggregate, no motion of the buffers)."""
    where = (
        f"from cerebro.buffers where dataset_id = {literal(dataset_id)} "
        f"and __dist_key__ = {literal(key)}"
    )
    return where + (" group by __dist_key__" if engine in MPP else "")


def _aggregate(fn: str, state: str, spec: Any, cfg: Any) -> str:
    return (
        f"cerebro.{fn}({state}, {jsonb_literal(spec)}, {jsonb_literal(cfg)})\n"
        "               within group (order by buffer_id, x, y, num_rows)"
    )


_UPSERT = (
    "insert into cerebro.states (config_id, epoch, partitions_done, state, result, updated_at)\n"
)


def subepoch_sql(
    engine: EngineName,
    *,
    dataset_id: int,
    key: int,
    state: str,
    spec: Any,
    cfg: Any,
    config_id: int,
    epoch: int,
    new_done: Sequence[int],
) -> str:
    """The training statement of one sub-epoch, all literals: statements._TRAIN's shape
    (upsert into cerebro.states from the aggregate's result) with the partition's key."""
    row = f"{literal(config_id)}, {literal(epoch)}, {int_array_literal(new_done)}"
    return (
        _UPSERT
        + f"""select {row}, (r.res).state,
       jsonb_build_object('loss', (r.res).loss, 'metrics', (r.res).metrics,
                          'rows', (r.res).rows, 'seconds', (r.res).seconds), now()
  from (select {_aggregate("train_subepoch", state, spec, cfg)} as res
          {_scan(engine, dataset_id, key)}) r
on conflict (config_id) do update
   set epoch = excluded.epoch, partitions_done = excluded.partitions_done,
       state = excluded.state, result = excluded.result, updated_at = excluded.updated_at
returning (result->>'loss')::float8, result->'metrics', (result->>'rows')::bigint,
          (result->>'seconds')::float8, cerebro._chunk_blob(state) is not null
"""
    )


def evaluation_sql(
    engine: EngineName, *, dataset_id: int, key: int, state: str, spec: Any, cfg: Any
) -> str:
    """The evaluation statement of one validation partition (statements._EVAL's shape)."""
    return f"""select (res).loss, (res).metrics, (res).rows, (res).seconds from (
  select {_aggregate("evaluate_partition", state, spec, cfg)} as res
    {_scan(engine, dataset_id, key)}) r
"""
