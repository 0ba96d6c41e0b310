-- The append-only event log, the rows the server refused, and the migration ledger.

CREATE SCHEMA IF NOT EXISTS crashlog;

CREATE TABLE IF NOT EXISTS crashlog.schema_migrations (
    version     integer PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE crashlog.events (
    position        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    schema_version  smallint    NOT NULL,
    bot_id          text        NOT NULL,
    session_id      text        NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    payload         jsonb       NOT NULL
);

-- Readers follow (tx_id, position): commit-safe order, see DESIGN "Reading in order without gaps".
CREATE INDEX events_tx_order ON crashlog.events (tx_id, position);

-- Rows PostgreSQL refused, isolated from their batch so the rest could commit.
-- The payload is kept as text: it may be the very thing jsonb refused.
CREATE TABLE crashlog.rejected_events (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  smallint    NOT NULL,
    bot_id          text        NOT NULL,
    session_id      text        NULL,
    occurred_at     timestamptz NOT NULL,
    payload         text        NOT NULL,
    sqlstate        text        NULL,
    error           text        NOT NULL,
    rejected_at     timestamptz NOT NULL DEFAULT now()
);

-- The log is append-only in the database itself, whoever connects.
CREATE FUNCTION crashlog.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'crashlog.events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_no_update_delete
    BEFORE UPDATE OR DELETE ON crashlog.events
    FOR EACH ROW EXECUTE FUNCTION crashlog.refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON crashlog.events
    FOR EACH STATEMENT EXECUTE FUNCTION crashlog.refuse_change();
