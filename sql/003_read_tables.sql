-- The read tables, derived from crashlog.events by crashlog/projections/*. Each can be dropped
-- and rebuilt from the log (crashlog project --rebuild NAME). Money and multipliers are numeric.
-- Columns named position/first_position/last_tx_id/last_position record log positions: they
-- depend on the order the log happened to interleave bots in; every other column does not.

-- bots: the latest BotRegistered of each bot (log order).
CREATE TABLE crashlog.bots (
    bot_id          text        PRIMARY KEY,
    bot_name        text,
    vm_provider     text,
    region          text,
    strategy_name   text,
    initial_balance numeric,
    currency        text,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    registered_at   timestamptz NOT NULL,   -- earliest registration (bot's clock)
    updated_at      timestamptz NOT NULL,   -- the registration these values come from
    last_tx_id      xid8        NOT NULL,
    last_position   bigint      NOT NULL
);

-- game_configs: one row per (platform, game); several bots may report it, the report with
-- the latest occurred_at (then the greatest event_id) wins, whatever order they arrive in.
CREATE TABLE crashlog.game_configs (
    platform        text        NOT NULL,
    game            text        NOT NULL,
    min_stake       numeric,
    max_stake       numeric,
    max_multiplier  numeric,
    rtp_percent     numeric,
    currency        text,
    reported_by     text        NOT NULL,
    event_id        uuid        NOT NULL,
    configured_at   timestamptz NOT NULL,
    PRIMARY KEY (platform, game)
);

-- sessions: one row per (bot_id, session_id), started and ended halves merged.
CREATE TABLE crashlog.sessions (
    bot_id          text        NOT NULL,
    session_id      text        NOT NULL,
    game            text,
    platform        text,
    strategy_name   text,
    start_balance   numeric,
    end_balance     numeric,
    end_reason      text,
    started_at      timestamptz,
    ended_at        timestamptz,
    start_tx_id     xid8,
    start_position  bigint,
    end_tx_id       xid8,
    end_position    bigint,
    PRIMARY KEY (bot_id, session_id)
);

-- rounds: every RoundSettled, as the bot reported it, with contradictions flagged.
CREATE TABLE crashlog.rounds (
    event_id             uuid        PRIMARY KEY,
    position             bigint      NOT NULL,
    bot_id               text        NOT NULL,
    session_id           text,
    game                 text        NOT NULL,
    platform             text        NOT NULL,
    round_number         bigint,
    game_round_id        text,
    strategy_name        text,
    stake                numeric     NOT NULL,
    target_multiplier    numeric,
    crash_multiplier     numeric     NOT NULL,
    cashout_multiplier   numeric,
    outcome              text        NOT NULL CHECK (outcome IN ('WIN', 'LOSS', 'SKIP')),
    profit_loss          numeric     NOT NULL,
    balance_before       numeric,
    balance_after        numeric,
    started_at           timestamptz,
    crashed_at           timestamptz,
    cashed_out_at        timestamptz,
    ocr_confidence       double precision,
    detection_latency_ms bigint,
    error                text,
    metadata             jsonb       NOT NULL DEFAULT '{}',
    occurred_at          timestamptz NOT NULL,
    is_contradictory     boolean     NOT NULL,
    contradictions       text[]      NOT NULL DEFAULT '{}'
);

-- round_outcomes: the narrow view of each settled round, for outcome and profit analysis.
CREATE TABLE crashlog.round_outcomes (
    event_id           uuid        PRIMARY KEY,
    position           bigint      NOT NULL,
    bot_id             text        NOT NULL,
    session_id         text,
    game               text        NOT NULL,
    platform           text        NOT NULL,
    game_round_id      text,
    round_number       bigint,
    strategy_name      text,
    outcome            text        NOT NULL CHECK (outcome IN ('WIN', 'LOSS', 'SKIP')),
    stake              numeric     NOT NULL,
    cashout_multiplier numeric,
    crash_multiplier   numeric     NOT NULL,
    profit_loss        numeric     NOT NULL,
    occurred_at        timestamptz NOT NULL
);

-- round_multiplier_readings: every crash multiplier any bot reported (RoundObserved and
-- RoundSettled): round_multipliers is computed from these, so no reading is ever lost.
CREATE TABLE crashlog.round_multiplier_readings (
    event_id       uuid        PRIMARY KEY,
    position       bigint      NOT NULL,
    bot_id         text        NOT NULL,
    platform       text        NOT NULL,
    game           text        NOT NULL,
    game_round_id  text,
    round_number   bigint,
    multiplier     numeric     NOT NULL,
    occurred_at    timestamptz NOT NULL
);

-- round_multipliers: one row per (platform, game, game_round_id); a reading without a
-- game_round_id is a row of its own (event_id set). multiplier is the value most readings
-- agree on (ties: earliest reported, then lowest); disagreement says they did not all agree.
CREATE TABLE crashlog.round_multipliers (
    platform        text        NOT NULL,
    game            text        NOT NULL,
    game_round_id   text,
    event_id        uuid,
    round_number    bigint,
    multiplier      numeric     NOT NULL,
    observers       integer     NOT NULL,   -- distinct bots
    readings        integer     NOT NULL,   -- reports, a bot may report a round twice
    min_multiplier  numeric     NOT NULL,
    max_multiplier  numeric     NOT NULL,
    disagreement    boolean     NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    first_position  bigint      NOT NULL,
    CONSTRAINT round_multipliers_one_key CHECK ((game_round_id IS NULL) <> (event_id IS NULL)),
    CONSTRAINT round_multipliers_round UNIQUE (platform, game, game_round_id),
    CONSTRAINT round_multipliers_observation UNIQUE (event_id)
);

-- round_signal_readings: the round_signals projection's own copy of the crash readings it
-- scores signals against (a projection never reads another projection's tables).
CREATE TABLE crashlog.round_signal_readings (
    event_id       uuid        PRIMARY KEY,
    bot_id         text        NOT NULL,
    platform       text        NOT NULL,
    game           text        NOT NULL,
    game_round_id  text,
    round_number   bigint,
    multiplier     numeric     NOT NULL,
    occurred_at    timestamptz NOT NULL
);

-- round_signals: each SignalRaised, joined with the round it was for once that round is
-- known (by game_round_id across bots, else by the same bot's round_number).
-- hit: the round's multiplier reached the predicted one.
CREATE TABLE crashlog.round_signals (
    event_id             uuid        PRIMARY KEY,
    position             bigint      NOT NULL,
    bot_id               text        NOT NULL,
    session_id           text,
    game                 text        NOT NULL,
    platform             text        NOT NULL,
    signal_id            text,
    signal_type          text        NOT NULL,
    confidence_score     double precision,
    pattern_match        text,
    predicted_multiplier numeric,
    feature_vector       double precision[],
    for_game_round_id    text,
    for_round_number     bigint,
    occurred_at          timestamptz NOT NULL,
    actual_multiplier    numeric,
    hit                  boolean,
    resolved             boolean     NOT NULL DEFAULT false
);

-- ocr_readings: every OcrRead.
CREATE TABLE crashlog.ocr_readings (
    event_id      uuid        PRIMARY KEY,
    position      bigint      NOT NULL,
    bot_id        text        NOT NULL,
    session_id    text,
    field         text        NOT NULL,
    raw_text      text,
    parsed_value  numeric,
    confidence    double precision,
    latency_ms    bigint,
    occurred_at   timestamptz NOT NULL
);

-- bot_errors: every BotErrorRaised.
CREATE TABLE crashlog.bot_errors (
    event_id      uuid        PRIMARY KEY,
    position      bigint      NOT NULL,
    bot_id        text        NOT NULL,
    session_id    text,
    error_type    text        NOT NULL,
    message       text        NOT NULL,
    severity      text        NOT NULL,
    traceback     text,
    context       jsonb       NOT NULL DEFAULT '{}',
    occurred_at   timestamptz NOT NULL
);

-- bot_stats: running totals per bot (strategy_name '') and per (bot, strategy).
-- total_staked counts WIN and LOSS rounds (a SKIP places no bet). last_tx_id/last_position
-- are the last event counted: a re-delivered event at or before it is not counted twice.
CREATE TABLE crashlog.bot_stats (
    bot_id         text        NOT NULL,
    strategy_name  text        NOT NULL,
    rounds         bigint      NOT NULL,
    wins           bigint      NOT NULL,
    losses         bigint      NOT NULL,
    skips          bigint      NOT NULL,
    total_staked   numeric     NOT NULL,
    total_profit   numeric     NOT NULL,
    last_balance   numeric,
    first_round_at timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,   -- latest occurred_at counted
    last_tx_id     xid8        NOT NULL,
    last_position  bigint      NOT NULL,
    PRIMARY KEY (bot_id, strategy_name)
);
