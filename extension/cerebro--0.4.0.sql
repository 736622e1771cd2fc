-- complain if this script is sourced in psql rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION cerebro" to load this file. \quit
-- cerebro 0.4.0: built from sql/ by `cerebro build-sql`; do not edit.

-- ==== incremental/001-catalog.sql ====
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

-- ==== incremental/002-roster.sql ====
-- The built-in model roster. Parameter schemas mirror udfs/cerebro_udfs/roster/*.py.
insert into cerebro.models (name, kind, entry_point, param_schema, description) values
('mlp', 'roster', 'mlp', '{
   "hidden":        {"type": "int_list", "default": [64]},
   "activation":    {"type": "choice", "values": ["relu", "tanh", "gelu", "elu", "sigmoid"], "default": "relu"},
   "dropout":       {"type": "float", "min": 0.0, "max": 0.95, "default": 0.0},
   "optimizer":     {"type": "choice", "values": ["adam", "adamw", "sgd", "rmsprop"], "default": "adam"},
   "learning_rate": {"type": "float", "min": 1e-7, "max": 10.0, "default": 0.001},
   "batch_size":    {"type": "int", "min": 1, "max": 65536, "default": 64}
 }'::jsonb,
 'multi-layer perceptron: hidden layer sizes, activation, dropout, optimizer, learning rate');

-- ==== incremental/003-datasets-encoding.sql ====
-- 0.2.0: image and text datasets. `encoding` says how a source row became a feature tensor
-- ({"kind": "numeric"} | {"kind": "image", "size": [h, w], "channels": c} |
--  {"kind": "text", "max_length": n, "lowercase": true, "vocabulary_size": v}); the WordPiece
-- vocabulary of a text dataset is kept apart so that the training path never reads it.
alter table cerebro.datasets add column encoding jsonb not null default '{"kind": "numeric"}';
alter table cerebro.datasets add column vocabulary text[];
alter table cerebro.datasets add constraint datasets_text_has_vocabulary
    check ((encoding ->> 'kind' = 'text') = (vocabulary is not null));

-- load_dataset gained image and text parameters: drop the 0.1.0 signature (an upgrade would
-- otherwise keep it as an ambiguous overload).
drop function if exists cerebro.load_dataset(text, text, text[], text, int, int, bigint, text,
                                             text, text);

-- ==== incremental/004-roster-models.sql ====
-- 0.2.0: the image and text roster models, and initial weights for mlp. Parameter schemas
-- mirror PARAMS in udfs/cerebro_udfs/roster/*.py (a test keeps them equal).
update cerebro.models set param_schema = $json${"hidden": {"type": "int_list", "default": [64]}, "activation": {"type": "choice", "values": ["relu", "tanh", "gelu", "elu", "sigmoid"], "default": "relu"}, "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.0}, "optimizer": {"type": "choice", "values": ["adam", "adamw", "sgd", "rmsprop"], "default": "adam"}, "learning_rate": {"type": "float", "min": 1e-07, "max": 10.0, "default": 0.001}, "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 64}, "weights": {"type": "path", "default": null}}$json$::jsonb where name = 'mlp';
insert into cerebro.models (name, kind, entry_point, param_schema, description) values
('resnet50', 'roster', 'resnet50', $json${"width": {"type": "int", "min": 4, "max": 256, "default": 64}, "blocks": {"type": "int_list", "default": [3, 4, 6, 3]}, "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.0}, "bn_momentum": {"type": "float", "min": 0.0, "max": 0.9999, "default": 0.99}, "optimizer": {"type": "choice", "values": ["adam", "adamw", "sgd", "rmsprop"], "default": "adam"}, "learning_rate": {"type": "float", "min": 1e-07, "max": 10.0, "default": 0.001}, "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 32}, "weights": {"type": "path", "default": null}}$json$::jsonb,
 'ResNet-50 v1 for images [h, w, c] (>= 32x32): width (base filters, 64 = full), blocks per stage ([3, 4, 6, 3] = full, 25.6M parameters at 224x224x3 / 1000 classes), dropout before the head, batch-norm momentum, optimizer, learning rate, initial weights file'),
('mobilenet', 'roster', 'mobilenet', $json${"alpha": {"type": "choice", "values": [0.35, 0.5, 0.75, 1.0, 1.3, 1.4], "default": 1.0}, "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.0}, "bn_momentum": {"type": "float", "min": 0.0, "max": 0.9999, "default": 0.999}, "optimizer": {"type": "choice", "values": ["adam", "adamw", "sgd", "rmsprop"], "default": "adam"}, "learning_rate": {"type": "float", "min": 1e-07, "max": 10.0, "default": 0.001}, "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 32}, "weights": {"type": "path", "default": null}}$json$::jsonb,
 'MobileNetV2 for images [h, w, c] (>= 32x32): alpha width multiplier (1.0 = full, 3.5M parameters at 224x224x3 / 1000 classes), dropout before the head, batch-norm momentum, optimizer, learning rate, initial weights file'),
('bert_base', 'roster', 'bert_base', $json${"num_layers": {"type": "int", "min": 1, "max": 48, "default": 12}, "num_heads": {"type": "int", "min": 1, "max": 64, "default": 12}, "hidden_dim": {"type": "int", "min": 8, "max": 4096, "default": 768}, "intermediate_dim": {"type": "int", "min": 8, "max": 16384, "default": 3072}, "max_positions": {"type": "int", "min": 8, "max": 8192, "default": 512}, "vocabulary_size": {"type": "int", "min": 16, "max": 1000000, "default": null}, "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.1}, "optimizer": {"type": "choice", "values": ["adam", "adamw", "sgd", "rmsprop"], "default": "adam"}, "learning_rate": {"type": "float", "min": 1e-07, "max": 10.0, "default": 0.0001}, "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 32}, "weights": {"type": "path", "default": null}}$json$::jsonb,
 'BERT-base Transformer encoder for token ids (text datasets): 12 layers x 768 hidden x 12 heads x 3072 feed-forward by default (109.5M parameters with a 30,522-token vocabulary), [CLS] pooler, dropout, optimizer, learning rate, initial weights file'),
('distilbert', 'roster', 'distilbert', $json${"num_layers": {"type": "int", "min": 1, "max": 48, "default": 6}, "num_heads": {"type": "int", "min": 1, "max": 64, "default": 12}, "hidden_dim": {"type": "int", "min": 8, "max": 4096, "default": 768}, "intermediate_dim": {"type": "int", "min": 8, "max": 16384, "default": 3072}, "max_positions": {"type": "int", "min": 8, "max": 8192, "default": 512}, "vocabulary_size": {"type": "int", "min": 16, "max": 1000000, "default": null}, "dropout": {"type": "float", "min": 0.0, "max": 0.95, "default": 0.1}, "optimizer": {"type": "choice", "values": ["adam", "adamw", "sgd", "rmsprop"], "default": "adam"}, "learning_rate": {"type": "float", "min": 1e-07, "max": 10.0, "default": 0.0001}, "batch_size": {"type": "int", "min": 1, "max": 65536, "default": 32}, "weights": {"type": "path", "default": null}}$json$::jsonb,
 'DistilBERT Transformer encoder for token ids (text datasets): 6 layers x 768 x 12 heads x 3072 by default (66.4M parameters with a 30,522-token vocabulary), pre-classifier, dropout, optimizer, learning rate, initial weights file');

-- ==== incremental/005-state-chunks.sql ====
-- 0.2.0: model states larger than one PostgreSQL value (1 GB), e.g. BERT-base with Adam.
-- states.state / checkpoints.state then hold a small reference (b'CRBCHUNK' | 16-byte blob id
-- | JSON) and the bytes live here, in order. Blobs are immutable: a clone's checkpoint shares
-- its parent's. Unreferenced blobs are removed by cerebro._drop_unreferenced_chunks().
create table cerebro.state_chunks (
    blob       bytea not null check (octet_length(blob) = 16),
    seq        int not null check (seq >= 0),
    data       bytea not null,
    created_at timestamptz not null default now(),
    primary key (blob, seq)
);
alter table cerebro.state_chunks alter column data set storage external;

-- The loss, metrics, rows and seconds of the sub-epoch that produced `state`: the training
-- statement returns them from this row, so the (possibly huge) aggregate result is never
-- materialised a second time.
alter table cerebro.states add column result jsonb;

-- ==== incremental/006-security.sql ====
-- 0.4.0: safe to share. Four roles, owners set by the server, per-workload sharing, and the
-- caps on every size a user chooses. Row-level security, the steering rules and the grants
-- are in sql/idempotent/080-security.sql and 090-grants.sql.

do $roles$
begin
    -- read-only views for BI tools and dashboards
    if not exists (select 1 from pg_roles where rolname = 'cerebro_reader') then
        create role cerebro_reader nologin;
    end if;
    -- the scheduler daemon's login (cerebro up gives it LOGIN on the embedded server); it
    -- schedules every user's work, so it bypasses row-level security, and nothing else
    if not exists (select 1 from pg_roles where rolname = 'cerebro_scheduler') then
        create role cerebro_scheduler nologin bypassrls;
    elsif not (select rolbypassrls from pg_roles where rolname = 'cerebro_scheduler') then
        -- only when missing: roles are cluster-wide, and two databases creating the
        -- extension at once would fail one ALTER ROLE with "tuple concurrently updated"
        alter role cerebro_scheduler bypassrls;
    end if;
end
$roles$;

-- Owners are the session user that created the row, whoever's function wrote it.
alter table cerebro.datasets alter column owner set default session_user;
alter table cerebro.workloads alter column owner set default session_user;
alter table cerebro.models alter column owner set default session_user;

-- A workload shared with another role: 'read' (see it, its configs, metrics and events) or
-- 'steer' (also stop, resume, add, clone and reprioritise). See cerebro.share().
create table cerebro.shares (
    workload_id int not null references cerebro.workloads (workload_id) on delete cascade,
    grantee     name not null,
    level       text not null check (level in ('read', 'steer')),
    granted_by  name not null default session_user,
    granted_at  timestamptz not null default now(),
    primary key (workload_id, grantee)
);

-- Initial weights uploaded as bytes (cerebro.upload_weights), so that nobody needs to read
-- server files: the file lives under the data directory, at `path`, written by cerebro.
create table cerebro.weights (
    weights_id serial primary key,
    name       text not null check (name ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$'),
    owner      name not null default session_user,
    path       text not null unique,
    sha256     text not null,
    bytes      bigint not null check (bytes > 0),
    created_at timestamptz not null default now(),
    unique (owner, name)
);

-- Caps on what a user may ask for. Admins raise one with
--   UPDATE cerebro.limits SET value = ... WHERE name = 'max_configs';
-- (a table, not a setting: any session can SET a setting, only cerebro_admin updates this).
create table cerebro.limits (
    name        text primary key check (name ~ '^max_[a-z_]+$'),
    value       double precision not null check (value > 0),
    description text not null
);
insert into cerebro.limits (name, value, description) values
('max_configs', 1000, 'configs per workload (num_configs at launch, plus configs added later)'),
('max_parallelism', 64, 'hyperopt configs in flight (options.parallelism)'),
('max_partitions', 256, 'partitions of a dataset (load_dataset num_partitions)'),
('max_buffer_bytes', 268435456, 'bytes of one packed buffer (buffer_rows x row size)'),
('max_image_side', 1024, 'height and width of image_size'),
('max_text_length', 8192, 'max_length of a text dataset'),
('max_vocabulary_size', 1000000, 'vocabulary_size of a text dataset or model'),
('max_layer_width', 65536, 'units of one layer (hidden sizes, hidden_dim, width)'),
('max_model_params', 500000000, 'estimated parameters of one roster model config'),
('max_epochs', 100000, 'max_epochs of a workload or config'),
('max_priority', 1000000, 'absolute value of a workload or config priority'),
('max_upload_bytes', 1073741824, 'bytes of one upload_weights file');

-- Argument types changed: source is a regclass, resolved with the caller's search_path when
-- the call is parsed (the functions themselves run with search_path pinned). Drop the old
-- signatures, which would otherwise stay as ambiguous overloads.
drop function if exists cerebro.load_dataset(text, text, text[], text, int, int, bigint, text,
                                             text, text, int[], int, int, text[], int, boolean);
drop function if exists cerebro.predict(int, text, text, text, int, int);

-- ==== incremental/007-dump.sql ====
-- 0.4.0: dump and restore (README, "Backup: pg_dump and restore"). pg_dump skips the rows of
-- an extension's tables unless the extension marks them with pg_extension_config_dump; these
-- are the tables whose rows are users' work, so a dump taken by a superuser holds all of it
-- and a restore into a new cluster trains on where the dump left off. Tables created by a
-- later migration mark themselves there (this one runs before them).
--
-- Not dumped: cerebro.schedulers, the daemons connected to *this* server (backend pids and
-- heartbeats), which mean nothing elsewhere; a scheduler started on the restored database
-- writes its own row.
--
-- Dumped, and why the restored rows are consistent: pg_dump reads every table in one
-- snapshot, and the scheduler commits a sub-epoch's state (states, state_chunks), its unit
-- and configs.partitions_done in one transaction, and an epoch's checkpoint, metrics row and
-- epoch counter in another. So:
--   states        the sub-epoch state of each config in the middle of an epoch (unlogged,
--                 but pg_dump reads unlogged tables): the restored scheduler continues the
--                 epoch from it instead of restarting it. When it is not in the dump
--                 (--no-unlogged-table-data, or a dump taken on a standby) the epoch restarts
--                 from its checkpoint, as after a crash of the server.
--   units         not only a log: the validation partitions done this epoch and the epoch's
--                 metrics come from its 'ok' rows; a unit in flight at the dump (open row) is
--                 booked 'lost' by the restore (below) and runs again.
--   events        the audit trail, and the history the AutoML procedures read.
--   state_chunks  the bytes of chunked states and checkpoints.
--   weights       the uploads' rows; their files live in the data directory
--                 (cerebro_weights/), which pg_dump does not read: copy that directory.
select pg_catalog.pg_extension_config_dump('cerebro.datasets', '');
select pg_catalog.pg_extension_config_dump('cerebro.datasets_dataset_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.buffers', '');
select pg_catalog.pg_extension_config_dump('cerebro.workloads', '');
select pg_catalog.pg_extension_config_dump('cerebro.workloads_workload_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.configs', '');
select pg_catalog.pg_extension_config_dump('cerebro.configs_config_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.metrics', '');
select pg_catalog.pg_extension_config_dump('cerebro.checkpoints', '');
select pg_catalog.pg_extension_config_dump('cerebro.states', '');
select pg_catalog.pg_extension_config_dump('cerebro.state_chunks', '');
select pg_catalog.pg_extension_config_dump('cerebro.units', '');
select pg_catalog.pg_extension_config_dump('cerebro.units_unit_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.events', '');
select pg_catalog.pg_extension_config_dump('cerebro.events_event_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.shares', '');
select pg_catalog.pg_extension_config_dump('cerebro.weights', '');
select pg_catalog.pg_extension_config_dump('cerebro.weights_weights_id_seq', '');

-- The extension script itself inserts rows into two tables: the roster models and the
-- default caps. Their dumped rows are wanted all the same: an admin's raised cap must
-- survive, and a roster model's id is what workloads reference, and it is not the same in
-- every database (one created at 0.1.0 that had custom models before its upgrade to 0.2.0
-- numbered the later roster models after them). So both tables are dumped whole, and in a
-- restore a dumped row replaces the row CREATE EXTENSION installed under the same name.
select pg_catalog.pg_extension_config_dump('cerebro.models', '');
select pg_catalog.pg_extension_config_dump('cerebro.models_model_id_seq', '');
select pg_catalog.pg_extension_config_dump('cerebro.limits', '');

-- A restore runs with session_replication_role = replica (superuser only; README): the
-- catalog's triggers exist as soon as CREATE EXTENSION ran, before the data is loaded, and
-- must not treat restored rows as new steering (owners from the session, the config state
-- machine, events, NOTIFY, foreign keys checked row by row). The three triggers below are
-- the only ones that act then, and they act only then: never in normal use. (The one on
-- models fires always, to say what to do when a dump is restored without replica.)
create function cerebro._restore_model() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if pg_catalog.current_setting('session_replication_role') <> 'replica' then
        if new.kind = 'roster' and exists (select 1 from cerebro.models m
                                            where m.name = new.name) then
            raise exception 'cerebro: roster model % is already installed', new.name
                  using errcode = '23505',
                        hint = 'restoring a dump? run pg_restore with PGOPTIONS=''-c '
                               'session_replication_role=replica'' (README, "Backup: '
                               'pg_dump and restore")';
        end if;
        return new;
    end if;
    -- the installed roster model of this name gives way to the dumped one
    delete from cerebro.models m where m.name = new.name;
    -- an installed roster model holding this id steps aside until its own dumped row
    -- replaces it (a negative id is never a dumped one, and nothing in the new database
    -- references an installed row yet)
    update cerebro.models m set model_id = -m.model_id where m.model_id = new.model_id;
    return new;
end
$$;
create trigger restore_replaces before insert on cerebro.models
    for each row execute function cerebro._restore_model();
alter table cerebro.models enable always trigger restore_replaces;

create function cerebro._restore_limit() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    -- the installed default gives way to the dumped value (a cap added by a later release
    -- than the dump's keeps its default)
    delete from cerebro.limits l where l.name = new.name;
    return new;
end
$$;
create trigger restore_replaces before insert on cerebro.limits
    for each row execute function cerebro._restore_limit();
alter table cerebro.limits enable replica trigger restore_replaces;

create function cerebro._restore_unit() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    -- a unit that was running when the dump was taken never commits here: booked lost at
    -- once, as a scheduler's recovery would (a scheduler may be running here already), so
    -- that its backend_pid, the old server's, is never taken for a backend of this one
    -- (cerebro.stop(..., immediate => true) cancels the backend of an open unit)
    if new.ended_at is null then
        new.outcome := 'lost';
        new.ended_at := now();
        new.error := 'in flight when the database was dumped';
    end if;
    return new;
end
$$;
create trigger restore_closes before insert on cerebro.units
    for each row execute function cerebro._restore_unit();
alter table cerebro.units enable replica trigger restore_closes;

-- ==== incremental/008-retention.sql ====
-- 0.4.0: nothing grows without bound. A search runs for days: units (one row per sub-epoch)
-- and events go after a retention that admins set, and checkpoints (one model state per
-- config per epoch) are pruned to a workload's keep_checkpoints. The functions are in
-- sql/idempotent/075-housekeeping.sql; the README's "Retention and disk use" describes it.

-- Retention settings live next to the caps in cerebro.limits (only cerebro_admin updates it):
-- `<what>_retention_days`, where 0 means keep for ever.
alter table cerebro.limits drop constraint limits_name_check;
alter table cerebro.limits add constraint limits_name_check
    check (name ~ '^(max_[a-z_]+|[a-z]+_retention_days)$');
alter table cerebro.limits drop constraint limits_value_check;
alter table cerebro.limits add constraint limits_value_check
    check (value > 0 or (value = 0 and name ~ '_retention_days$'));
insert into cerebro.limits (name, value, description) values
('units_retention_days', 30,
 'days a finished unit (cerebro.units row of a committed epoch) is kept; 0 = for ever'),
('events_retention_days', 365,
 'days an event is kept once its workload is idle (no active config, no newer event); '
 '0 = for ever');

-- What the retention deletes by: the end of a unit, the time of a workload's events.
create index units_ended on cerebro.units (ended_at) where ended_at is not null;
create index events_workload_at on cerebro.events (workload_id, at);

-- Checkpoints removed by keep_checkpoints or cerebro.prune_checkpoints, so that asking for
-- one says it was pruned (and under which keep) rather than that it never existed.
create table cerebro.pruned_checkpoints (
    config_id  int not null references cerebro.configs (config_id) on delete cascade,
    epoch      int not null check (epoch >= 0),
    keep       int not null check (keep > 0),     -- the keep_checkpoints it was pruned under
    bytes      bigint not null default 0,         -- size of the model state it held
    pruned_at  timestamptz not null default now(),
    primary key (config_id, epoch)
);
-- user data: pg_dump keeps it (see 007-dump.sql)
select pg_catalog.pg_extension_config_dump('cerebro.pruned_checkpoints', '');

-- ==== incremental/009-scheduler.sql ====
-- The scheduler's own row says since when its process runs and the last error it recovered
-- from (cerebro status and a human read them; the daemon never dies of an error, it records
-- it here and in its log, and retries).
alter table cerebro.schedulers
    add column since         timestamptz,   -- the daemon process started (not this connection)
    add column last_error    text,
    add column last_error_at timestamptz;

-- ==== incremental/010-nodes.sql ====
-- 0.4.0: nodes (issue 14). A deployment is one coordinator database (this one: catalog,
-- workloads, configs, metrics, checkpoints, events) and the PostgreSQL servers registered
-- here as nodes. The coordinator itself is the implicit node 'local': with no row here,
-- everything runs on this one server as before.
--
-- conninfo never holds a secret (cerebro.add_node refuses one): the password comes from where
-- libpq always looks (.pgpass / PGPASSFILE, a service file, the environment) on the machine
-- that connects. last_seen_at / last_error are written by the health probe (cerebro nodes,
-- cerebro status) through cerebro._node_seen.
create table cerebro.nodes (
    node_id       serial primary key,
    name          text not null unique
                  check (name ~ '^[a-z_][a-z0-9_]{0,62}$' and name <> 'local'),
    conninfo      text not null,
    added_at      timestamptz not null default now(),
    added_by      text not null,
    last_seen_at  timestamptz,
    last_error    text,
    last_error_at timestamptz
);
-- the nodes are the deployment's shape, not a property of this server: a dump keeps them
select pg_catalog.pg_extension_config_dump('cerebro.nodes', '');
select pg_catalog.pg_extension_config_dump('cerebro.nodes_node_id_seq', '');

-- ==== incremental/011-placement.sql ====
-- 0.4.0: partitions placed on nodes, and the state cache of a node (issue 14).
--
-- A dataset loaded with load_dataset(..., nodes => ...) is packed here, on the coordinator,
-- as before (one encoding, one normalisation, the same checks); each partition that belongs
-- on another server gets a row here, and the scheduler ships its buffers there with binary
-- COPY, then deletes them here. A partition without a row lives on the coordinator
-- ('local'), which is how every dataset of a single-server deployment stays.
create table cerebro.placements (
    dataset_id int not null references cerebro.datasets (dataset_id) on delete cascade,
    partition  int not null check (partition >= 0),
    node_id    int not null references cerebro.nodes (node_id) on delete restrict,
    placed_at  timestamptz,          -- null: still here, waiting for the scheduler to ship it
    buffers    bigint,               -- as shipped (the coordinator no longer has the rows)
    rows       bigint,
    bytes      bigint,
    primary key (dataset_id, partition)
);

-- On a node: the state after the last sub-epoch a config ran there (a cache: the coordinator
-- holds the truth, checkpoints and the epoch counter). No foreign keys, since a node has no
-- configs; unlogged, since losing it in a crash only restarts that config's epoch.
create unlogged table cerebro.hop_states (
    config_id       int primary key,
    epoch           int not null,
    partitions_done int[] not null,
    state           bytea not null,
    result          jsonb,
    updated_at      timestamptz not null default now()
);
alter table cerebro.hop_states alter column state set storage external;
-- where partitions live is the user's data, like the datasets: a dump keeps it
select pg_catalog.pg_extension_config_dump('cerebro.placements', '');
-- and a node's state cache, as cerebro.states: a restored node goes on mid-epoch
select pg_catalog.pg_extension_config_dump('cerebro.hop_states', '');

-- ==== incremental/012-segment-keys.sql ====
-- 0.4.0: on Greenplum 7 / Apache Cloudberry, partition p of a dataset is stored under the
-- __dist_key__ value that the engine's hash puts on the p-th segment (load_dataset asks the
-- engine: engine.partition_keys), so that each partition sits on its own segment.
-- dist_keys[p + 1] is that key; null means key = partition number (PostgreSQL).
alter table cerebro.datasets add column dist_keys int[]
    check (dist_keys is null or cardinality(dist_keys) = num_partitions);

-- ==== idempotent/005-access.sql ====
-- Access: who the session is (admin, scheduler, trusted statement, actor) and what it may
-- see or steer. Used by the row-level security policies (080-security.sql), the views and the
-- SECURITY DEFINER verbs, which check ownership with these same functions.

-- Whether the session user is an admin (a member of cerebro_admin; superusers are).
create or replace function cerebro._is_admin() returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select pg_catalog.pg_has_role(session_user, 'cerebro_admin', 'member')
$$;

-- Whether the session is the scheduler daemon's (a member of cerebro_scheduler).
create or replace function cerebro._is_scheduler() returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select pg_catalog.pg_has_role(session_user, 'cerebro_scheduler', 'member')
$$;

-- Whether the statement being run is trusted with every column: issued by the scheduler, a
-- superuser, or a cerebro verb (SECURITY DEFINER, so current_user is the extension owner).
-- SECURITY INVOKER on purpose: current_user is whoever runs the statement.
create or replace function cerebro._trusted() returns boolean
language sql stable set search_path = pg_catalog, pg_temp as $$
    select coalesce((select r.rolsuper from pg_catalog.pg_roles r
                      where r.rolname = current_user), false)
        or pg_catalog.pg_has_role(current_user, 'cerebro_scheduler', 'member')
$$;

-- Who is acting, for the audit trail: 'human:<session user>', or for the scheduler's own
-- sessions the label it sets ('system', 'automl:<procedure>'). Nobody else can choose it.
create or replace function cerebro.actor() returns text
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select case
        when cerebro._is_scheduler()
             and coalesce(pg_catalog.current_setting('cerebro.actor', true), '') <> ''
        then pg_catalog.current_setting('cerebro.actor', true)
        else 'human:' || session_user
    end
$$;

-- Every workload the session user may see (or steer): what row-level security and the views
-- filter with. One scan per statement (the policies say `workload_id in (select ...)`, a
-- hashed subplan), not one function call per row.
create or replace function cerebro._visible_workloads(steer boolean default false)
returns setof int language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
    select w.workload_id from cerebro.workloads w
     where (select cerebro._is_admin() or cerebro._is_scheduler()
                   or (not steer
                       and pg_catalog.pg_has_role(session_user, 'cerebro_reader', 'member')))
        or w.owner = session_user
        or exists (select 1 from cerebro.shares s join pg_catalog.pg_roles r
                          on r.rolname = s.grantee
                    where s.workload_id = w.workload_id
                      and (s.level = 'steer' or not steer)
                      and pg_catalog.pg_has_role(session_user, r.oid, 'member'))
$$;

-- Every config of those workloads.
create or replace function cerebro._visible_configs(steer boolean default false)
returns setof int language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
    select c.config_id from cerebro.configs c
     where c.workload_id in (select cerebro._visible_workloads(steer))
$$;

-- Whether the session user may see (steer => false) or steer (steer => true) a workload:
-- whether it is one of cerebro._visible_workloads(steer) (one rule, used everywhere).
create or replace function cerebro._sees_workload(workload_id int, steer boolean default false)
returns boolean language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select _sees_workload.workload_id in (select cerebro._visible_workloads(steer))
$$;

-- The same for the workload of a config.
create or replace function cerebro._sees_config(config_id int, steer boolean default false)
returns boolean language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select coalesce((select cerebro._sees_workload(c.workload_id, steer) from cerebro.configs c
                      where c.config_id = _sees_config.config_id), false)
$$;

-- Whether the session user may use a dataset (its owner, an admin or the scheduler).
create or replace function cerebro._sees_dataset(owner name) returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select owner = session_user or cerebro._is_admin() or cerebro._is_scheduler()
$$;

create or replace function cerebro._owns_dataset(dataset_id int) returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select coalesce((select cerebro._sees_dataset(d.owner) from cerebro.datasets d
                      where d.dataset_id = _owns_dataset.dataset_id), false)
$$;

-- The columns whose values differ between two versions of a row, except `allowed` (for the
-- whitelists below: one message names every column a user may not change).
create or replace function cerebro._changed_columns(old jsonb, new jsonb, allowed text[])
returns text language sql immutable set search_path = pg_catalog, pg_temp as $$
    select pg_catalog.string_agg(n.key, ', ' order by n.key)
      from pg_catalog.jsonb_each(new) n
     where n.key <> all (allowed) and n.value is distinct from (old -> n.key)
$$;

-- A cap from cerebro.limits (the table holds every cap a user runs into).
create or replace function cerebro._limit(name text) returns double precision
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select l.value from cerebro.limits l where l.name = _limit.name
$$;

-- Refuse a value over a cap with the message every cap uses.
create or replace function cerebro._check_limit(name text, value double precision, what text)
returns void language plpgsql stable set search_path = pg_catalog, pg_temp as $$
declare
    cap double precision := cerebro._limit(name);
begin
    if value is not null and cap is not null and value > cap then
        raise exception 'cerebro: % % is over the limit % = %', what, value, name, cap
              using errcode = '22023',
                    hint = pg_catalog.format('an admin raises it: UPDATE cerebro.limits SET '
                                             'value = %s WHERE name = %L', value, name);
    end if;
end
$$;

-- ==== idempotent/010-datasets.sql ====
-- Datasets: packing tables and views into partitioned minibatch buffers.

-- Pack `source` (a table or view, resolved with your search_path; read with your privileges) into dataset `name`: features are columns, numeric arrays or
-- whitelisted SQL expressions; rows are shuffled once with `seed` and split into
-- `num_partitions` partitions (default: the server's CPU count). `like_dataset` reuses another
-- dataset's features, label, class list, normalisation and encoding (validation and test
-- sets). A single bytea feature column holds images: decoded (PNG, JPEG, ...), converted to
-- `channels` (3 = RGB, 1 = grayscale), resized to `image_size` [h, w] and scaled to [0, 1].
-- A single text feature column is tokenised with WordPiece into `max_length` token ids
-- ([PAD] = 0), with the `vocabulary` given or one of `vocabulary_size` tokens learnt here.
-- `nodes` places partition j on server nodes[j % n] ('local' = this one, else a name in
-- cerebro.node_health; default: all here, or like_dataset's placement); without
-- num_partitions there is one partition per entry.
-- (0.4.0 added `nodes`: the signature without it goes, or calls would be ambiguous.)
drop function if exists cerebro.load_dataset(text, regclass, text[], text, int, int, bigint,
    text, text, text, int[], int, int, text[], int, boolean);
create or replace function cerebro.load_dataset(
    name text,
    source regclass,
    features text[] default null,
    label text default null,
    num_partitions int default null,
    buffer_rows int default null,
    seed bigint default 0,
    like_dataset text default null,
    task text default 'auto',
    normalization text default 'auto',
    image_size int[] default null,
    channels int default null,
    max_length int default null,
    vocabulary text[] default null,
    vocabulary_size int default null,
    lowercase boolean default null,
    nodes text[] default null
) returns int language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import load_dataset
return load_dataset(plpy, name, source, features, label, num_partitions, buffer_rows, seed,
                    like_dataset, task, normalization, image_size, channels, max_length,
                    vocabulary, vocabulary_size, lowercase, nodes)
$$;

-- Remove a dataset and its buffers (your own; an admin's any).
create or replace function cerebro.drop_dataset(name text) returns boolean
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import drop_dataset
return drop_dataset(plpy, name)
$$;

-- One row per partition of each dataset: rows, buffers and bytes as stored, the server that
-- holds it ('local': this one) and whether it is there yet (a partition placed on a node is
-- shipped by the scheduler; until then it waits here and placed is false).
create or replace view cerebro.dataset_partitions with (security_barrier) as
select d.name as dataset,
       coalesce(array_position(d.dist_keys, b.__dist_key__) - 1, b.__dist_key__) as partition,
       count(*) as buffers,
       sum(b.num_rows) as rows, sum(octet_length(b.x) + octet_length(b.y)) as bytes,
       coalesce(min(n.name), 'local') as node, min(n.name) is null as placed
  from cerebro.datasets d join cerebro.buffers b using (dataset_id)
  left join cerebro.placements p
         on p.dataset_id = d.dataset_id and p.partition = b.__dist_key__
  left join cerebro.nodes n using (node_id)
 where cerebro._sees_dataset(d.owner)
 group by d.name, d.dist_keys, b.__dist_key__
union all
select d.name, p.partition, p.buffers, p.rows, p.bytes, n.name, true
  from cerebro.datasets d join cerebro.placements p using (dataset_id)
  join cerebro.nodes n using (node_id)
 where p.placed_at is not null and cerebro._sees_dataset(d.owner);

-- ==== idempotent/012-engine.sql ====
-- Greenplum 7 / Apache Cloudberry: spread the packed buffers over the segments by partition
-- key, so that a sub-epoch pinned to one key literal runs on one segment and its aggregate
-- runs there (cerebro_udfs/engine.py generates the statements; tests/golden/engine/ holds
-- them). Cloudberry is checked by its own name: do not rely on the word "Greenplum" alone.
-- On plain PostgreSQL this block matches nothing and changes nothing. No table is made
-- DISTRIBUTED REPLICATED: the segment path reads no table but its own buffer rows.
do $engine$
begin
    if version() ~ '\((Apache Cloudberry|Cloudberry Database) ' then
        execute 'alter table cerebro.buffers set distributed by (__dist_key__)';
    elsif version() ~ '\(Greenplum Database [0-6]\.' then
        raise exception 'cerebro needs Greenplum 7 (PostgreSQL 12) or Apache Cloudberry: %',
            version();
    elsif version() ~ '\(Greenplum Database ' then
        execute 'alter table cerebro.buffers set distributed by (__dist_key__)';
    end if;
end
$engine$;

-- ==== idempotent/015-nodes.sql ====
-- Nodes (010-nodes.sql): register and drop servers, and record what the health probe saw.
-- Only admins change the deployment; the probe (an admin's `cerebro nodes`, or the scheduler)
-- writes health. Users see health without conninfo, through cerebro.node_health.

-- libpq's connection keywords (PostgreSQL 15/16/17). A conninfo with another keyword is
-- refused here rather than at the first connection, where the error would reach nobody.
create or replace function cerebro._conninfo_keywords() returns text[]
language sql immutable set search_path = pg_catalog, pg_temp as $$
    select array['host', 'hostaddr', 'port', 'dbname', 'user', 'passfile',
                 'channel_binding', 'connect_timeout', 'client_encoding', 'options',
                 'application_name', 'fallback_application_name', 'keepalives',
                 'keepalives_idle', 'keepalives_interval', 'keepalives_count',
                 'tcp_user_timeout', 'replication', 'gssencmode', 'sslmode',
                 'sslcompression', 'sslcert', 'sslkey', 'sslrootcert', 'sslcrl',
                 'sslcrldir', 'sslsni', 'requirepeer', 'ssl_min_protocol_version',
                 'ssl_max_protocol_version', 'krbsrvname', 'gsslib', 'gssdelegation',
                 'service', 'target_session_attrs', 'load_balance_hosts', 'require_auth',
                 'password', 'sslpassword']
$$;

-- The keywords of a conninfo (key=value form, or a postgres:// URI's query and user:password
-- part); raises on a malformed one. Secrets are returned as keywords too, for the caller to
-- refuse.
create or replace function cerebro._conninfo_keys(conninfo text) returns text[]
language plpgsql immutable set search_path = pg_catalog, pg_temp as $$
declare
    kv constant text := '\s*([A-Za-z_]+)\s*=\s*(''([^''\\]|\\.)*''|[^\s'']+)';
    keys text[];
begin
    if conninfo ~ '^postgres(ql)?://' then
        if conninfo !~ '^postgres(ql)?://[^\s/?#]*(/[^\s?#]*)?(\?[^\s#]*)?$' then
            raise exception 'malformed connection URI: %', conninfo;
        end if;
        select array_agg(split_part(p, '=', 1)) into keys
          from unnest(string_to_array(substring(conninfo from '\?(.*)$'), '&')) p;
        if substring(conninfo from '^postgres(?:ql)?://([^/?#]*)') ~ '^[^@]*:[^@]*@' then
            keys := array_append(keys, 'password');
        end if;
        return coalesce(keys, '{}');
    end if;
    if conninfo !~ ('^(' || kv || ')+\s*$') then
        raise exception 'malformed conninfo (expected key=value pairs): %', conninfo;
    end if;
    select array_agg(lower(m[1])) into keys from regexp_matches(conninfo, kv, 'g') m;
    return keys;
end
$$;

-- Register a PostgreSQL server with the extension as node `name`; returns its node_id.
create or replace function cerebro.add_node(name text, conninfo text) returns int
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    keys text[] := cerebro._conninfo_keys(conninfo);
    bad text[];
    id int;
begin
    if not cerebro._is_admin() then
        raise exception 'only a cerebro_admin may add a node';
    end if;
    if name = 'local' or name !~ '^[a-z_][a-z0-9_]{0,62}$' then
        raise exception 'invalid node name %: lowercase letters, digits and _, not ''local'' '
            '(the coordinator itself)', pg_catalog.quote_literal(name);
    end if;
    if keys && array['password', 'sslpassword'] then
        raise exception 'the conninfo of node % carries a password: secrets belong in '
            '.pgpass (PGPASSFILE), a service file or the environment of whoever connects, '
            'never in the catalog', name;
    end if;
    select array_agg(k) into bad from unnest(keys) k
     where k <> all (cerebro._conninfo_keywords());
    if bad is not null then
        raise exception 'malformed conninfo for node %: unknown keyword(s) %', name, bad;
    end if;
    if exists (select 1 from cerebro.nodes n where n.name = add_node.name) then
        raise exception 'node % already exists (cerebro.drop_node it first)', name;
    end if;
    insert into cerebro.nodes (name, conninfo, added_by)
    values (add_node.name, add_node.conninfo, cerebro.actor()) returning node_id into id;
    insert into cerebro.events (actor, action, detail)
    values (cerebro.actor(), 'add_node',
            jsonb_build_object('node', add_node.name, 'node_id', id,
                               'conninfo', add_node.conninfo));
    return id;
end
$$;

-- Forget node `name`; false when there was none.
create or replace function cerebro.drop_node(name text) returns boolean
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    id int;
begin
    if not cerebro._is_admin() then
        raise exception 'only a cerebro_admin may drop a node';
    end if;
    select n.node_id into id from cerebro.nodes n where n.name = drop_node.name;
    if id is null then
        return false;
    end if;
    if exists (select 1 from cerebro.placements p where p.node_id = id) then
        raise exception 'node % holds partitions of dataset(s) %: drop those datasets '
            '(cerebro.drop_dataset) before the node', name,
            (select string_agg(distinct d.name, ', ') from cerebro.placements p
               join cerebro.datasets d using (dataset_id) where p.node_id = id);
    end if;
    delete from cerebro.nodes n where n.node_id = id;
    insert into cerebro.events (actor, action, detail)
    values (cerebro.actor(), 'drop_node', jsonb_build_object('node', drop_node.name,
                                                             'node_id', id));
    return true;
end
$$;

-- What a health probe saw: error null = reachable now (clears last_error), else the error.
create or replace function cerebro._node_seen(name text, error text) returns boolean
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    if not (cerebro._is_admin() or cerebro._is_scheduler()) then
        raise exception 'only a cerebro_admin or the scheduler may record node health';
    end if;
    if error is null then
        update cerebro.nodes n set last_seen_at = now(), last_error = null
         where n.name = _node_seen.name;
    else
        update cerebro.nodes n set last_error = error, last_error_at = now()
         where n.name = _node_seen.name;
    end if;
    return found;
end
$$;

-- Every node and its health as last probed, for everyone (no conninfo). 'local' is the
-- coordinator itself: reachable by definition, since this query runs on it.
create or replace view cerebro.node_health as
select 'local'::text as name, true as is_local, true as healthy,
       now() as last_seen_at, null::text as last_error, null::timestamptz as last_error_at
union all
select n.name, false, n.last_seen_at is not null and n.last_error is null,
       n.last_seen_at, n.last_error, n.last_error_at
  from cerebro.nodes n;

-- Where each partition of a dataset being loaded lives: nodes[j + 1] holds partition j
-- ('local': this server). Called by load_dataset in the loader's transaction; the scheduler
-- ships the buffers of every partition placed elsewhere. Only for a dataset you own (or as
-- an admin).
create or replace function cerebro._place_partitions(dataset_id int, nodes text[])
returns int language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    unknown text[];
    placed int;
begin
    if not exists (select 1 from cerebro.datasets d where d.dataset_id = _place_partitions.dataset_id
                   and (d.owner = session_user or d.owner = current_user
                        or cerebro._is_admin())) then
        raise exception 'dataset % is not yours to place', dataset_id;
    end if;
    select array_agg(distinct x order by x) into unknown from unnest(nodes) x
     where x is null or (x <> 'local' and not exists (select 1 from cerebro.nodes n
                                                      where n.name = x));
    if unknown is not null then
        raise exception 'unknown node(s) %: nodes are ''local'' (this server) or a name in '
            'cerebro.node_health (an admin adds them with cerebro.add_node)', unknown;
    end if;
    insert into cerebro.placements (dataset_id, partition, node_id)
    select _place_partitions.dataset_id, j - 1, n.node_id
      from unnest(nodes) with ordinality u(name, j) join cerebro.nodes n using (name);
    get diagnostics placed = row_count;
    return placed;
end
$$;

-- ==== idempotent/020-models.sql ====
-- Models: the roster and custom Keras scripts.

-- Register a custom model: `source` is Python defining `entry_point(config) -> compiled
-- keras.Model`; config holds the config's parameters plus config['dataset'] (feature_shape,
-- task, num_classes, classes). The model is built once now, so a broken script is refused.
-- Only cerebro_admin may call it: plpython3u runs the script as the server's OS user.
create or replace function cerebro.register_model(
    name text,
    source text,
    entry_point text default 'build',
    param_schema jsonb default '{}'::jsonb,
    description text default null,
    dataset text default null,
    build_timeout double precision default 300
) returns int language plpython3u security definer
set search_path to pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import register_model
return register_model(plpy, name, source, entry_point, param_schema, description, dataset,
                      build_timeout)
$$;
revoke all on function cerebro.register_model(text, text, text, jsonb, text, text, double precision) from public;
grant execute on function cerebro.register_model(text, text, text, jsonb, text, text, double precision)
    to cerebro_admin;

-- The JSON model definition the training aggregates take as a direct argument (for the
-- scheduler and admins: it holds a custom model's source).
create or replace function cerebro.model_spec(model text) returns jsonb
language plpython3u stable set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import model_spec
return model_spec(plpy, model)
$$;

-- Upload initial weights (the bytes of a .keras or .weights.h5 file, e.g. from
-- cerebro.export_model or keras' model.save) under `name`; returns the server path to give as
-- a config's "weights" parameter. Only you (and admins) may use your uploads; nobody needs
-- to read server files. Uploading a name again replaces it.
create or replace function cerebro.upload_weights(name text, data bytea) returns text
language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import upload_weights
return upload_weights(plpy, name, data)
$$;

-- Remove an upload of yours (its file too).
create or replace function cerebro.drop_weights(name text) returns boolean
language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import drop_weights
return drop_weights(plpy, name)
$$;

-- ==== idempotent/025-roster.sql ====
-- The roster's parameter schemas come from the Python that builds the models (PARAMS in
-- udfs/cerebro_udfs/roster/), written into cerebro.models at every install and upgrade: one
-- source of truth, never a hand copy.
do language plpython3u $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import sync_roster
sync_roster(plpy)
$$;

-- ==== idempotent/030-training.sql ====
-- The in-database training step: segment-safe ordered-set aggregates.

create or replace function cerebro._collect(token bigint, buffer_id int, x bytea, y bytea,
                                            num_rows int) returns bigint
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import collect
return collect(plpy, GD, token, buffer_id, x, y, num_rows)
$$;

create or replace function cerebro._train_final(token bigint, state bytea, model jsonb,
                                                config jsonb) returns cerebro.subepoch_result
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import train_final
return train_final(plpy, GD, token, state, model, config)
$$;

create or replace function cerebro._eval_final(token bigint, state bytea, model jsonb,
                                               config jsonb) returns cerebro.eval_result
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import eval_final
return eval_final(plpy, GD, token, state, model, config)
$$;

-- One MOP sub-epoch: train `state` (NULL = fresh init from config's seed) on the rows of one
-- partition, in buffer_id order. Returns (state, loss, metrics, rows, seconds).
--   select (cerebro.train_subepoch(state, model, config)
--           within group (order by buffer_id, x, y, num_rows)).*
--     from cerebro.buffers where dataset_id = 1 and __dist_key__ = 0;
create or replace aggregate cerebro.train_subepoch(state bytea, model jsonb, config jsonb
        order by buffer_id int, x bytea, y bytea, num_rows int) (
    sfunc = cerebro._collect, stype = bigint, finalfunc = cerebro._train_final);

-- Loss and metrics of `state` on the rows aggregated (a partition, or a whole dataset).
create or replace aggregate cerebro.evaluate_partition(state bytea, model jsonb, config jsonb
        order by buffer_id int, x bytea, y bytea, num_rows int) (
    sfunc = cerebro._collect, stype = bigint, finalfunc = cerebro._eval_final);

-- The config the aggregates take: parameters (checked against the model), seed, dataset
-- metadata, and the partition's cache key.
create or replace function cerebro.subepoch_config(
    model text, dataset text, params jsonb default '{}'::jsonb, seed bigint default 0,
    partition int default null, epoch int default 0, config_id int default null
) returns jsonb language plpython3u stable set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import subepoch_config
return subepoch_config(plpy, model, dataset, params, seed, partition, epoch, config_id)
$$;

-- Convenience for psql: one sub-epoch of `model` with `params` on one partition of `dataset`.
create or replace function cerebro.run_subepoch(
    model text, dataset text, partition int, params jsonb default '{}'::jsonb,
    state bytea default null, seed bigint default 0, epoch int default 0
) returns cerebro.subepoch_result language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import run_subepoch
return run_subepoch(plpy, GD, model, dataset, partition, params, state, seed, epoch)
$$;

-- Convenience for psql: evaluate a state on one partition (or all, partition => NULL).
create or replace function cerebro.run_evaluation(
    model text, dataset text, state bytea, params jsonb default '{}'::jsonb,
    partition int default null
) returns cerebro.eval_result language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import run_evaluation
return run_evaluation(plpy, GD, model, dataset, partition, params, state)
$$;

-- The header of a model state (format, config, epoch, partitions done, array table). For a
-- chunked state's reference: {"chunked": true, "blob", "size", "chunks"}.
create or replace function cerebro.state_info(state bytea) returns jsonb
language plpython3u immutable strict set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import state_info
return state_info(plpy, state)
$$;

-- Internal (chunked states, see udfs/cerebro_udfs/chunks.py): the one place SQL knows the
-- layout of a chunked-state reference, 'CRBCHUNK' | 16-byte blob id | JSON {size, crc32,
-- chunks}. The blob id of a reference; NULL for an inline state.
create or replace function cerebro._chunk_blob(state bytea) returns bytea
language sql immutable strict set search_path = pg_catalog, pg_temp as $$
select case when substring(state from 1 for 8) = '\x4352424348554e4b'::bytea
            then substring(state from 9 for 16) end
$$;

-- Internal: the JSON {size, crc32, chunks} of a chunked-state reference; NULL when inline.
create or replace function cerebro._chunk_info(state bytea) returns jsonb
language sql immutable strict set search_path = pg_catalog, pg_temp as $$
select case when cerebro._chunk_blob(state) is not null
            then convert_from(substring(state from 25), 'UTF8')::jsonb end
$$;

-- Internal: assemble chunk `seq` of a blob in this backend, in order, for the next training or
-- evaluation statement to use.
create or replace function cerebro._stash_chunk(blob bytea, seq int, data bytea, chunks int)
returns bigint language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import stash_chunk
return stash_chunk(plpy, GD, blob, seq, data, chunks)
$$;

-- Internal: stash every chunk of the state `ref` refers to (nothing for an inline state).
create or replace function cerebro._stash_state(ref bytea) returns bigint
language sql set search_path = pg_catalog, pg_temp as $$
select coalesce(max(cerebro._stash_chunk(c.blob, c.seq, c.data,
                                         (cerebro._chunk_info(ref)->>'chunks')::int)), 0)
  from (select blob, seq, data from cerebro.state_chunks
         where blob = cerebro._chunk_blob(ref)
         order by seq) c
$$;

-- Internal: the chunk rows of a state the training aggregate kept in this backend because it
-- was too large to return (no rows for an inline state).
create or replace function cerebro._unstash_chunks(state bytea)
returns table (blob bytea, seq int, data bytea) language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import unstash_chunks
return unstash_chunks(plpy, GD, state)
$$;

-- Remove chunks no state or checkpoint refers to (all, or only `blob`'s). Returns rows removed.
create or replace function cerebro._drop_unreferenced_chunks(only_blob bytea default null)
returns bigint language sql set search_path = pg_catalog, pg_temp as $$
with refs as (
    select cerebro._chunk_blob(state) as blob from cerebro.states
    union
    select cerebro._chunk_blob(state) from cerebro.checkpoints
), gone as (
    delete from cerebro.state_chunks c
     where (only_blob is null or c.blob = only_blob)
       and not exists (select 1 from refs where refs.blob = c.blob)
    returning 1
)
select count(*) from gone
$$;

-- What this backend keeps in its GD cache (decoded partitions, compiled models).
create or replace function cerebro.cache_info() returns jsonb
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import cache_info
return cache_info(plpy, GD)
$$;

-- ==== idempotent/032-state-files.sql ====
-- Sub-epoch states kept as files in the data directory while they hop (issue 15; see
-- udfs/cerebro_udfs/state_files.py). cerebro.states.state then holds a reference,
-- 'CRBSFILE' | 16-byte file id | JSON {size}; checkpoints never do (they keep the bytes).
-- All internal: only the scheduler calls them.

-- Internal: the file id of a state-file reference; NULL for any other state.
create or replace function cerebro._state_file(state bytea) returns bytea
language sql immutable strict set search_path = pg_catalog, pg_temp as $$
select case when substring(state from 1 for 8) = '\x4352425346494c45'::bytea
            then substring(state from 9 for 16) end
$$;

-- Internal: whether the state a row holds can be read (a file reference's file is there,
-- whole); a unit whose input state is gone restarts its epoch from the checkpoint.
create or replace function cerebro._state_present(state bytea) returns boolean
language plpython3u strict set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import state_present
return state_present(plpy, state)
$$;

-- Internal: the state itself for a file reference (a hop to another server), else `state`.
create or replace function cerebro._state_value(state bytea) returns bytea
language plpython3u strict set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import state_value
return state_value(plpy, state)
$$;

-- Internal: what an epoch's checkpoint row keeps of the sub-epoch state `state`: the bytes of
-- a file reference (as chunk rows written here, and their reference, above `inline_max`),
-- anything else as it is.
create or replace function cerebro._checkpoint_state(state bytea, inline_max bigint default null)
returns bytea language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import checkpoint_state
return checkpoint_state(plpy, state, inline_max)
$$;

-- Internal: delete the file of a reference no cerebro.states row names any more (the
-- scheduler calls it after the unit that replaced it committed). Returns whether it did.
create or replace function cerebro._drop_state_file(state bytea) returns boolean
language plpython3u strict set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import drop_state_file
return drop_state_file(plpy, state)
$$;

-- Internal: delete the state files no cerebro.states row names (a unit that did not commit,
-- a config or workload removed, a crash). Security definer: it must see every open
-- transaction's start (a file younger than the oldest may not be committed yet). Returns how
-- many it deleted.
create or replace function cerebro._collect_state_files() returns bigint
language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import collect_state_files
return collect_state_files(plpy)
$$;

-- ==== idempotent/035-leadership.sql ====
-- Leadership nobody can steal. The active scheduler holds the session advisory lock
-- 1667592802 ("cerb"); any role can call pg_advisory_lock with that key, so a standby that
-- cannot take it asks this function to end the sessions holding it that are not schedulers
-- (roles outside cerebro_scheduler). Returns one row per ended session, for the log.
-- Only the scheduler (and admins) may call it; it can end no other session.
create or replace function cerebro._evict_lock_thieves()
returns table (pid int, role name)
language sql security definer set search_path = pg_catalog, pg_temp as $$
with thieves as materialized (
    select l.pid, a.usename
      from pg_locks l
      join pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'advisory' and l.granted
       and l.database = (select oid from pg_database where datname = current_database())
       and l.classid = 0 and l.objid = 1667592802 and l.objsubid = 1
       and not pg_has_role(a.usesysid, 'cerebro_scheduler', 'member')
)
select pid, usename from thieves where pg_terminate_backend(pid)
$$;

-- ==== idempotent/040-workloads.sql ====
-- Workloads: launching a search, waking the scheduler, and the views people and BI tools read.

-- Start a model-selection search: inserts the workload and its configs (grid: the product
-- of the `choice` lists; random, asha, hyperband, pbt: `num_configs` samples with `seed`;
-- hyperopt: TPE suggestions, `parallelism` at a time) and returns its id. `options` are the
-- procedure's parameters (hyperopt: parallelism, n_startup_jobs; asha/hyperband:
-- min_epochs, eta; pbt: interval, quantile, perturb, resample_probability).
-- Training starts when the transaction commits. The workload is yours (its owner); train and
-- valid must be your datasets. `params` are fixed parameters for every
-- config; `objective` is e.g. valid_loss (minimised) or valid_accuracy (maximised); add
-- ':min'/':max' to state the direction of another metric.
create or replace function cerebro.launch(
    name text,
    model text,
    train text,
    valid text default null,
    search text default 'grid',
    space jsonb default '{}'::jsonb,
    num_configs int default null,
    max_epochs int default 10,
    objective text default 'valid_loss',
    seed bigint default 0,
    params jsonb default '{}'::jsonb,
    priority int default 0,
    options jsonb default '{}'::jsonb
) returns int language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import launch
return launch(plpy, name, model, train, valid, search, space, num_configs, max_epochs,
              objective, seed, params, priority, options)
$$;

-- One step of a workload's AutoML procedure (hyperopt: suggest up to `parallelism` configs
-- in flight; asha/hyperband: promote stopped configs that now rank in their rung's top).
-- The scheduler calls it whenever the workload's events change; safe to call any time.
create or replace function cerebro.automl_step(workload_id int) returns int
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import automl_step
return automl_step(plpy, workload_id)
$$;

-- Called by the scheduler in the transaction that commits a config's epoch: ASHA/Hyperband
-- stop a config at a rung it does not pass, PBT exploits and explores.
create or replace function cerebro._on_epoch(config_id int, epoch int) returns void
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import on_epoch
on_epoch(plpy, config_id, epoch)
$$;

-- Wake the scheduler (LISTEN cerebro) whenever configs or workloads change.
create or replace function cerebro._notify() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    perform pg_notify('cerebro', tg_table_name);
    return null;
end
$$;
drop trigger if exists notify_scheduler on cerebro.configs;
create trigger notify_scheduler after insert or update of status, priority, max_epochs
    on cerebro.configs for each statement execute function cerebro._notify();
drop trigger if exists notify_scheduler on cerebro.workloads;
create trigger notify_scheduler after insert or update of status, priority
    on cerebro.workloads for each statement execute function cerebro._notify();

-- Wake the watchers (cerebro tensorboard, cerebro top, cerebro ui: LISTEN cerebro_metrics /
-- cerebro_events) when an epoch commits or an event is recorded. No payload: a listener of
-- one role must not learn of another's work; it re-reads what row-level security shows it.
-- A separate channel, so the scheduler is not woken by its own epoch commits.
create or replace function cerebro._notify_watchers() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    perform pg_notify('cerebro_' || tg_table_name, '');
    return null;
end
$$;
drop trigger if exists notify_watchers on cerebro.metrics;
create trigger notify_watchers after insert or update on cerebro.metrics
    for each statement execute function cerebro._notify_watchers();
drop trigger if exists notify_watchers on cerebro.events;
create trigger notify_watchers after insert on cerebro.events
    for each statement execute function cerebro._notify_watchers();

-- The value of a workload's objective in one metrics row (NULL when not measured).
create or replace function cerebro.objective_value(m cerebro.metrics, objective text)
returns double precision language sql immutable set search_path = pg_catalog, pg_temp as $$
    select case
        when o = 'valid_loss' then m.valid_loss
        when o = 'train_loss' then m.train_loss
        when o like 'valid\_%' then (m.valid_metrics ->> substr(o, 7))::double precision
        when o like 'train\_%' then (m.train_metrics ->> substr(o, 7))::double precision
    end
    from (select split_part(objective, ':', 1) as o) s
$$;

-- One row per config: its objective (best and last), status and rank in its workload.
-- Stable columns: workload, workload_id, config_id, rank, status, epochs, max_epochs,
-- best_objective, last_objective, objective, direction, params, source, parent_config, error.
create or replace view cerebro.leaderboard with (security_barrier) as
with scored as (
    select c.config_id, w.workload_id, w.name as workload, c.status, c.epoch as epochs,
           coalesce(c.max_epochs, w.max_epochs) as max_epochs, w.objective,
           w.objective_direction as direction, c.params, c.source, c.parent_config, c.error,
           (select case when w.objective_direction = 'min'
                        then min(cerebro.objective_value(m, w.objective))
                        else max(cerebro.objective_value(m, w.objective)) end
              from cerebro.metrics m where m.config_id = c.config_id) as best_objective,
           (select cerebro.objective_value(m, w.objective) from cerebro.metrics m
             where m.config_id = c.config_id order by m.epoch desc limit 1) as last_objective
      from cerebro.configs c join cerebro.workloads w using (workload_id)
     where w.workload_id in (select cerebro._visible_workloads())
)
select workload, workload_id, config_id,
       rank() over (partition by workload_id order by
                    case when direction = 'min' then best_objective else -best_objective end
                    asc nulls last) as rank,
       status, epochs, max_epochs, best_objective, last_objective, objective, direction,
       params, source, parent_config, error
  from scored;

-- One row per workload: configs by status, epochs done of total, throughput, time left, and
-- the unreachable nodes its active configs wait for (null: none).
create or replace view cerebro.progress with (security_barrier) as
with per_config as (
    select c.workload_id, c.status, c.epoch,
           coalesce(c.max_epochs, w.max_epochs) as max_epochs
      from cerebro.configs c join cerebro.workloads w using (workload_id)
), rate as (
    select c.workload_id, count(*) / 5.0 as units_per_minute
      from cerebro.units u join cerebro.configs c using (config_id)
     where u.outcome = 'ok' and u.ended_at > now() - interval '5 minutes'
     group by c.workload_id
), unit_cost as (
    select w.workload_id,
           (td.num_partitions + coalesce(vd.num_partitions, 0)) as units_per_epoch
      from cerebro.workloads w join cerebro.datasets td on td.dataset_id = w.train_dataset
      left join cerebro.datasets vd on vd.dataset_id = w.valid_dataset
)
select w.name as workload, w.workload_id, w.status, w.search, w.objective,
       count(p.*) as configs,
       count(*) filter (where p.status = 'active') as active,
       count(*) filter (where p.status = 'stopped') as stopped,
       count(*) filter (where p.status = 'completed') as completed,
       count(*) filter (where p.status = 'failed') as failed,
       coalesce(sum(p.epoch), 0) as epochs_done,
       coalesce(sum(p.max_epochs) filter (where p.status <> 'failed'), 0) as epochs_total,
       coalesce(r.units_per_minute, 0) as units_per_minute,
       case when coalesce(r.units_per_minute, 0) > 0 then
            make_interval(secs => 60.0 * uc.units_per_epoch *
                coalesce(sum(greatest(p.max_epochs - p.epoch, 0))
                         filter (where p.status = 'active'), 0) / r.units_per_minute)
       end as eta,
       -- nodes holding a partition of this workload's data that the scheduler cannot
       -- reach now: configs whose next unit needs one wait until it is back
       case when count(*) filter (where p.status = 'active') > 0 then
            (select array_agg(distinct n.name order by n.name)
               from cerebro.placements pl join cerebro.nodes n using (node_id)
              where pl.dataset_id in (w.train_dataset, w.valid_dataset)
                and n.last_error is not null)
       end as waiting_on
  from cerebro.workloads w
  left join per_config p using (workload_id)
  left join rate r using (workload_id)
  left join unit_cost uc using (workload_id)
 where w.workload_id in (select cerebro._visible_workloads())
 group by w.workload_id, r.units_per_minute, uc.units_per_epoch;

-- One row per config, epoch and metric (train_loss, valid_loss, train_<m>, valid_<m>).
-- A clone inherits its ancestors' history up to the epoch it was cloned at (from_config
-- says whose row it is). Shows the workloads you may see.
create or replace view cerebro.learning_curves with (security_barrier) as
with recursive src(config_id, from_config, upto) as (
    select c.config_id, c.config_id, null::int from cerebro.configs c
    union all
    select s.config_id, p.parent_config,
           case when s.upto is null then p.clone_epoch else least(s.upto, p.clone_epoch) end
      from src s join cerebro.configs p on p.config_id = s.from_config
     where p.parent_config is not null and p.clone_epoch is not null
       and p.parent_config < p.config_id   -- parents are older: the recursion always ends
)
select w.name as workload, c.workload_id, s.config_id, m.epoch, v.metric, v.value,
       s.from_config, m.created_at
  from src s
  join cerebro.metrics m on m.config_id = s.from_config and (s.upto is null or m.epoch <= s.upto)
  join cerebro.configs c on c.config_id = s.config_id
  join cerebro.workloads w on w.workload_id = c.workload_id
                        and w.workload_id in (select cerebro._visible_workloads())
  cross join lateral (
      select 'train_loss'::text as metric, m.train_loss as value
      union all select 'valid_loss', m.valid_loss where m.valid_loss is not null
      union all select 'train_' || key, value::double precision
                  from jsonb_each_text(m.train_metrics)
      union all select 'valid_' || key, value::double precision
                  from jsonb_each_text(m.valid_metrics)) v;

-- Remove a workload with its configs, metrics, checkpoints, units and events (your own; an
-- admin's any).
create or replace function cerebro.drop_workload(name text) returns boolean
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    delete from cerebro.workloads w where w.name = drop_workload.name
       and (w.owner = session_user or cerebro._is_admin());
    if not found then
        raise exception 'cerebro: workload % does not exist', quote_literal(name)
              using errcode = '22023';
    end if;
    perform cerebro._drop_unreferenced_chunks();
    return true;
end
$$;

-- ==== idempotent/046-bi.sql ====
-- Views for BI tools (Grafana, Metabase, Superset, a spreadsheet): each one is charted
-- as is, without joins. Their columns are a stable contract: columns may be added at the end,
-- never renamed, retyped or removed. Like the other views they are security barriers and show
-- the workloads the session user may see (cerebro_reader: every workload; a cerebro_user: its
-- own and the ones shared with it). contrib/grafana/ has a dashboard built on them.

-- cerebro.bi_configs: one row per config, the dimension the other views flatten in.
--   workload text, workload_id int, config_id int,
--   series text        a chart label: '#<config_id>' and the params that vary in the
--                      workload (its search space's and any a clone or a hand-added config
--                      changed), e.g. '#7 hidden=[32] learning_rate=0.01'; unique per config
--   status text, source text ('human' | 'automl' | 'clone'), parent_config int,
--   params jsonb       every parameter of the config (search space, fixed ones, defaults)
--   params_text text   the same as 'key=value' pairs ordered by key, e.g.
--                      'activation=relu batch_size=32 hidden=[8] learning_rate=0.01'
create or replace view cerebro.bi_configs with (security_barrier) as
with visible as (
    select c.*, w.name as workload, w.space
      from cerebro.configs c join cerebro.workloads w using (workload_id)
     where w.workload_id in (select cerebro._visible_workloads())
), varying as (
    -- the keys of the search space, and the keys whose value differs between two configs
    select v.workload_id, k.key
      from visible v cross join lateral jsonb_object_keys(v.space) k(key)
    union
    select v.workload_id, p.key
      from visible v cross join lateral jsonb_each(v.params) p
     group by v.workload_id, p.key
    having count(distinct p.value) > 1 or count(*) < (select count(*) from visible x
                                                       where x.workload_id = v.workload_id)
)
select v.workload, v.workload_id, v.config_id,
       '#' || v.config_id || coalesce(
           (select ' ' || string_agg(p.key || '=' || p.value, ' ' order by p.key)
              from jsonb_each_text(v.params) p
             where (v.workload_id, p.key) in (select workload_id, key from varying)), '')
           as series,
       v.status, v.source, v.parent_config, v.params,
       coalesce((select string_agg(p.key || '=' || p.value, ' ' order by p.key)
                   from jsonb_each_text(v.params) p), '') as params_text
  from visible v;
comment on view cerebro.bi_configs is
    'BI: one row per visible config with a readable series label and its params flattened '
    '(stable columns: workload, workload_id, config_id, series, status, source, '
    'parent_config, params, params_text)';

-- cerebro.bi_curves: learning curves in long format, one row per config, epoch and metric
-- (the rows of cerebro.learning_curves: a clone includes its ancestors' epochs up to the
-- epoch it was cloned at, so its curve starts where its parent's was).
--   time timestamptz   when that epoch's metrics row was committed (for an inherited epoch:
--                      the ancestor's row)
--   workload text, workload_id int, config_id int, series text (see bi_configs),
--   status text, source text, parent_config int,
--   epoch int, metric text ('train_loss', 'valid_loss', 'train_<m>', 'valid_<m>'),
--   value double precision, params jsonb, params_text text
create or replace view cerebro.bi_curves with (security_barrier) as
select l.created_at as time, l.workload, l.workload_id, l.config_id, b.series, b.status,
       b.source, b.parent_config, l.epoch, l.metric, l.value, b.params, b.params_text
  from cerebro.learning_curves l
  join cerebro.bi_configs b using (config_id)
 where l.workload_id in (select cerebro._visible_workloads());
comment on view cerebro.bi_curves is
    'BI: learning curves in long format with workload and config flattened (stable columns: '
    'time, workload, workload_id, config_id, series, status, source, parent_config, epoch, '
    'metric, value, params, params_text)';

-- cerebro.bi_timeline: one row per config and epoch it trained (one per cerebro.metrics row).
--   time timestamptz (the metrics row's created_at), workload text, workload_id int,
--   config_id int, series text (see bi_configs), epoch int,
--   train_loss, valid_loss double precision,
--   objective double precision     the workload's objective at that epoch
--                                  (cerebro.objective_value)
--   best_so_far double precision   the config's best objective up to that epoch, in the
--                                  objective's direction (min or max)
--   seconds double precision (training time of the epoch), rows bigint (rows trained)
create or replace view cerebro.bi_timeline with (security_barrier) as
with scored as (
    select m.created_at, w.name as workload, w.workload_id, m.config_id, m.epoch,
           m.train_loss, m.valid_loss, w.objective_direction as direction,
           cerebro.objective_value(m, w.objective) as objective, m.seconds, m.rows
      from cerebro.metrics m
      join cerebro.configs c using (config_id)
      join cerebro.workloads w on w.workload_id = c.workload_id
     where w.workload_id in (select cerebro._visible_workloads())
)
select s.created_at as time, s.workload, s.workload_id, s.config_id, b.series, s.epoch,
       s.train_loss, s.valid_loss, s.objective,
       case when s.direction = 'min'
            then min(s.objective) over (partition by s.config_id order by s.epoch)
            else max(s.objective) over (partition by s.config_id order by s.epoch)
       end as best_so_far,
       s.seconds, s.rows
  from scored s join cerebro.bi_configs b using (config_id);
comment on view cerebro.bi_timeline is
    'BI: one row per config and trained epoch (stable columns: time, workload, workload_id, '
    'config_id, series, epoch, train_loss, valid_loss, objective, best_so_far, seconds, rows)';

-- cerebro.bi_events: the audit trail of the visible workloads, for tables and annotations.
--   time timestamptz (cerebro.events.at), event_id bigint, workload text, workload_id int,
--   config_id int (NULL for workload events),
--   actor text         'human:<role>', 'automl:<procedure>' or 'system' (the scheduler)
--   actor_kind text    'human' | 'automl' | 'scheduler' | 'other', from the actor's prefix
--   action text        launch, add, clone, stop, resume, completed, failed, max_epochs, ...
--   detail jsonb, text text   one line, e.g. 'human:alice stop #7 (active -> stopped, epoch 1)'
create or replace view cerebro.bi_events with (security_barrier) as
select e.at as time, e.event_id, w.name as workload, e.workload_id, e.config_id, e.actor,
       case split_part(e.actor, ':', 1)
           when 'human' then 'human'
           when 'automl' then 'automl'
           when 'system' then 'scheduler'
           when 'scheduler' then 'scheduler'
           else 'other'
       end as actor_kind,
       e.action, e.detail,
       concat_ws(' ', e.actor, e.action, '#' || e.config_id,
                 '(' || nullif(concat_ws(', ',
                     (e.detail ->> 'from') || ' -> ' || (e.detail ->> 'to'),
                     'of #' || (e.detail ->> 'parent_config'),
                     'epoch ' || (e.detail ->> 'epoch'),
                     e.detail ->> 'error'), '') || ')') as text
  from cerebro.events e join cerebro.workloads w using (workload_id)
 where e.workload_id in (select cerebro._visible_workloads());
comment on view cerebro.bi_events is
    'BI: the events feed of the visible workloads (stable columns: time, event_id, workload, '
    'workload_id, config_id, actor, actor_kind, action, detail, text)';

-- ==== idempotent/050-steering.sql ====
-- Steering: the config and workload state machines, enforced on plain UPDATE/INSERT, the
-- audit trail, and the verbs clone, drill_down, stop and history.

-- Internal: a config's params checked against its workload's model and completed with the
-- fixed params (called by the insert trigger, as the user who inserts).
create or replace function cerebro._prepare_params(workload_id int, params jsonb) returns jsonb
language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import prepare_params
return prepare_params(plpy, workload_id, params)
$$;

-- Before a config is added or changed: the state machine, and for users (not the scheduler,
-- a superuser or a cerebro verb) the whitelist of columns they may set. SECURITY INVOKER so
-- that it sees who issued the statement (cerebro._trusted()).
create or replace function cerebro._config_before() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    actor text := cerebro.actor();
    wl record;
    limit_epochs int;
    bad text;
begin
    select * into wl from cerebro.workloads w where w.workload_id = new.workload_id;
    if not found then
        raise exception 'cerebro: workload % does not exist', new.workload_id
              using errcode = '22023';
    end if;
    if not cerebro._trusted() and not cerebro._sees_workload(new.workload_id, true) then
        raise exception 'cerebro: workload % is shared with you read-only', wl.name
              using errcode = '42501';
    end if;
    perform cerebro._check_limit('max_epochs', new.max_epochs, 'max_epochs');
    perform cerebro._check_limit('max_priority', abs(new.priority), 'priority');
    if tg_op = 'INSERT' then
        if not cerebro._trusted() then
            bad := cerebro._changed_columns(
                '{"status": "active", "epoch": 0, "partitions_done": [], "seed": 0,
                  "parent_config": null, "source": "human", "error": null, "lost_units": 0,
                  "clone_epoch": null}'::jsonb,
                to_jsonb(new) - 'config_id' - 'created_at' - 'updated_at',
                array['workload_id', 'params', 'max_epochs', 'priority']);
            if bad is not null then
                raise exception 'cerebro: a new config may set only workload_id, params, '
                      'max_epochs and priority, not %', bad using errcode = '42501',
                      hint = 'continue from trained weights with cerebro.clone(config_id, '
                             'overrides)';
            end if;
            if (select count(*) from cerebro.configs c
                 where c.workload_id = new.workload_id) >= cerebro._limit('max_configs') then
                perform cerebro._check_limit('max_configs',
                    (select count(*) + 1 from cerebro.configs c
                      where c.workload_id = new.workload_id), 'configs in the workload');
            end if;
        end if;
        if wl.status = 'cancelled' then
            raise exception 'cerebro: workload % is cancelled; it takes no new configs', wl.name
                  using errcode = '22023';
        end if;
        if new.status <> 'active' then
            raise exception 'cerebro: a new config starts as active, not %', new.status
                  using errcode = '22023';
        end if;
        if (new.epoch <> 0 or new.partitions_done <> '{}') and new.source <> 'clone' then
            raise exception 'cerebro: a new config starts at epoch 0 (use cerebro.clone to '
                  'continue from trained weights)' using errcode = '22023';
        end if;
        new.params := cerebro._prepare_params(new.workload_id, new.params);
        -- a clone of a config that already used up its epochs waits, completed, until
        -- someone raises its max_epochs (train longer)
        if new.source = 'clone' and new.epoch >= coalesce(new.max_epochs, wl.max_epochs) then
            new.status := 'completed';
        end if;
        if new.seed = 0 then
            new.seed := wl.seed * 1000 + (select count(*) from cerebro.configs c
                                           where c.workload_id = new.workload_id);
        end if;
        new.created_at := now();
        new.updated_at := now();
        return new;
    end if;

    -- UPDATE
    if not cerebro._trusted() then
        bad := cerebro._changed_columns(to_jsonb(old), to_jsonb(new),
                                        array['status', 'max_epochs', 'priority', 'updated_at']);
        if bad is not null and bad <> 'params' then
            raise exception 'cerebro: you may change a config''s status, max_epochs and '
                  'priority, not %', bad using errcode = '42501';
        end if;
    end if;
    if actor <> 'system' then
        if new.params is distinct from old.params then
            raise exception 'cerebro: config % params cannot change once added', old.config_id
                  using errcode = '22023',
                        hint = 'clone it with new values: SELECT cerebro.clone(config_id, ''{"learning_rate": 0.001}'')';
        end if;
        if new.epoch <> old.epoch or new.partitions_done <> old.partitions_done
           or new.workload_id <> old.workload_id or new.lost_units <> old.lost_units then
            raise exception 'cerebro: epoch, partitions_done, workload_id and lost_units are '
                  'maintained by the scheduler' using errcode = '22023';
        end if;
    end if;
    limit_epochs := coalesce(new.max_epochs, wl.max_epochs);
    -- train longer: raising max_epochs re-activates a completed config
    if old.status = 'completed' and new.status = 'completed'
       and new.max_epochs is distinct from old.max_epochs and new.epoch < limit_epochs then
        new.status := 'active';
    end if;
    if new.status is distinct from old.status then
        if not ((old.status = 'active' and new.status = 'stopped')
                or (old.status in ('stopped', 'failed') and new.status = 'active')
                or (old.status = 'completed' and new.status = 'active' and new.epoch < limit_epochs)
                or (old.status = 'stopped' and new.status = 'completed' and actor = 'system')
                or (actor = 'system' and old.status = 'active'
                    and new.status in ('completed', 'failed'))) then
            raise exception 'cerebro: config % cannot go from % to %', old.config_id,
                  old.status, new.status using errcode = '22023',
                  hint = 'allowed: active -> stopped; stopped or failed -> active; completed -> '
                         'active after raising max_epochs above its epochs (or just raise '
                         'max_epochs); completed and failed are set by the scheduler';
        end if;
        if new.status = 'active' then
            new.error := null;
            new.lost_units := 0;
        end if;
    end if;
    -- lowering max_epochs to or below the epochs done completes an active config at once
    -- (it would otherwise stay active without anything left to run)
    if new.status = 'active' and new.max_epochs is distinct from old.max_epochs
       and new.epoch >= limit_epochs then
        new.status := 'completed';
    end if;
    new.updated_at := now();
    return new;
end
$$;

-- After a config is added or changed: the audit trail (SECURITY DEFINER: users cannot write
-- cerebro.events themselves).
create or replace function cerebro._config_after() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    actor text := cerebro.actor();
begin
    if tg_op = 'INSERT' then
        insert into cerebro.events (actor, workload_id, config_id, action, detail)
        values (case when new.source = 'automl' and actor like 'human:%'
                     then 'automl:' || (select search from cerebro.workloads
                                         where workload_id = new.workload_id)
                     else actor end,
                new.workload_id, new.config_id,
                case when new.source = 'clone' then 'clone' else 'add' end,
                jsonb_build_object('params', new.params, 'parent_config', new.parent_config,
                                   'epoch', new.epoch));
        return null;
    end if;
    if new.status is distinct from old.status then
        insert into cerebro.events (actor, workload_id, config_id, action, detail)
        values (actor, new.workload_id, new.config_id,
                case new.status when 'stopped' then 'stop' when 'completed' then 'completed'
                                when 'failed' then 'failed' else 'resume' end,
                jsonb_build_object('from', old.status, 'to', new.status, 'epoch', new.epoch,
                                   'partitions_done', new.partitions_done)
                || case when new.error is not null then jsonb_build_object('error', new.error)
                        else '{}'::jsonb end);
    end if;
    if new.max_epochs is distinct from old.max_epochs then
        insert into cerebro.events (actor, workload_id, config_id, action, detail)
        values (actor, new.workload_id, new.config_id, 'max_epochs',
                jsonb_build_object('from', old.max_epochs, 'to', new.max_epochs));
    end if;
    if new.priority is distinct from old.priority then
        insert into cerebro.events (actor, workload_id, config_id, action, detail)
        values (actor, new.workload_id, new.config_id, 'priority',
                jsonb_build_object('from', old.priority, 'to', new.priority));
    end if;
    return null;
end
$$;

drop trigger if exists steer_before on cerebro.configs;
create trigger steer_before before insert or update on cerebro.configs
    for each row execute function cerebro._config_before();
drop trigger if exists steer_after on cerebro.configs;
create trigger steer_after after insert or update on cerebro.configs
    for each row execute function cerebro._config_after();

-- Before a workload changes: its state machine; users may change only status and priority.
create or replace function cerebro._workload_before() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    bad text;
begin
    if not cerebro._trusted() then
        bad := cerebro._changed_columns(to_jsonb(old), to_jsonb(new),
                                        array['status', 'priority']);
        if bad is not null then
            raise exception 'cerebro: you may change a workload''s status and priority, not %',
                  bad using errcode = '42501',
                  hint = 'launch a new workload, or cerebro.drill_down, for other settings';
        end if;
    end if;
    perform cerebro._check_limit('max_priority', abs(new.priority), 'priority');
    if new.status is distinct from old.status then
        if not ((old.status = 'active' and new.status in ('paused', 'cancelled'))
                or (old.status = 'paused' and new.status in ('active', 'cancelled'))) then
            raise exception 'cerebro: workload % cannot go from % to %', old.name, old.status,
                  new.status using errcode = '22023',
                  hint = 'allowed: active -> paused or cancelled; paused -> active or '
                         'cancelled; cancelled is final';
        end if;
    end if;
    return new;
end
$$;

-- After a workload changes: the audit trail; cancelling stops its active configs.
create or replace function cerebro._workload_after() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    if new.status is distinct from old.status then
        insert into cerebro.events (actor, workload_id, action, detail)
        values (cerebro.actor(), new.workload_id,
                case new.status when 'paused' then 'pause' when 'cancelled' then 'cancel'
                                else 'resume' end,
                jsonb_build_object('from', old.status, 'to', new.status));
        if new.status = 'cancelled' then
            update cerebro.configs set status = 'stopped'
             where workload_id = new.workload_id and status = 'active';
        end if;
    end if;
    if new.priority is distinct from old.priority then
        insert into cerebro.events (actor, workload_id, action, detail)
        values (cerebro.actor(), new.workload_id, 'priority',
                jsonb_build_object('from', old.priority, 'to', new.priority));
    end if;
    return null;
end
$$;

drop trigger if exists steer_before on cerebro.workloads;
create trigger steer_before before update on cerebro.workloads
    for each row execute function cerebro._workload_before();
drop trigger if exists steer_after on cerebro.workloads;
create trigger steer_after after update on cerebro.workloads
    for each row execute function cerebro._workload_after();

-- Stop a config. With immediate => true the sub-epoch in flight is cancelled too; the state
-- of its last finished sub-epoch is kept, and resume continues from there. SECURITY DEFINER
-- (cancelling the scheduler's backend needs it); only who may steer the config may call it.
create or replace function cerebro.stop(config_id int, immediate boolean default false)
returns boolean language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    n int;
begin
    if not cerebro._sees_config(stop.config_id, true) then
        raise exception 'cerebro: config % does not exist', config_id using errcode = '22023';
    end if;
    update cerebro.configs c set status = 'stopped'
     where c.config_id = stop.config_id and c.status = 'active';
    get diagnostics n = row_count;
    if immediate then
        perform pg_catalog.pg_cancel_backend(u.backend_pid) from cerebro.units u
         where u.config_id = stop.config_id and u.ended_at is null and u.backend_pid is not null;
    end if;
    return n > 0;
end
$$;

-- Resume a stopped or failed config (same as UPDATE ... SET status = 'active').
create or replace function cerebro.resume(config_id int) returns boolean
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    if not cerebro._sees_config(resume.config_id, true) then
        raise exception 'cerebro: config % does not exist', config_id using errcode = '22023';
    end if;
    update cerebro.configs c set status = 'active'
     where c.config_id = resume.config_id and c.status <> 'active';
    return found;
end
$$;

-- Clone a config with its trained weights and optimizer state (latest checkpoint), applying
-- `overrides` (a new learning_rate is applied to the restored optimizer; a new batch_size
-- takes effect at once). Overrides that change the architecture need fresh => true. The
-- clone keeps the parent's epoch count; give max_epochs to let it train further than the
-- workload's limit (a clone with no epochs left waits as completed).
create or replace function cerebro.clone(config_id int, overrides jsonb default '{}'::jsonb,
                                         fresh boolean default false,
                                         workload_id int default null,
                                         max_epochs int default null)
returns int language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import clone
return clone(plpy, config_id, overrides, fresh, workload_id, max_epochs)
$$;

-- A child workload searching `space`, every other parameter pinned to the parent's best
-- config (or `config_id`), with any search procedure and its `options`. Shares the workers
-- with its parent.
create or replace function cerebro.drill_down(parent_workload int, space jsonb,
                                              search text default 'grid',
                                              num_configs int default null,
                                              config_id int default null,
                                              max_epochs int default null,
                                              name text default null,
                                              seed bigint default null,
                                              options jsonb default '{}'::jsonb)
returns int language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import drill_down
return drill_down(plpy, parent_workload, space, search, num_configs, config_id, max_epochs,
                  name, seed, options)
$$;

-- A config's lineage (itself, then its parents) and every event about each of them.
create or replace function cerebro.history(config_id int)
returns table (at timestamptz, config_id int, generation int, actor text, action text,
               detail jsonb)
language sql stable set search_path = pg_catalog, pg_temp as $$
    with recursive lineage(config_id, generation) as (
        select c.config_id, 0 from cerebro.configs c where c.config_id = history.config_id
        union all
        select c.parent_config, l.generation + 1
          from lineage l join cerebro.configs c on c.config_id = l.config_id
         where c.parent_config is not null and l.generation < 100
    )
    select e.at, e.config_id, l.generation, e.actor, e.action, e.detail
      from lineage l join cerebro.events e on e.config_id = l.config_id
     order by e.at, e.event_id
$$;

-- ==== idempotent/060-petastorm.sql ====
-- Petastorm and Parquet import: a dataset directory (or file) the server can read becomes a
-- table ready for cerebro.load_dataset.

-- Import the Petastorm dataset (Unischema in _common_metadata; scalar, ndarray, compressed
-- ndarray and image codecs) or plain Parquet at `url` (file:///path or /path) into table
-- `table_name` (default: `name`, in schema public), in the caller's transaction. ndarrays
-- become numeric arrays that keep their shape; images become smallint[] H x W x C pixels
-- (`images => 'array'`) or their PNG/JPEG bytes (`images => 'bytes'`, for load_dataset's
-- image_size). Reads `batch_rows` rows at a time (default: what fits in ~64 MB decoded, at
-- most 1024); `if_exists`: 'error', 'append' or 'replace'. Returns the rows imported. The
-- Unischema pickle is read with an allow-list: nothing else is ever unpickled.
-- `cerebro import-petastorm` does the same from the client side (files local to the client).
create or replace function cerebro.import_petastorm(
    name text,
    url text,
    table_name text default null,
    batch_rows int default null,
    images text default 'array',
    if_exists text default 'error'
) returns bigint language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import import_petastorm
return import_petastorm(plpy, name, url, table_name, batch_rows, images, if_exists)
$$;

-- It reads server files as the server's OS user: cerebro_user may call it, and it then
-- checks pg_read_server_files membership (superusers pass), as COPY FROM a file does.
revoke all on function cerebro.import_petastorm(text, text, text, int, text, text) from public;
grant execute on function cerebro.import_petastorm(text, text, text, int, text, text)
    to cerebro_user;

-- ==== idempotent/070-winner.sql ====
-- Using the winner: evaluate, predict with and export a trained config. Each starts from the
-- config's latest checkpoint (or `epoch`), the model the leaderboard ranked.

-- Loss and metrics of config `config_id` on every row of `dataset` (a dataset loaded with
-- like_dataset => the training dataset), as jsonb {loss, <metrics>, rows, epoch, ...}.
create or replace function cerebro.evaluate(config_id int, dataset text, epoch int default null)
returns jsonb language plpython3u security definer set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import evaluate
return evaluate(plpy, GD, config_id, dataset, epoch)
$$;

-- Score every row of `source` (raw rows, encoded like the training data) into the new table
-- `output`: the `key` column (default: the source's primary key), then the predicted class
-- (named like the label), its probability and all class probabilities, or the predicted value
-- for regression. Returns the number of rows written. Runs in batches of `batch_rows`, as you:
-- `source` is read and `output` created with your privileges (an unqualified `output` goes
-- into schema public).
create or replace function cerebro.predict(config_id int, source regclass, output text,
                                           key text default null, epoch int default null,
                                           batch_rows int default null)
returns bigint language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import predict
return predict(plpy, config_id, source, output, key, epoch, batch_rows)
$$;

-- The trained model as the bytes of a .keras file (architecture, weights and optimizer
-- state) that keras.models.load_model reads; `cerebro export-model` writes it to a file.
create or replace function cerebro.export_model(config_id int, epoch int default null)
returns bytea language plpython3u set search_path = pg_catalog, pg_temp as $$
import os, sys
if 'cerebro_udfs' not in sys.modules and os.path.isfile('cerebro_python.path'): sys.path[:0] = open('cerebro_python.path').read().splitlines()
from cerebro_udfs.sql_api import export_model
return export_model(plpy, config_id, epoch)
$$;

-- ==== idempotent/075-housekeeping.sql ====
-- Housekeeping: what keeps a search that runs for days from filling the disk (the README's
-- "Retention and disk use").
--
-- * Units (one row per sub-epoch) go `units_retention_days` after they ended, once their
--   epoch is committed; a unit that has not ended, or belongs to the epoch its config is in
--   now (the epoch commit sums it, the scheduler counts it), is never removed.
-- * Events go `events_retention_days` after they happened, once their workload is idle: no
--   active config and no event in that time (AutoML procedures read a workload's events).
-- * Checkpoints: per config the newest `keep_checkpoints` (a launch option), always the
--   latest (the scheduler continues from it, clone starts from it) and the best by the
--   workload's objective; `cerebro.prune_checkpoints` does the same once, on request.
--   Chunk rows of a removed checkpoint go with it (unless another row still refers to them).
-- The scheduler runs cerebro._housekeeping() every few minutes. Everything here skips rows
-- another transaction holds (SKIP LOCKED): housekeeping never waits, and whatever it skipped
-- goes next time.

-- A retention setting in days from cerebro.limits; 0 or a missing row means keep for ever.
create or replace function cerebro._retention_days(name text) returns double precision
language sql stable set search_path = pg_catalog, pg_temp as $$
    select coalesce(cerebro._limit(name), 0)
$$;

-- The size of the model state a checkpoint or states row holds (a chunked state's whole
-- size, not its reference's). Reads no more than the header of either.
create or replace function cerebro._state_bytes(state bytea) returns bigint
language sql immutable strict set search_path = pg_catalog, pg_temp as $$
    select coalesce((cerebro._chunk_info(state) ->> 'size')::bigint,
                    pg_catalog.octet_length(state))
$$;

-- The checkpoints of a workload that keep = `keep` removes: per config all but the newest
-- `keep`, the latest and the best epoch by the workload's objective (ties: the later epoch).
create or replace function cerebro._prunable_checkpoints(workload_id int, keep int)
returns table (config_id int, epoch int)
language sql stable set search_path = pg_catalog, pg_temp as $$
    with scored as (
        select k.config_id, k.epoch,
               row_number() over (partition by k.config_id order by k.epoch desc) as newest,
               case when w.objective_direction = 'max' then -v.value else v.value end as loss
          from cerebro.checkpoints k
          join cerebro.configs c on c.config_id = k.config_id
          join cerebro.workloads w on w.workload_id = c.workload_id
          left join lateral (
              select cerebro.objective_value(m, w.objective) as value from cerebro.metrics m
               where m.config_id = k.config_id and m.epoch = k.epoch) v on true
         where c.workload_id = _prunable_checkpoints.workload_id
    ), ranked as (
        select s.*, row_number() over (partition by s.config_id
                                       order by s.loss asc nulls last, s.epoch desc) as best
          from scored s
    )
    select r.config_id, r.epoch from ranked r
     where r.newest > greatest(keep, 1) and not (r.best = 1 and r.loss is not null)
$$;

-- Remove them, note each in cerebro.pruned_checkpoints, drop their chunks and record one
-- 'prune_checkpoints' event as `actor`. Returns {checkpoints, bytes, chunks} removed. A
-- workload being dropped (its row locked) is left alone.
create or replace function cerebro._prune_checkpoints(workload_id int, keep int, actor text)
returns jsonb language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    n bigint;
    bytes bigint;
    chunks bigint := 0;
    blobs bytea[];
begin
    perform 1 from cerebro.workloads w where w.workload_id = _prune_checkpoints.workload_id
        for key share skip locked;
    if not found then
        return jsonb_build_object('checkpoints', 0, 'bytes', 0, 'chunks', 0);
    end if;
    with gone as (
        delete from cerebro.checkpoints k
         where (k.config_id, k.epoch) in (
                select x.config_id, x.epoch from cerebro.checkpoints x
                 where (x.config_id, x.epoch) in (
                       select p.config_id, p.epoch
                         from cerebro._prunable_checkpoints(_prune_checkpoints.workload_id,
                                                            keep) p)
                   for update of x skip locked)
        returning k.config_id, k.epoch, cerebro._state_bytes(k.state) as bytes,
                  cerebro._chunk_blob(k.state) as blob
    ), noted as (
        insert into cerebro.pruned_checkpoints (config_id, epoch, keep, bytes)
        select g.config_id, g.epoch, _prune_checkpoints.keep, g.bytes from gone g
        on conflict (config_id, epoch) do update
           set keep = excluded.keep, bytes = excluded.bytes, pruned_at = excluded.pruned_at
    )
    select count(*), coalesce(sum(g.bytes), 0),
           array_agg(distinct g.blob) filter (where g.blob is not null)
      into n, bytes, blobs from gone g;
    -- a separate statement: it must see the deletes above (a clone may share a blob)
    select coalesce(sum(cerebro._drop_unreferenced_chunks(b)), 0) into chunks
      from unnest(blobs) b;
    if n > 0 then
        insert into cerebro.events (actor, workload_id, action, detail)
        values (actor, _prune_checkpoints.workload_id, 'prune_checkpoints',
                jsonb_build_object('keep', keep, 'checkpoints', n, 'bytes', bytes,
                                   'chunks', chunks));
    end if;
    return jsonb_build_object('checkpoints', n, 'bytes', bytes, 'chunks', chunks);
end
$$;

-- Prune a workload's checkpoints now: per config keep the newest `keep`, the latest and the
-- best by the objective; a pruned epoch's evaluate/predict/export then says it was pruned.
-- Only the workload's owner or an admin may (it cannot be undone). Returns checkpoints
-- removed. For a workload that should stay pruned, launch it with options =>
-- '{"keep_checkpoints": N}': the scheduler's housekeeping then applies it after every epoch.
create or replace function cerebro.prune_checkpoints(workload text, keep int) returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    w record;
begin
    select * into w from cerebro.workloads x where x.name = prune_checkpoints.workload;
    if not found or not (w.owner = session_user or cerebro._is_admin()) then
        raise exception 'cerebro: workload % does not exist or is not yours to prune',
              pg_catalog.quote_literal(workload) using errcode = '42501';
    end if;
    if keep is null or keep < 1 then
        raise exception 'cerebro: keep must be at least 1, got %', coalesce(keep::text, 'NULL')
              using errcode = '22023',
                    hint = 'the latest and the best checkpoint of each config are always kept';
    end if;
    return (cerebro._prune_checkpoints(w.workload_id, keep, cerebro.actor())
            ->> 'checkpoints')::bigint;
end
$$;

-- Units of committed epochs that ended `units_retention_days` ago. Returns rows removed.
create or replace function cerebro._expire_units() returns bigint
language sql set search_path = pg_catalog, pg_temp as $$
    with days as (select cerebro._retention_days('units_retention_days') as n), gone as (
        delete from cerebro.units u where u.unit_id in (
            select x.unit_id from days, cerebro.units x join cerebro.configs c using (config_id)
             where days.n > 0 and x.ended_at < now() - days.n * interval '1 day'
               and x.epoch <= c.epoch
               for update of x skip locked)
        returning 1
    )
    select count(*) from gone
$$;

-- Events older than `events_retention_days` of idle workloads (no active config, no newer
-- event) and of no workload; one 'expire_events' event says how many went. Returns rows
-- removed.
create or replace function cerebro._expire_events() returns bigint
language sql set search_path = pg_catalog, pg_temp as $$
    with days as (
        select d.n, now() - d.n * interval '1 day' as cutoff
          from (select cerebro._retention_days('events_retention_days') as n) d
    ), gone as (
        delete from cerebro.events e where e.event_id in (
            select x.event_id from days, cerebro.events x
             where days.n > 0 and x.at < days.cutoff
               and (x.workload_id is null or x.workload_id in (
                    select w.workload_id from cerebro.workloads w
                     where not exists (select 1 from cerebro.configs c
                                        where c.workload_id = w.workload_id
                                          and c.status = 'active')
                       and not exists (select 1 from cerebro.events y
                                        where y.workload_id = w.workload_id
                                          and y.at >= days.cutoff)))
               for update of x skip locked)
        returning 1
    ), counted as (
        select count(*) as n from gone
    ), noted as (
        insert into cerebro.events (actor, action, detail)
        select 'system', 'expire_events', jsonb_build_object(
                   'events', counted.n, 'retention_days', days.n, 'before', days.cutoff)
          from counted, days where counted.n > 0
    )
    select n from counted
$$;

-- The scheduler's housekeeping, every few minutes (and any time an admin likes): every
-- workload's keep_checkpoints, then the retention of units and events, and the state files
-- no row names. Returns what it removed: {checkpoints, checkpoint_bytes, chunks, units,
-- events, state_files}.
create or replace function cerebro._housekeeping() returns jsonb
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    pruned record;
begin
    select coalesce(sum((p.r ->> 'checkpoints')::bigint), 0) as checkpoints,
           coalesce(sum((p.r ->> 'bytes')::bigint), 0) as bytes,
           coalesce(sum((p.r ->> 'chunks')::bigint), 0) as chunks
      into pruned
      from (select cerebro._prune_checkpoints(
                       x.workload_id, floor((x.options ->> 'keep_checkpoints')::numeric)::int,
                       'system') as r
              from cerebro.workloads x
             where jsonb_typeof(x.options -> 'keep_checkpoints') = 'number'
               and (x.options ->> 'keep_checkpoints')::numeric >= 1) p;
    return jsonb_build_object('checkpoints', pruned.checkpoints,
                              'checkpoint_bytes', pruned.bytes, 'chunks', pruned.chunks,
                              'units', cerebro._expire_units(),
                              'events', cerebro._expire_events(),
                              'state_files', cerebro._collect_state_files());
end
$$;

-- Which checkpoints were pruned, for the workloads you may see (export/evaluate/predict read
-- it to say so).
alter table cerebro.pruned_checkpoints enable row level security;
drop policy if exists visible on cerebro.pruned_checkpoints;
create policy visible on cerebro.pruned_checkpoints for select
    using (config_id in (select cerebro._visible_configs()));

-- ==== idempotent/080-security.sql ====
-- Security: who may see and steer which rows. The README's "Security model" describes it.
--
-- * Owners are the session user that created a dataset or workload (set by triggers here,
--   never by the writer). Admins (cerebro_admin, superusers) and the scheduler see all;
--   cerebro_reader sees every workload through the views; a workload may be shared with a
--   role for reading or steering (cerebro.share).
-- * Users change catalog rows only through whitelisted columns (configs: status, max_epochs,
--   priority; workloads: status, priority) or the verbs, which are SECURITY DEFINER and check
--   ownership themselves. The steering triggers are SECURITY INVOKER so that they see who
--   issued the statement: a verb (running as the extension owner), the scheduler, or a user.

-- Owners come from the session, whatever the statement said.
create or replace function cerebro._set_owner() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if tg_op = 'UPDATE' then
        if new.owner is distinct from old.owner then
            raise exception 'cerebro: the owner of a % row cannot change', tg_table_name
                  using errcode = '42501';
        end if;
        return new;
    end if;
    new.owner := session_user;
    return new;
end
$$;
drop trigger if exists set_owner on cerebro.datasets;
create trigger set_owner before insert or update on cerebro.datasets
    for each row execute function cerebro._set_owner();
drop trigger if exists set_owner on cerebro.workloads;
create trigger set_owner before insert or update on cerebro.workloads
    for each row execute function cerebro._set_owner();

-- Row-level security: users see their own rows, shared workloads and (admins) everything.
-- The scheduler's role bypasses it; superusers and the tables' owner are not subject to it.
alter table cerebro.datasets enable row level security;
alter table cerebro.buffers enable row level security;
alter table cerebro.workloads enable row level security;
alter table cerebro.configs enable row level security;
alter table cerebro.metrics enable row level security;
alter table cerebro.checkpoints enable row level security;
alter table cerebro.states enable row level security;
alter table cerebro.state_chunks enable row level security;
alter table cerebro.units enable row level security;
alter table cerebro.events enable row level security;
alter table cerebro.shares enable row level security;
alter table cerebro.weights enable row level security;

drop policy if exists visible on cerebro.datasets;
create policy visible on cerebro.datasets for select using (cerebro._sees_dataset(owner));
drop policy if exists create_own on cerebro.datasets;
create policy create_own on cerebro.datasets for insert with check (owner = session_user);
drop policy if exists drop_own on cerebro.datasets;
create policy drop_own on cerebro.datasets for delete using (cerebro._sees_dataset(owner));

drop policy if exists own_dataset on cerebro.buffers;
create policy own_dataset on cerebro.buffers using (cerebro._owns_dataset(dataset_id))
    with check (cerebro._owns_dataset(dataset_id));

drop policy if exists visible on cerebro.workloads;
create policy visible on cerebro.workloads for select
    using (workload_id in (select cerebro._visible_workloads()));
drop policy if exists steer on cerebro.workloads;
create policy steer on cerebro.workloads for update
    using (workload_id in (select cerebro._visible_workloads(true)));

drop policy if exists visible on cerebro.configs;
create policy visible on cerebro.configs for select
    using (workload_id in (select cerebro._visible_workloads()));
drop policy if exists steer on cerebro.configs;
create policy steer on cerebro.configs for update
    using (workload_id in (select cerebro._visible_workloads(true)));
drop policy if exists add on cerebro.configs;
create policy add on cerebro.configs for insert
    with check (cerebro._sees_workload(workload_id, true));

drop policy if exists visible on cerebro.metrics;
create policy visible on cerebro.metrics for select
    using (config_id in (select cerebro._visible_configs()));
drop policy if exists visible on cerebro.checkpoints;
create policy visible on cerebro.checkpoints for select
    using (config_id in (select cerebro._visible_configs()));
drop policy if exists visible on cerebro.units;
create policy visible on cerebro.units for select
    using (config_id in (select cerebro._visible_configs()));
drop policy if exists visible on cerebro.events;
create policy visible on cerebro.events for select
    using ((select cerebro._is_admin()) or workload_id in (select cerebro._visible_workloads()));
drop policy if exists admin on cerebro.states;
create policy admin on cerebro.states for select using (cerebro._is_admin());
-- the bytes of a chunked checkpoint you may see (predict and export read them as you)
drop policy if exists visible on cerebro.state_chunks;
create policy visible on cerebro.state_chunks for select using (
    cerebro._is_admin() or exists (
        select 1 from cerebro.checkpoints k
         where cerebro._chunk_blob(k.state) = state_chunks.blob
           and k.config_id in (select cerebro._visible_configs())));
drop policy if exists own on cerebro.weights;
create policy own on cerebro.weights for select
    using (owner = session_user or cerebro._is_admin() or cerebro._is_scheduler());
drop policy if exists visible on cerebro.shares;
create policy visible on cerebro.shares for select
    using (workload_id in (select cerebro._visible_workloads()));

-- Share a workload with a role: 'read' (it, its configs, metrics and events), 'steer' (also
-- stop, resume, add and clone configs, reprioritise), or 'none' to stop sharing. Only the
-- workload's owner or an admin may.
create or replace function cerebro.share(workload text, role name, level text default 'read')
returns boolean language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    w record;
begin
    select * into w from cerebro.workloads x where x.name = share.workload;
    if not found or not (w.owner = session_user or cerebro._is_admin()) then
        raise exception 'cerebro: workload % does not exist or is not yours to share',
              pg_catalog.quote_literal(workload) using errcode = '42501';
    end if;
    if not exists (select 1 from pg_catalog.pg_roles r where r.rolname = share.role) then
        raise exception 'cerebro: role % does not exist', pg_catalog.quote_ident(role)
              using errcode = '22023';
    end if;
    if level not in ('read', 'steer', 'none') then
        raise exception 'cerebro: share level % is not known', pg_catalog.quote_literal(level)
              using errcode = '22023', hint = 'use ''read'', ''steer'' or ''none''';
    end if;
    delete from cerebro.shares s where s.workload_id = w.workload_id and s.grantee = share.role;
    if level <> 'none' then
        insert into cerebro.shares (workload_id, grantee, level)
        values (w.workload_id, share.role, level);
    end if;
    insert into cerebro.events (actor, workload_id, action, detail)
    values (cerebro.actor(), w.workload_id, 'share',
            pg_catalog.jsonb_build_object('role', share.role, 'level', level));
    return true;
end
$$;

-- ==== idempotent/090-grants.sql ====
-- Privileges (the README's "Security model" has the table). Nothing is granted to PUBLIC;
-- each role gets exactly what it needs, and row-level security (080-security.sql) decides
-- which rows. Re-run by every upgrade, so it starts from nothing each time.
revoke all on all functions in schema cerebro from public;
revoke all on all tables in schema cerebro from public, cerebro_user, cerebro_admin,
    cerebro_reader, cerebro_scheduler;
revoke all on all sequences in schema cerebro from public, cerebro_user, cerebro_admin,
    cerebro_scheduler;
revoke all on all functions in schema cerebro from cerebro_user, cerebro_admin, cerebro_reader,
    cerebro_scheduler;
revoke all on schema cerebro from public;
grant usage on schema cerebro to cerebro_user, cerebro_reader, cerebro_scheduler;

-- cerebro_reader: the views, for BI tools and dashboards (every workload, no data, no states)
grant select on cerebro.leaderboard, cerebro.progress, cerebro.learning_curves
    to cerebro_reader;
grant execute on function cerebro._sees_workload(int, boolean), cerebro._sees_dataset(name),
    cerebro._visible_workloads(boolean), cerebro.objective_value(cerebro.metrics, text)
    to cerebro_reader;
-- the BI views (046-bi.sql), for readers and users alike (each sees what the views filter)
grant select on cerebro.bi_configs, cerebro.bi_curves, cerebro.bi_timeline, cerebro.bi_events
    to cerebro_reader, cerebro_user;

-- cerebro_user: own datasets, workloads and configs; everything else through the verbs
grant select on cerebro.models, cerebro.limits, cerebro.datasets, cerebro.buffers,
    cerebro.workloads, cerebro.configs, cerebro.metrics, cerebro.checkpoints,
    cerebro.state_chunks, cerebro.units, cerebro.events, cerebro.shares, cerebro.schedulers,
    cerebro.weights,
    cerebro.leaderboard, cerebro.progress, cerebro.learning_curves, cerebro.dataset_partitions
    to cerebro_user;
grant insert, delete on cerebro.datasets to cerebro_user;         -- load, drop (with buffers)
grant insert on cerebro.buffers to cerebro_user;                  -- load
-- add and steer configs; the steering trigger refuses every column but the whitelisted ones
grant insert, update on cerebro.configs to cerebro_user;
grant update on cerebro.workloads to cerebro_user;        -- steer (status, priority only)
grant usage on sequence cerebro.datasets_dataset_id_seq, cerebro.configs_config_id_seq
    to cerebro_user;
grant execute on function
    cerebro.load_dataset(text, regclass, text[], text, int, int, bigint, text, text, text,
                         int[], int, int, text[], int, boolean, text[]),
    cerebro.drop_dataset(text),
    cerebro.import_petastorm(text, text, text, int, text, text),
    cerebro.launch(text, text, text, text, text, jsonb, int, int, text, bigint, jsonb, int,
                   jsonb),
    cerebro.drill_down(int, jsonb, text, int, int, int, text, bigint, jsonb),
    cerebro.clone(int, jsonb, boolean, int, int),
    cerebro.stop(int, boolean),
    cerebro.resume(int),
    cerebro.history(int),
    cerebro.share(text, name, text),
    cerebro.drop_workload(text),
    cerebro.evaluate(int, text, int),
    cerebro.predict(int, regclass, text, text, int, int),
    cerebro.export_model(int, int),
    cerebro.upload_weights(text, bytea), cerebro.drop_weights(text),
    cerebro.actor(),
    cerebro.objective_value(cerebro.metrics, text),
    -- what row-level security and the steering triggers run as the user (read-only checks)
    cerebro._is_admin(), cerebro._is_scheduler(), cerebro._trusted(),
    cerebro._sees_workload(int, boolean), cerebro._sees_config(int, boolean),
    cerebro._sees_dataset(name), cerebro._owns_dataset(int),
    cerebro._visible_workloads(boolean), cerebro._visible_configs(boolean),
    cerebro._chunk_blob(bytea), cerebro._chunk_info(bytea),
    cerebro._changed_columns(jsonb, jsonb, text[]), cerebro._limit(text),
    cerebro._check_limit(text, double precision, text),
    cerebro._prepare_params(int, jsonb)
    to cerebro_user;

-- cerebro_admin: everything a user may do, on every user's rows (row-level security lets
-- admins see all), plus custom models, the caps and the in-database building blocks.
grant cerebro_user to cerebro_admin;
grant select on all tables in schema cerebro to cerebro_admin;
grant update on cerebro.limits to cerebro_admin;
grant execute on function
    cerebro.register_model(text, text, text, jsonb, text, text, double precision),
    cerebro.model_spec(text),
    cerebro.subepoch_config(text, text, jsonb, bigint, int, int, int),
    cerebro.run_subepoch(text, text, int, jsonb, bytea, bigint, int),
    cerebro.run_evaluation(text, text, bytea, jsonb, int),
    cerebro.train_subepoch(bytea, jsonb, jsonb, int, bytea, bytea, int),
    cerebro.evaluate_partition(bytea, jsonb, jsonb, int, bytea, bytea, int),
    cerebro._stash_state(bytea), cerebro._stash_chunk(bytea, int, bytea, int),
    cerebro.state_info(bytea),
    cerebro.cache_info(),
    cerebro.automl_step(int)
    to cerebro_admin;

-- cerebro_scheduler: the daemon. It reads and writes the bookkeeping of every user's work
-- (bypassing row-level security), runs the aggregates, and appends to the audit trail; it
-- cannot register code, change caps or rewrite events.
grant select on all tables in schema cerebro to cerebro_scheduler;
grant insert, update, delete on cerebro.configs, cerebro.metrics, cerebro.checkpoints,
    cerebro.states, cerebro.state_chunks, cerebro.units, cerebro.schedulers
    to cerebro_scheduler;
grant update on cerebro.workloads to cerebro_scheduler;
grant insert on cerebro.events to cerebro_scheduler;
grant usage on all sequences in schema cerebro to cerebro_scheduler;
grant execute on function
    cerebro.model_spec(text),
    cerebro.subepoch_config(text, text, jsonb, bigint, int, int, int),
    cerebro.train_subepoch(bytea, jsonb, jsonb, int, bytea, bytea, int),
    cerebro.evaluate_partition(bytea, jsonb, jsonb, int, bytea, bytea, int),
    cerebro._stash_state(bytea), cerebro._stash_chunk(bytea, int, bytea, int),
    cerebro._unstash_chunks(bytea), cerebro._chunk_blob(bytea), cerebro._chunk_info(bytea),
    cerebro._drop_unreferenced_chunks(bytea),
    cerebro._state_file(bytea), cerebro._state_present(bytea), cerebro._state_value(bytea),
    cerebro._checkpoint_state(bytea, bigint), cerebro._drop_state_file(bytea),
    cerebro._collect_state_files(),
    cerebro.automl_step(int), cerebro._on_epoch(int, int),
    cerebro.stop(int, boolean), cerebro.actor(), cerebro.objective_value(cerebro.metrics, text),
    cerebro._is_admin(), cerebro._is_scheduler(), cerebro._trusted(),
    cerebro._sees_workload(int, boolean), cerebro._sees_config(int, boolean),
    cerebro._sees_dataset(name), cerebro._owns_dataset(int),
    cerebro._visible_workloads(boolean), cerebro._visible_configs(boolean),
    cerebro._changed_columns(jsonb, jsonb, text[]), cerebro._limit(text),
    cerebro._check_limit(text, double precision, text),
    cerebro._prepare_params(int, jsonb), cerebro.state_info(bytea)
    to cerebro_scheduler;

-- leadership (035-leadership.sql): only the scheduler and admins evict a lock thief
grant execute on function cerebro._evict_lock_thieves() to cerebro_scheduler, cerebro_admin;

-- Retention and housekeeping (075-housekeeping.sql): users prune their own workloads'
-- checkpoints (the verb checks ownership) and read which were pruned; only the scheduler and
-- admins run the housekeeping, which alone deletes units and events.
grant select on cerebro.pruned_checkpoints to cerebro_user;
grant execute on function cerebro.prune_checkpoints(text, int) to cerebro_user;
grant execute on function cerebro._housekeeping() to cerebro_scheduler, cerebro_admin;

-- Nodes (015-nodes.sql, issue 14): admins add and drop nodes and read their conninfo (the
-- table, through "select on all tables" above, as does the scheduler); the probe records
-- health as an admin or the scheduler; everyone sees health without conninfo.
grant execute on function cerebro.add_node(text, text), cerebro.drop_node(text),
    cerebro._conninfo_keys(text), cerebro._conninfo_keywords()
    to cerebro_admin;
grant execute on function cerebro._node_seen(text, text) to cerebro_admin, cerebro_scheduler;
-- placing partitions (load_dataset's nodes => ...): the loader's transaction records where
-- each partition goes; the scheduler ships the buffers (there: datasets and buffers rows,
-- as the node login, which bypasses row-level security since COPY needs that) and keeps
-- a node's state cache
grant execute on function cerebro._place_partitions(int, text[]) to cerebro_user, cerebro_admin;
grant update on cerebro.placements to cerebro_scheduler;
grant insert, delete on cerebro.datasets, cerebro.buffers to cerebro_scheduler;
grant insert, update, delete on cerebro.hop_states to cerebro_scheduler;
grant select on cerebro.node_health to cerebro_user, cerebro_reader;
