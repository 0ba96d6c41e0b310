-- fairness_records: every FairnessRecorded (a round's provably-fair popup, Spribe-style), with
-- what crashlog could check of it (crashlog/fairness.py check_spribe_record). findings is the
-- list of {check, status, detail}; problems names the checks that came out 'mismatch' or
-- 'unconfirmed'. The step from hash to result is never checked: Spribe does not publish it.
CREATE TABLE crashlog.fairness_records (
    event_id           uuid        PRIMARY KEY,
    position           bigint      NOT NULL,
    bot_id             text        NOT NULL,
    session_id         text,
    platform           text        NOT NULL,
    game               text        NOT NULL,
    game_round_id      text,
    server_seed        text,
    server_seed_sha256 text,
    client_seeds       text[]      NOT NULL DEFAULT '{}',
    combined_sha512    text,
    hex                text,
    decimal            numeric,
    result             numeric,
    findings           jsonb       NOT NULL,
    problems           text[]      NOT NULL DEFAULT '{}',
    occurred_at        timestamptz NOT NULL
);

CREATE INDEX fairness_records_round ON crashlog.fairness_records (platform, game, game_round_id);
