"""``crashlog.bot_stats``: running totals per bot (strategy_name '') and per (bot, strategy).

Each row remembers the last event it counted (``last_tx_id``, ``last_position``); a
bot's rounds are applied in log order, so an event at or before that mark has been
counted already and a re-delivery adds nothing. ``total_staked`` counts WIN and LOSS
rounds: a SKIP places no bet. ``last_balance`` is the balance_after of the bot's latest
round that reported one.
"""

from __future__ import annotations

import asyncpg

from crashlog.projections.base import IN_SPAN, Projection, Span, Tables, numeric, text

_UPSERT = f"""
WITH ev AS (
    SELECT e.bot_id, e.tx_id, e.position, e.occurred_at,
           {text('strategy_name')} AS strategy, {text('outcome')} AS outcome,
           {numeric('stake')} AS stake, {numeric('profit_loss')} AS profit,
           {numeric('balance_after')} AS balance_after
    FROM {IN_SPAN} AND e.event_type = 'RoundSettled'
), keyed AS (
    SELECT bot_id, '' AS strategy_name, tx_id, position, occurred_at, outcome, stake, profit,
           balance_after
    FROM ev
    UNION ALL
    SELECT bot_id, strategy, tx_id, position, occurred_at, outcome, stake, profit, balance_after
    FROM ev WHERE strategy IS NOT NULL
), fresh AS (
    SELECT k.* FROM keyed k
    LEFT JOIN {{bot_stats}} b ON b.bot_id = k.bot_id AND b.strategy_name = k.strategy_name
    WHERE b.bot_id IS NULL OR (k.tx_id, k.position) > (b.last_tx_id, b.last_position)
)
INSERT INTO {{bot_stats}} AS s (
    bot_id, strategy_name, rounds, wins, losses, skips, total_staked, total_profit,
    last_balance, first_round_at, updated_at, last_tx_id, last_position)
SELECT bot_id, strategy_name, count(*),
       count(*) FILTER (WHERE outcome = 'WIN'),
       count(*) FILTER (WHERE outcome = 'LOSS'),
       count(*) FILTER (WHERE outcome = 'SKIP'),
       coalesce(sum(stake) FILTER (WHERE outcome <> 'SKIP'), 0),
       sum(profit),
       (array_agg(balance_after ORDER BY tx_id DESC, position DESC)
            FILTER (WHERE balance_after IS NOT NULL))[1],
       min(occurred_at), max(occurred_at),
       (array_agg(tx_id ORDER BY tx_id DESC, position DESC))[1],
       (array_agg(position ORDER BY tx_id DESC, position DESC))[1]
FROM fresh
GROUP BY bot_id, strategy_name
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
    weight=5,
)
