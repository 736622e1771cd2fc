-- Privileges: cerebro_user loads data and trains; cerebro_admin also registers custom code.
grant usage on schema cerebro to cerebro_user;
grant select on all tables in schema cerebro to cerebro_user;
grant insert, update, delete on cerebro.datasets, cerebro.buffers to cerebro_user;
grant usage on all sequences in schema cerebro to cerebro_user;
revoke insert, update, delete on cerebro.models from cerebro_user;
