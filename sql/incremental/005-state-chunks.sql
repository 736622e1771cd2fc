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
