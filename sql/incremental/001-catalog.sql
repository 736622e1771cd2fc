-- The catalog: every piece of state cerebro has is a row in one of these tables.
-- Incremental: runs exactly once per database (tables, types, roles).

-- The schema is created here (not by the control file) so that it belongs to the extension
-- and DROP EXTENSION removes it with everything in it.
create schema cerebro;
comment on schema cerebro is 'cerebro: in-database deep-learning model selection';

do $roles$
begin
    -- Roles are cluster-wide, so they outlive DROP EXTENSION; create them only when missing.
    if not exists (select 1 from pg_roles where rolname = 'cerebro_user') then
        create role cerebro_user nologin;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'cerebro_admin') then
        create role cerebro_admin nologin;
    end if;
    execute 'grant cerebro_user to cerebro_admin';
end
$roles$;

-- Models: the built-in roster and custom Keras scripts registered by an admin.
create table cerebro.models (
    model_id     serial primary key,
    name         text not null unique
                 check (name ~ '^[a-z_][a-z0-9_]{0,62}$'),
    kind         text not null check (kind in ('roster', 'custom')),
    source       text,              -- Python source of a custom model
    entry_point  text not null,     -- function name (custom) or module:function (roster)
    param_schema jsonb not null default '{}'::jsonb,
    description  text,
    owner        name not null default current_user,
    created_at   timestamptz not null default now(),
    check ((kind = 'custom') = (source is not null))
);

