-- The postgres saga store: instances, their history, the consumed bus offsets and the outbox.
-- Written only by the saga runtime, one transaction per bus record (or timer firing), so a
-- row here is never ahead of or behind the offset that produced it.

-- One row per instance (pending ones included: they hold the messages parked before the
-- message that starts the saga).
create table saga_runtime_state (
    saga_id          text        not null,
    correlation_key  text        not null,
    instance_id      text        not null,
    status           text        not null
        check (status in ('pending', 'running', 'compensating', 'completed', 'failed')),
    state            jsonb,
    version          integer     not null default 0,
    started_at       timestamptz,
    updated_at       timestamptz,
    result           jsonb,
    error            text,
    parked           jsonb       not null default '[]',
    timers           jsonb       not null default '[]',
    seen             jsonb       not null default '[]',
    partition        integer,
    -- The earliest timer's due time (Unix ms): the timer poll reads this index, not the JSON.
    next_due_ms      bigint,
    primary key (saga_id, correlation_key)
);
create index saga_runtime_state_due on saga_runtime_state (next_due_ms)
    where next_due_ms is not null;
create index saga_runtime_state_recent on saga_runtime_state (updated_at desc);
create index saga_runtime_state_saga_recent on saga_runtime_state (saga_id, updated_at desc);

-- Every transition, in the order it happened (id), with the bus record that caused it.
create table saga_runtime_transition (
    id               bigserial   primary key,
    saga_id          text        not null,
    correlation_key  text        not null,
    instance_id      text        not null,
    event            text        not null,
    from_status      text,
    to_status        text        not null,
    message_type     text        not null,
    version          integer     not null,
    at               timestamptz not null,
    partition        integer,
    "offset"         bigint,
    reason           text
);
create index saga_runtime_transition_instance
    on saga_runtime_transition (saga_id, correlation_key, id);

create table saga_runtime_correlation (
    saga_id          text        not null,
    correlation_key  text        not null,
    instance_id      text        not null unique,
    created_at       timestamptz not null default now(),
    primary key (saga_id, correlation_key)
);

-- The next bus offset to consume per partition: the runtime's consumer position lives here,
-- committed with the rows it produced, never in the log's consumer group.
create table saga_runtime_offsets (
    topic            text        not null,
    partition        integer     not null,
    next_offset      bigint      not null,
    updated_at       timestamptz not null default now(),
    primary key (topic, partition)
);

-- Records to put on the log, written in the same transaction as the state that caused them.
-- The relay claims unclaimed rows into numbered batches and emits each batch in one Kafka
-- transaction (see services/sagas/_outbox.py for why that is exactly once).
create table saga_runtime_outbox (
    id               bigserial   primary key,
    topic            text        not null,
    key              bytea,
    value            bytea,
    headers          jsonb       not null default '[]',
    created_at       timestamptz not null default now(),
    batch            bigint,
    emitted          boolean     not null default false,
    emitted_at       timestamptz
);
create index saga_runtime_outbox_unclaimed on saga_runtime_outbox (id) where batch is null;
create index saga_runtime_outbox_pending on saga_runtime_outbox (batch)
    where batch is not null and not emitted;
create sequence saga_runtime_outbox_batch;

-- This database's relay identity: its Kafka transactional id and marker group derive from it,
-- so a fresh database never mistakes another database's committed batches for its own.
create table saga_runtime_relay (
    singleton        boolean     primary key default true check (singleton),
    relay_id         text        not null default gen_random_uuid()::text
);
insert into saga_runtime_relay default values;
