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
