-- Rows of the log a projection could not read, and a projection that stopped at one.
--
-- A row not written by the SDK (an older client, a hand-written INSERT) may hold a payload a
-- projection cannot read: '{}', a stake of "abc". A projection with on_error = 'skip' (every
-- built-in) records such an event here and moves past it, in the transaction that moves its
-- checkpoint (crashlog/projections/guard.py). One row per projection and event: a rebuild
-- that meets the same event again adds nothing.
CREATE TABLE crashlog.projection_errors (
    projection   text        NOT NULL,
    event_id     uuid        NOT NULL,
    position     bigint      NOT NULL,
    tx_id        xid8        NOT NULL,
    error        text        NOT NULL,
    sqlstate     text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, event_id)
);

-- A projection with on_error = 'stop' stops at such an event instead: what stopped it stays
-- on its checkpoint row (any process sees it: project --lag, doctor, sync()) until its
-- version changes or it is rebuilt. NULL while it runs.
ALTER TABLE crashlog.projection_checkpoints
    ADD COLUMN stopped_error    text,
    ADD COLUMN stopped_event_id uuid,
    ADD COLUMN stopped_position bigint,
    ADD COLUMN stopped_at       timestamptz;

-- Raised by a built-in handler for a row that lacks a field it needs and that the SDK always
-- writes (so a sum or a count does not silently take a NULL in): a data error (22004) that
-- makes the projection record and skip the row. Called only for such a row (inside a CASE).
CREATE FUNCTION crashlog.unreadable(event_type text, event_id uuid, fields text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% % lacks a field it needs: %', event_type, event_id, fields
        USING ERRCODE = 'null_value_not_allowed';
END;
$$;
