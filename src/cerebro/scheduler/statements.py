"""Every SQL statement the scheduler daemon issues, named, with the locks it relies on.

One module so that what the daemon does to the tables can be read (and reviewed for lock
order) in one sitting: the other modules of the package only pick a statement and pass its
parameters. In particular every write to ``cerebro.configs`` and ``cerebro.events`` made by
the daemon is here. The layout of a chunked-state reference is not spelled out here: the
statements ask ``cerebro._chunk_blob`` (030-training.sql), the one place SQL knows it.

Lock order everywhere: workload row, then config row (as AutoML steps take them), so an epoch
commit and a concurrent step never deadlock.
"""

from __future__ import annotations

from psycopg import sql

CHANNEL = "cerebro"  # NOTIFY channel of steering: inserts, clones, resumes wake us up
LISTEN = sql.SQL("listen {}").format(sql.Identifier(CHANNEL))

# -- leadership and heartbeat ----------------------------------------------------------------

# The active scheduler holds this session-level advisory lock on its leader connection; it
# goes away with the connection, so a standby takes over as soon as the leader dies.
TRY_LOCK = "select pg_try_advisory_lock(%s)"
HEARTBEAT = (
    "insert into cerebro.schedulers "
    "(pid, host, os_pid, role, workers, since, last_error, last_error_at) "
    "values (pg_backend_pid(), %s, %s, %s, %s, %s, %s, %s) on conflict (pid) do update "
    "set role = excluded.role, workers = excluded.workers, heartbeat_at = now(), "
    "since = excluded.since, last_error = excluded.last_error, "
    "last_error_at = excluded.last_error_at"
)
FORGET_ME = "delete from cerebro.schedulers where pid = pg_backend_pid()"
# a session of another role holding the key: end it (the function can end nothing else)
EVICT_LOCK_THIEVES = "select pid, role from cerebro._evict_lock_thieves()"
# pg_terminate_backend returns before the backend has exited and released its locks
BACKENDS_ALIVE = "select count(*) from pg_stat_activity where pid = any(%s::int[])"

# -- recovery ----------------------------------------------------------------------------------

FORGET_DEAD_SCHEDULERS = (
    "delete from cerebro.schedulers s where not exists (select 1 from "
    "pg_stat_activity a where a.pid = s.pid)"
)
# Backends of a dead scheduler may still be finishing a unit; they can never commit (their
# client is gone), but end them so they stop using CPU and locks. This process's own idle
# workers, kept from its previous session with their caches, are spared.
END_ORPHAN_WORKERS = (
    "select pg_terminate_backend(pid) from pg_stat_activity where "
    "datname = current_database() and application_name like 'cerebro worker %%' "
    "and usename = current_user and pid <> pg_backend_pid() and pid <> all(%s::int[])"
)
LOSE_UNITS_IN_FLIGHT = (
    "update cerebro.units set outcome = 'lost', ended_at = clock_timestamp(), "
    "error = 'scheduler or backend ended before the unit committed' "
    "where ended_at is null"
)
# chunks of states lost with the unlogged states table (crash) or left by a unit that died
# between writing them and committing are unreferenced now
DROP_UNREFERENCED_CHUNKS = "select cerebro._drop_unreferenced_chunks()"

# -- planning: what can run ----------------------------------------------------------------------

RUNNABLE = """
select c.config_id, c.workload_id, c.params, c.epoch, c.partitions_done, c.seed,
       c.priority + w.priority as priority, w.seed as workload_seed,
       w.train_dataset, w.valid_dataset, m.name as model, w.search,
       coalesce(c.max_epochs, w.max_epochs) as max_epochs,
       (select coalesce(array_agg(distinct u.partition), '{}') from cerebro.units u
         where u.config_id = c.config_id and u.kind = 'valid' and u.outcome = 'ok'
           and u.epoch = c.epoch + 1) as valid_done
  from cerebro.configs c
  join cerebro.workloads w using (workload_id)
  join cerebro.models m on m.model_id = w.model_id
 where c.status = 'active' and w.status = 'active'
   and c.epoch < coalesce(c.max_epochs, w.max_epochs)
"""
# what models.training_config needs of a dataset (version: the partition cache key changes
# when a dataset of the same name is loaded again)
DATASET = (
    "select dataset_id, name, feature_shape, task, classes, num_partitions, encoding, "
    "dist_keys, extract(epoch from created_at)::text as version from cerebro.datasets "
    "where dataset_id = %s"
)
MODEL_SPEC = "select cerebro.model_spec(%s)"
# workloads of the procedures stepped between plans, with the newest event each has seen
AUTOML_WORKLOADS = (
    "select w.workload_id, max(e.event_id) from cerebro.workloads w join "
    "cerebro.events e using (workload_id) where w.status = 'active' and w.search in "
    "('hyperopt', 'asha', 'hyperband') group by 1"
)
AUTOML_STEP = "select cerebro.automl_step(%s)"

