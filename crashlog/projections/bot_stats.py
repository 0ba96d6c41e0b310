"""``crashlog.bot_stats``: running totals per bot (strategy_name '') and per (bot, strategy).

Each row remembers the last event it counted (``last_tx_id``, ``last_position``); a
bot's rounds are applied in log order, so an event at or before that mark has been
counted already and a re-delivery adds nothing. ``total_staked`` counts WIN and LOSS
rounds: a SKIP places no bet. ``last_balance`` is the balance_after of the bot's latest
round that reported one.
"""

from __future__ import annotations

import asyncpg

from crashlog.projections.base import IN_SPAN, Projection, ReadTable, Span, Tables, numeric, required, text

_UPSERT = f"""
WITH ev AS (
    SELECT e.bot_id, e.tx_id, e.position, e.occurred_at,
           {text('strategy_name')} AS strategy, {text('outcome')} AS outcome,
           {numeric('stake')} AS stake, {numeric('profit_loss')} AS profit,
           {numeric('balance_after')} AS balance_after
    FROM {IN_SPAN} AND e.event_type = 'RoundSettled'
      AND {required('RoundSettled', 'outcome', 'stake', 'profit_loss')}
), fresh AS (
    -- Every round counts toward its bot's '' row, and a bot's rounds come in log order: that
    -- row's mark is the last round counted in any of the bot's rows, so a round after it is
    -- new to all of them. ``at`` is where the round is in the log, as a sortable array.
    SELECT ev.*, ARRAY[ev.tx_id::text::numeric, ev.position] AS at
    FROM ev
    LEFT JOIN {{bot_stats}} b ON b.bot_id = ev.bot_id AND b.strategy_name = ''
    WHERE b.bot_id IS NULL OR (ev.tx_id, ev.position) > (b.last_tx_id, b.last_position)
), totals AS (
    -- Per bot, and per bot and strategy, in one pass with no sort: the last round is the
    -- greatest ``at``, and the last balance given rides along with its round's ``at``.
    SELECT bot_id, CASE WHEN GROUPING(strategy) = 1 THEN '' ELSE strategy END AS strategy_name,
           count(*) AS rounds,
           count(*) FILTER (WHERE outcome = 'WIN') AS wins,
           count(*) FILTER (WHERE outcome = 'LOSS') AS losses,
           count(*) FILTER (WHERE outcome = 'SKIP') AS skips,
           coalesce(sum(stake) FILTER (WHERE outcome <> 'SKIP'), 0) AS staked,
           sum(profit) AS profit,
           (max(at || balance_after) FILTER (WHERE balance_after IS NOT NULL))[3] AS last_balance,
           min(occurred_at) AS first_at, max(occurred_at) AS last_at,
           max(at) AS last_round
    FROM fresh
    GROUP BY GROUPING SETS ((bot_id), (bot_id, strategy))
    HAVING GROUPING(strategy) = 1 OR strategy IS NOT NULL
)
INSERT INTO {{bot_stats}} AS s (
    bot_id, strategy_name, rounds, wins, losses, skips, total_staked, total_profit,
    last_balance, first_round_at, updated_at, last_tx_id, last_position)
SELECT bot_id, strategy_name, rounds, wins, losses, skips, staked, profit, last_balance,
       first_at, last_at, last_round[1]::text::xid8, last_round[2]::bigint
FROM totals
ON CONFLICT (bot_id, strategy_name) DO UPDATE SET
    rounds = s.rounds + excluded.rounds,
    wins = s.wins + excluded.wins,
    losses = s.losses + excluded.losses,
    skips = s.skips + excluded.skips,
    total_staked = s.total_staked + excluded.total_staked,
    total_profit = s.total_profit + excluded.total_profit,
    last_balance = coalesce(excluded.last_balance, s.last_balance),
    first_round_at = least(s.first_round_at, excluded.first_round_at),
    updated_at = greatest(s.updated_at, excluded.updated_at),
    last_tx_id = excluded.last_tx_id,
    last_position = excluded.last_position
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_UPSERT.format(bot_stats=tables["bot_stats"]), *span)


PROJECTION = Projection(
    name="bot_stats",
    version=1,
    event_types=("RoundSettled",),
    tables=("bot_stats",),
    handler=apply,
    weight=4,
    reads={"RoundSettled": 1},
    read_tables=(ReadTable("bot_stats", time=None, order=("bot_id", "strategy_name")),),
)
