-- Indexes of the read tables, each for a query users run (checked with EXPLAIN on a million
-- rounds). Unique keys are in 003; these serve reads and the projections' own recomputations.

-- Per bot over time: bot_statistics(bot), a bot's history page, exports filtered by bot.
CREATE INDEX rounds_bot_time ON crashlog.rounds (bot_id, occurred_at);
-- Per game over time: multiplier and outcome charts of one game on one platform.
CREATE INDEX rounds_game_time ON crashlog.rounds (platform, game, occurred_at);
-- Per strategy: comparing strategies across bots (WHERE strategy_name = ...), over time.
CREATE INDEX rounds_strategy_time ON crashlog.rounds (strategy_name, occurred_at);
-- Streamed exports of all rounds in time order (ORDER BY occurred_at, no sort of the table).
CREATE INDEX rounds_time ON crashlog.rounds (occurred_at);
-- Only the contradictory records, for the doctor and for audits (a small partial index).
CREATE INDEX rounds_contradictory ON crashlog.rounds (occurred_at) WHERE is_contradictory;

-- Outcomes per bot over time and per strategy (win rates, streaks).
CREATE INDEX round_outcomes_bot_time ON crashlog.round_outcomes (bot_id, occurred_at);
CREATE INDEX round_outcomes_strategy_time ON crashlog.round_outcomes (strategy_name, occurred_at);

-- The ML export of multipliers: one game over time, in order.
CREATE INDEX round_multipliers_game_time ON crashlog.round_multipliers (platform, game, first_seen_at);
-- The projection recomputes a game round from all its readings: find them by round.
CREATE INDEX round_multiplier_readings_round
    ON crashlog.round_multiplier_readings (platform, game, game_round_id);

-- Scoring signals: the readings of a round by game_round_id, or by the bot's own round number.
CREATE INDEX round_signal_readings_round
    ON crashlog.round_signal_readings (platform, game, game_round_id);
CREATE INDEX round_signal_readings_bot_round
    ON crashlog.round_signal_readings (bot_id, platform, game, round_number);
-- ... and the signals waiting for a round that has just been read.
CREATE INDEX round_signals_round ON crashlog.round_signals (platform, game, for_game_round_id);
CREATE INDEX round_signals_bot_round
    ON crashlog.round_signals (bot_id, platform, game, for_round_number);
-- Signal accuracy of one bot over time.
CREATE INDEX round_signals_bot_time ON crashlog.round_signals (bot_id, occurred_at);

-- A bot's OCR readings and errors over time (debugging one bot).
CREATE INDEX ocr_readings_bot_time ON crashlog.ocr_readings (bot_id, occurred_at);
CREATE INDEX bot_errors_bot_time ON crashlog.bot_errors (bot_id, occurred_at);
-- A bot's sessions over time.
CREATE INDEX sessions_bot_time ON crashlog.sessions (bot_id, started_at);
