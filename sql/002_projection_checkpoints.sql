-- Where each projection has got to in the log, and the wake-up call its runners listen for.

-- One row per projection: the last (tx_id, position) it applied, moved forward only by a
-- compare-and-set in the same transaction as the batch it covers (crashlog/projections/runner.py).
CREATE TABLE crashlog.projection_checkpoints (
    name            text        PRIMARY KEY,
    version         integer     NOT NULL,
    tx_id           xid8        NOT NULL DEFAULT '0',
    position        bigint      NOT NULL DEFAULT 0,
    events_applied  bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A hint, once per appending statement (COPY included), delivered at commit: runners wake
-- and re-read. They also poll, so a lost notification only delays them.
CREATE FUNCTION crashlog.notify_events_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crashlog_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_appended
    AFTER INSERT ON crashlog.events
    FOR EACH STATEMENT EXECUTE FUNCTION crashlog.notify_events_appended();
