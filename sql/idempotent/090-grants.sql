-- Privileges: cerebro_user loads data, launches and steers; cerebro_admin also registers
-- custom code. (Row-level security per owner comes with multi-tenancy.)
grant usage on schema cerebro to cerebro_user;
grant select on all tables in schema cerebro to cerebro_user;
grant insert, update, delete on cerebro.datasets, cerebro.buffers to cerebro_user;
grant insert, update on cerebro.workloads, cerebro.configs, cerebro.events to cerebro_user;
grant usage on all sequences in schema cerebro to cerebro_user;
revoke insert, update, delete on cerebro.models from cerebro_user;
