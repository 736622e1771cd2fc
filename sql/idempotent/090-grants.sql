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