# -- one unit ----------------------------------------------------------------------------------

# Start a unit only if the config is still active and where we think it is. FOR SHARE makes a
# concurrent stop either wait for this (the unit started first) or win (no unit starts).
START_UNIT = """
insert into cerebro.units (config_id, epoch, partition, kind, worker, backend_pid)
select c.config_id, %(epoch)s, %(partition)s, %(kind)s, %(worker)s, pg_backend_pid()
  from cerebro.configs c join cerebro.workloads w using (workload_id)
 where c.config_id = %(config_id)s and c.status = 'active' and w.status = 'active'
   and c.epoch = %(epoch)s - 1 and c.partitions_done = %(done)s::int[]
   for share of c
returning unit_id
"""

# Whether a state can be read: a state-file reference's file is there, whole (CASE: an
# inline state is never handed to PL/Python just to be looked at)
_READABLE = (
    "case when cerebro._state_file(state) is null then true else cerebro._state_present(state) end"
)
# the sub-epoch state a unit continues from exists (it is gone if the unlogged table was
# truncated by a crash, or its file is)
HAS_STATE = (
    f"select {_READABLE} from cerebro.states where config_id = %(config_id)s "
    "and epoch = %(epoch)s and partitions_done = %(done)s::int[]"
)
STATE_FROM_STATES = (
    "(select state from cerebro.states where config_id = %(config_id)s "
    "and epoch = %(epoch)s and partitions_done = %(done)s::int[])"
)
HAS_CHECKPOINT = (
    "select 1 from cerebro.checkpoints where config_id = %(config_id)s and epoch = %(epoch)s - 1"
)
STATE_FROM_CHECKPOINT = (
    "(select state from cerebro.checkpoints where config_id = "
    "%(config_id)s and epoch = %(epoch)s - 1)"
)
# An epoch's first unit on one server: the state the last epoch ended with, still in
# cerebro.states (a file, mapped at memory speed) when it is there, else its checkpoint (the
# same bytes: both were written by that epoch's last unit, and nothing rewrites an epoch's
# state once the next one may start)
STATE_FROM_LAST_EPOCH = (
    "coalesce((select state from cerebro.states where config_id = %(config_id)s "
    f"and epoch = %(epoch)s - 1 and {_READABLE}), {STATE_FROM_CHECKPOINT})"
)

# What a unit needs to know of its input, in one round trip: whether the sub-epoch state it
# continues from is there and readable (HAS_STATE), whether the checkpoint an epoch starts
# from is (HAS_CHECKPOINT), the input state when it is a reference, chunked or a file (null
# for an inline state), whether it is chunked, and the state file the config's states row
# names now (a training unit's upsert replaces it: deleted once that commits)
_INPUTS = f"""
select ({HAS_STATE}) is true, exists ({HAS_CHECKPOINT}),
       i.state, cerebro._chunk_blob(i.state) is not null,
       (select state from cerebro.states where config_id = %(config_id)s
           and cerebro._state_file(state) is not null)
  from (select case when cerebro._chunk_blob(s.state) is not null
                      or cerebro._state_file(s.state) is not null then s.state end as state
          from (select {{state}} as state) s) i
"""
STASH_STATE = "select cerebro._stash_state(%s)"