-- Datasets: packed, shuffled, partitioned copies of a table or view.
create table cerebro.datasets (
    dataset_id     serial primary key,
    name           text not null unique
                   check (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
    source         text not null,            -- the relation it was loaded from
    features       jsonb not null,           -- list of feature expressions as given
    label          text not null,
    task           text not null check (task in ('classification', 'regression')),
    classes        jsonb,                    -- class list (index = encoded label)
    feature_shape  int[] not null,
    normalization  jsonb not null,           -- {"method": ..., "mean": [...], "std": [...]}
    statistics     jsonb not null,           -- per-feature min/max/mean/std of the raw data
    num_rows       bigint not null check (num_rows > 0),
    num_partitions int not null check (num_partitions between 1 and 1024),
    buffer_rows    int not null check (buffer_rows > 0),
    rows_per_partition bigint[] not null,
    seed           bigint not null,
    like_dataset   int references cerebro.datasets (dataset_id) on delete restrict,
    owner          name not null default current_user,
    created_at     timestamptz not null default now(),
    check ((task = 'classification') = (classes is not null)),
    check (cardinality(rows_per_partition) = num_partitions)
);

-- Packed minibatch buffers. One table for all datasets; __dist_key__ is the partition
-- ("segment") a buffer lives on. On Greenplum/Cloudberry this table is DISTRIBUTED BY
-- (__dist_key__); on PostgreSQL a worker backend reads one key.
create table cerebro.buffers (
    dataset_id   int not null references cerebro.datasets (dataset_id) on delete cascade,
    __dist_key__ int not null check (__dist_key__ >= 0),
    buffer_id    int not null check (buffer_id >= 0),
    num_rows     int not null check (num_rows > 0),
    x            bytea not null,    -- float32, C order, little endian: (num_rows, *feature_shape)
    y            bytea not null,    -- int32 class index or float32 target: (num_rows,)
    primary key (dataset_id, __dist_key__, buffer_id)
);
-- Random float bytes do not compress: store them as they are (faster load and scan).
alter table cerebro.buffers alter column x set storage external;
alter table cerebro.buffers alter column y set storage external;

-- Workloads: one model-selection search.
create table cerebro.workloads (
    workload_id     serial primary key,
    name            text not null unique,
    model_id        int not null references cerebro.models (model_id),
    train_dataset   int not null references cerebro.datasets (dataset_id),
    valid_dataset   int references cerebro.datasets (dataset_id),
    search          text not null default 'grid',
    search_state    bytea,
    options         jsonb not null default '{}'::jsonb,   -- search procedure parameters
    space           jsonb not null default '{}'::jsonb,
    objective       text not null default 'valid_loss',
    objective_direction text not null default 'min'
                    check (objective_direction in ('min', 'max')),
    num_configs     int check (num_configs > 0),
    fixed_params    jsonb not null default '{}'::jsonb,
    max_epochs      int not null default 10 check (max_epochs > 0),
    parent_workload int references cerebro.workloads (workload_id) on delete set null,
    priority        int not null default 0,
    status          text not null default 'active'
                    check (status in ('active', 'paused', 'cancelled', 'completed')),
    seed            bigint not null default 0,
    owner           name not null default current_user,
    created_at      timestamptz not null default now()
);

-- Configs: one point of the search; status is steered by humans and AutoML alike.
create table cerebro.configs (
    config_id       serial primary key,
    workload_id     int not null references cerebro.workloads (workload_id) on delete cascade,
    params          jsonb not null check (jsonb_typeof(params) = 'object'),
    status          text not null default 'active'
                    check (status in ('active', 'stopped', 'completed', 'failed')),
    epoch           int not null default 0 check (epoch >= 0),   -- completed epochs
    partitions_done int[] not null default '{}',                 -- visited this epoch
    max_epochs      int check (max_epochs > 0),
    priority        int not null default 0,
    seed            bigint not null default 0,
    parent_config   int references cerebro.configs (config_id) on delete set null,
    source          text not null default 'human'
                    check (source in ('human', 'automl', 'clone')),
    error           text,
    lost_units      int not null default 0,     -- sub-epochs lost to crashes in a row
    clone_epoch     int,                        -- parent's epoch this clone started from
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index configs_workload_status on cerebro.configs (workload_id, status);

-- Metrics: one row per config per completed epoch (exactly once).
create table cerebro.metrics (
    config_id     int not null references cerebro.configs (config_id) on delete cascade,
    epoch         int not null check (epoch > 0),
    train_loss    double precision,
    train_metrics jsonb not null default '{}'::jsonb,
    valid_loss    double precision,
    valid_metrics jsonb not null default '{}'::jsonb,
    rows          bigint not null default 0,
    seconds       double precision not null default 0,
    created_at    timestamptz not null default now(),
    primary key (config_id, epoch)
);

-- Checkpoints: the model state at the end of an epoch, committed with its metrics row.
create table cerebro.checkpoints (
    config_id  int not null references cerebro.configs (config_id) on delete cascade,
    epoch      int not null check (epoch >= 0),
    state      bytea not null,
    created_at timestamptz not null default now(),
    primary key (config_id, epoch)
);
alter table cerebro.checkpoints alter column state set storage external;

-- The state after the latest sub-epoch; losing it on a crash loses at most that sub-epoch.
create unlogged table cerebro.states (
    config_id       int primary key references cerebro.configs (config_id) on delete cascade,
    epoch           int not null,
    partitions_done int[] not null,
    state           bytea not null,
    updated_at      timestamptz not null default now()
);
alter table cerebro.states alter column state set storage external;

-- Units: the execution log, one row per sub-epoch (train) or evaluation (valid) attempt.
create table cerebro.units (
    unit_id     bigserial primary key,
    config_id   int not null references cerebro.configs (config_id) on delete cascade,
    epoch       int not null,
    partition   int not null,
    kind        text not null check (kind in ('train', 'valid')),
    worker      int,
    backend_pid int,                             -- the backend running it (stop immediate)
    started_at  timestamptz not null default clock_timestamp(),
    ended_at    timestamptz,
    outcome     text check (outcome in ('ok', 'failed', 'cancelled', 'lost')),
    result      jsonb,                          -- loss, metrics, rows, seconds
    error       text
);
create index units_open on cerebro.units (unit_id) where ended_at is null;
create index units_config on cerebro.units (config_id, epoch);

-- Events: every steering action, by a human, an AutoML procedure or the system.
create table cerebro.events (
    event_id    bigserial primary key,
    at          timestamptz not null default clock_timestamp(),
    actor       text not null,
    workload_id int references cerebro.workloads (workload_id) on delete cascade,
    config_id   int references cerebro.configs (config_id) on delete cascade,
    action      text not null,
    detail      jsonb not null default '{}'::jsonb
);

-- Schedulers: the active one holds an advisory lock; standbys wait for it.
create table cerebro.schedulers (
    pid          int primary key,               -- backend pid of its leader connection
    host         text,
    os_pid       int,
    role         text not null check (role in ('leader', 'standby')),
    workers      int,
    started_at   timestamptz not null default now(),
    heartbeat_at timestamptz not null default now()
);

-- Results of the in-database aggregates.
create type cerebro.subepoch_result as (
    state   bytea,
    loss    double precision,
    metrics jsonb,
    rows    bigint,
    seconds double precision
);
create type cerebro.eval_result as (
    loss    double precision,
    metrics jsonb,
    rows    bigint,
    seconds double precision
);
