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
