-- The scheduler's own row says since when its process runs and the last error it recovered
-- from (cerebro status and a human read them; the daemon never dies of an error, it records
-- it here and in its log, and retries).
alter table cerebro.schedulers
    add column since         timestamptz,   -- the daemon process started (not this connection)
    add column last_error    text,
    add column last_error_at timestamptz;
