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
