-- Where each named subscription (crashlog/subscriptions.py) has got to in the log.

-- One row per subscription name: the last (tx_id, position) its consumer acknowledged,
-- moved only by a compare-and-set from the position the acknowledged batch started at.
-- The consumer holds a session advisory lock on the name while it runs (one consumer per
-- name); the row is created, at the chosen start, by the first consumer of a new name.
CREATE TABLE crashlog.subscription_checkpoints (
    name              text        PRIMARY KEY
                                  CHECK (name <> '' AND length(name) <= 128),
    -- The event types it reads (NULL: every type), so its lag counts only those.
    event_types       text[],
    tx_id             xid8        NOT NULL DEFAULT '0',
    position          bigint      NOT NULL DEFAULT 0,
    events_delivered  bigint      NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