# The sub-epoch: the aggregate reads its input state in the server and the new state is
# upserted straight from its result; the returned row says whether it came back chunked.
_TRAIN = """
insert into {table} (config_id, epoch, partitions_done, state, result, updated_at)
select %(config_id)s, %(epoch)s, %(new_done)s::int[], (r.res).state,
       jsonb_build_object('loss', (r.res).loss, 'metrics', (r.res).metrics,
                          'rows', (r.res).rows, 'seconds', (r.res).seconds), now()
  from (select cerebro.train_subepoch({state}, %(spec)s, %(cfg)s)
               within group (order by buffer_id, x, y, num_rows) as res
          from cerebro.buffers
         where dataset_id = {dataset} and __dist_key__ = {partition}{group}) r
on conflict (config_id) do update
   set epoch = excluded.epoch, partitions_done = excluded.partitions_done,
       state = excluded.state, result = excluded.result, updated_at = excluded.updated_at
returning (result->>'loss')::float8, result->'metrics', (result->>'rows')::bigint,
          (result->>'seconds')::float8, cerebro._chunk_blob(state) is not null
"""
# a state too large for one value came back as a reference: write its chunk rows (the bytes
# wait in this backend's GD; same transaction as the states row)
WRITE_CHUNKS = """
insert into cerebro.state_chunks (blob, seq, data)
select u.blob, u.seq, u.data
  from cerebro.states s, lateral cerebro._unstash_chunks(s.state) u
 where s.config_id = %(config_id)s
"""
# the previous sub-epoch's chunks, unless a checkpoint keeps them
DROP_CHUNKS_OF = "select cerebro._drop_unreferenced_chunks(cerebro._chunk_blob(%s))"
DATABASE_OID = "select oid::int8 from pg_database where datname = current_database()"
# a state file the unit's upsert replaced, once that has committed (still named: kept)
DROP_STATE_FILE = "select cerebro._drop_state_file(%s)"
# state files no row names: a unit that did not commit, a crash, a removed config
COLLECT_STATE_FILES = "select cerebro._collect_state_files()"
SUBEPOCH_DONE = (
    "update cerebro.configs set partitions_done = %s::int[], lost_units = 0, "
    "updated_at = now() where config_id = %s"
)

_EVAL = """
select (res).loss, (res).metrics, (res).rows, (res).seconds from (
  select cerebro.evaluate_partition({state}, %(spec)s, %(cfg)s)
         within group (order by buffer_id, x, y, num_rows) as res
    from cerebro.buffers where dataset_id = {dataset} and __dist_key__ = {partition}{group}) r
"""

UNIT_OK = (
    "update cerebro.units set ended_at = clock_timestamp(), "
    "outcome = 'ok', result = %s where unit_id = %s"
)

# -- a unit that did not commit ------------------------------------------------------------------

UNIT_ENDED = (
    "update cerebro.units set outcome = %(outcome)s, ended_at = clock_timestamp(), "
    "error = %(error)s where unit_id = %(unit_id)s"
)
# a lost backend counts against the config whatever its status; a cancel only while active
# (a stop with immediate => true cancels on purpose)
COUNT_LOST = (
    "update cerebro.configs set lost_units = lost_units + 1 "
    "where config_id = %s returning lost_units"
)
COUNT_CANCELLED = (
    "update cerebro.configs set lost_units = lost_units + 1 where "
    "config_id = %s and status = 'active' returning lost_units"
)
# the steering trigger records the 'failed' event (actor: system)
FAIL_CONFIG = (
    "update cerebro.configs set status = 'failed', error = %s, "
    "updated_at = now() where config_id = %s and status = 'active'"
)

# The sub-epoch state is gone: the epoch's units so far (and this one) are lost, and the
# epoch restarts from its checkpoint.
LOSE_EPOCH_UNITS = (
    "update cerebro.units set outcome = 'lost', ended_at = "
    "coalesce(ended_at, clock_timestamp()), error = 'state lost' "
    "where config_id = %s and epoch = %s and (outcome = 'ok' or unit_id = %s)"
)
RESTART_EPOCH = (
    "update cerebro.configs set partitions_done = '{}' where config_id = %s and epoch = %s"
)
EPOCH_RESTARTED_EVENT = (
    "insert into cerebro.events (actor, workload_id, config_id, "
    "action, detail) values ('system', %s, %s, 'epoch_restarted', %s)"
)

# -- the epoch commit ------------------------------------------------------------------------

# Lock order workload -> config, as AutoML steps take them: no deadlock between an epoch
# commit (whose AutoML hook locks the workload) and a concurrent step.
LOCK_WORKLOAD = "select 1 from cerebro.workloads where workload_id = %s for no key update"
# the epoch counter moves only from the epoch this unit ran in: no row means it already moved
COMMIT_EPOCH = (
    "update cerebro.configs c set epoch = %(e)s, partitions_done = '{}', "
    "updated_at = now(), status = case when c.status = 'active' and %(e)s >= "
    "coalesce(c.max_epochs, w.max_epochs) then 'completed' else c.status end "
    "from cerebro.workloads w where w.workload_id = c.workload_id "
    "and c.config_id = %(c)s and c.epoch = %(e)s - 1 returning c.status"
)
# a state file's bytes go into the checkpoint (as chunks above the inline limit): checkpoints
# are logged, dumped with the database and never name a file
CHECKPOINT = (
    "insert into cerebro.checkpoints (config_id, epoch, state) "
    "select config_id, %(e)s, case when cerebro._state_file(state) is null then state "
    "else cerebro._checkpoint_state(state, %(inline_max)s) end "
    "from cerebro.states where config_id = %(c)s"
)
EPOCH_RESULTS = (
    "select kind, result from cerebro.units where config_id = %s and epoch = %s and outcome = 'ok'"
)
METRICS = (
    "insert into cerebro.metrics (config_id, epoch, train_loss, train_metrics, "
    "valid_loss, valid_metrics, rows, seconds) values (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# AutoML procedures decide at epoch boundaries, atomically with the epoch's commit
ON_EPOCH = "select cerebro._on_epoch(%s, %s)"


def inputs(state: str) -> sql.Composed:
    """What a unit reading its input state from ``state`` (a subquery above) needs to know
    before it runs (see _INPUTS)."""
    return sql.SQL(_INPUTS).format(state=sql.SQL(state))


def _group(mpp: bool) -> sql.SQL:
    """On Greenplum/Cloudberry the scan is grouped by the key, so the aggregate runs whole on
    the one segment holding it (engine._scan: the same statement as the golden files)."""
    return sql.SQL(" group by __dist_key__" if mpp else "")


def train(
    state: str, dataset_id: int, key: int, table: str = "states", mpp: bool = False
) -> sql.Composed:
    """The training statement of one sub-epoch, upserting into ``cerebro.<table>`` (a node's
    units use ``hop_states``). Dataset and key (the partition's ``__dist_key__``) are
    literals so that Greenplum dispatches it to the one segment holding the partition."""
    if table not in ("states", "hop_states"):
        raise ValueError(f"no state table {table!r}")
    return sql.SQL(_TRAIN).format(
        table=sql.SQL("cerebro." + table),  # as written, like the golden statements
        state=sql.SQL(state),
        dataset=sql.Literal(dataset_id),
        partition=sql.Literal(key),
        group=_group(mpp),
    )


def evaluate(state: str, dataset_id: int, key: int, mpp: bool = False) -> sql.Composed:
    """The evaluation statement of one validation partition (literals as in ``train``)."""
    return sql.SQL(_EVAL).format(
        state=sql.SQL(state),
        dataset=sql.Literal(dataset_id),
        partition=sql.Literal(key),
        group=_group(mpp),
    )


# -- nodes: partitions on other servers, states hopping between them (issue 14) ----------------

NODES = "select name, conninfo from cerebro.nodes"
PLACEMENTS = (
    "select p.dataset_id, p.partition, n.name, p.placed_at is not null "
    "from cerebro.placements p join cerebro.nodes n using (node_id)"
)
# what the scheduler saw of a node: null = reachable (cerebro.node_health, progress.waiting_on)
NODE_SEEN = "select cerebro._node_seen(%s, %s)"

# Shipping a partition placed on a node: there, the dataset row (its identity is its id and
# creation time; like_dataset is only the coordinator's business) and the buffers, replacing
# whatever an interrupted shipment left; here, the partition's size, then its rows go.
DATASET_STAMP = "select created_at from cerebro.datasets where dataset_id = %s"
FORGET_NODE_DATASET = "delete from cerebro.datasets where dataset_id = %s or name = %s"
DATASET_NAME = "select name from cerebro.datasets where dataset_id = %s"
DATASET_COLUMNS = [
    "dataset_id", "name", "source", "features", "label", "task", "classes", "feature_shape",
    "normalization", "statistics", "num_rows", "num_partitions", "buffer_rows",
    "rows_per_partition", "seed", "owner", "created_at", "encoding", "vocabulary",
]  # fmt: skip
BUFFER_COLUMNS = ["dataset_id", "__dist_key__", "buffer_id", "num_rows", "x", "y"]
DELETE_BUFFERS = "delete from cerebro.buffers where dataset_id = %s and __dist_key__ = %s"
PLACED = """
update cerebro.placements p set placed_at = now(), buffers = b.n, rows = b.r, bytes = b.s
  from (select count(*) as n, sum(num_rows) as r, sum(octet_length(x) + octet_length(y)) as s
          from cerebro.buffers where dataset_id = %(d)s and __dist_key__ = %(p)s) b
 where p.dataset_id = %(d)s and p.partition = %(p)s and p.placed_at is null
"""
# on a node: datasets the coordinator no longer places there (dropped, or loaded again)
NODE_DATASETS_GC = "delete from cerebro.datasets where dataset_id <> all(%s::int[])"
# state copies a node may still need: configs that can go on mid-epoch (a completed config
# starts its next epoch from the checkpoint; a deleted one has none)
LIVE_CONFIGS = (
    "select coalesce(array_agg(config_id), '{}') from cerebro.configs where status <> 'completed'"
)
NODE_STATES_GC = "delete from cerebro.hop_states where config_id <> all(%s::int[])"


def dataset_row(dataset_id: int) -> sql.Composed:
    """The dataset's row as a node stores it (COPY binds no parameters: literals)."""
    cols = [sql.Identifier(c) for c in DATASET_COLUMNS]
    return sql.SQL("select {} from cerebro.datasets where dataset_id = {}").format(
        sql.SQL(", ").join(cols), sql.Literal(dataset_id)
    )


def buffer_rows(dataset_id: int, partition: int) -> sql.Composed:
    return sql.SQL(
        "select {} from cerebro.buffers where dataset_id = {} and __dist_key__ = {}"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, BUFFER_COLUMNS)),
        sql.Literal(dataset_id),
        sql.Literal(partition),
    )


# A state between servers: the coordinator's cerebro.states (and checkpoints), a node's
# cerebro.hop_states; the same columns on both.
STATE_COLUMNS = ["config_id", "epoch", "partitions_done", "state", "result", "updated_at"]
HOP_STATE = (
    "(select state from cerebro.hop_states where config_id = %(config_id)s "
    "and epoch = %(epoch)s and partitions_done = %(done)s::int[])"
)
HAS_HOP_STATE = (
    "select 1 from cerebro.hop_states where config_id = %(config_id)s "
    "and epoch = %(epoch)s and partitions_done = %(done)s::int[]"
)
FRESH_STATE = "(select null::bytea)"
# a chunked state is a reference to rows of this server: it cannot hop as it is
STATE_IS_CHUNKED = (
    "select cerebro._chunk_blob(state) is not null from cerebro.states "
    "where config_id = %(config_id)s"
)
CHECKPOINT_IS_CHUNKED = (
    "select cerebro._chunk_blob(state) is not null from cerebro.checkpoints "
    "where config_id = %(config_id)s and epoch = %(epoch)s - 1"
)


def clear_state(table: str) -> sql.Composed:
    """Make room for a config's incoming state (one row per config and server)."""
    return sql.SQL("delete from {} where config_id = %s").format(sql.Identifier("cerebro", table))


def forget_state(table: str) -> sql.Composed:
    """Drop a copy that has moved on (only that very state: a newer one stays)."""
    return sql.SQL(
        "delete from {} where config_id = %s and epoch = %s and partitions_done = %s::int[]"
    ).format(sql.Identifier("cerebro", table))


def state_row(table: str, config_id: int, epoch: int, done: list[int]) -> sql.Composed:
    """A config's state after ``done`` in ``epoch``, as a row of STATE_COLUMNS (a state
    file's bytes, not its reference: the file stays on this server)."""
    cols = [
        sql.SQL(
            "case when cerebro._state_file(state) is null then state "
            "else cerebro._state_value(state) end"
        )
        if c == "state"
        else sql.Identifier(c)
        for c in STATE_COLUMNS
    ]
    return sql.SQL(
        "select {} from {} where config_id = {} and epoch = {} and partitions_done = {}::int[]"
    ).format(
        sql.SQL(", ").join(cols),
        sql.Identifier("cerebro", table),
        sql.Literal(config_id),
        sql.Literal(epoch),
        sql.Literal(done),
    )


def checkpoint_as_state(config_id: int, epoch: int) -> sql.Composed:
    """The checkpoint epoch ``epoch`` starts from, as the state before its first partition."""
    return sql.SQL(
        "select config_id, {e}, '{{}}'::int[], state, null::jsonb, now() "
        "from cerebro.checkpoints where config_id = {c} and epoch = {e} - 1"
    ).format(e=sql.Literal(epoch), c=sql.Literal(config_id))


# what the server is (PostgreSQL, Greenplum 7, Cloudberry): engine.detect reads it
VERSION = "select version()"
