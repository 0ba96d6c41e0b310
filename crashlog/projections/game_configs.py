"""``crashlog.game_configs``: the rules of each game on each platform.

Several bots may report the same game: the report with the latest ``occurred_at``
(then the greatest event_id) wins, which does not depend on the order bots' events
reached the log.
"""

from __future__ import annotations

import asyncpg

from crashlog.projections.base import IN_SPAN, Projection, ReadTable, Span, Tables, numeric, text

_UPSERT = f"""
INSERT INTO {{game_configs}} AS c (
    platform, game, min_stake, max_stake, max_multiplier, rtp_percent, currency,
    reported_by, event_id, configured_at)
SELECT DISTINCT ON (platform, game) *
FROM (
    SELECT {text('platform')} AS platform, {text('game')} AS game,
           {numeric('min_stake')}, {numeric('max_stake')}, {numeric('max_multiplier')},
           {numeric('rtp_percent')}, {text('currency')}, e.bot_id, e.event_id, e.occurred_at
    FROM {IN_SPAN} AND e.event_type = 'GameConfigured'
) g
ORDER BY platform, game, occurred_at DESC, event_id DESC
ON CONFLICT (platform, game) DO UPDATE SET
    min_stake = excluded.min_stake, max_stake = excluded.max_stake,
    max_multiplier = excluded.max_multiplier, rtp_percent = excluded.rtp_percent,
    currency = excluded.currency, reported_by = excluded.reported_by,
    event_id = excluded.event_id, configured_at = excluded.configured_at
WHERE (excluded.configured_at, excluded.event_id)
      > (c.configured_at, c.event_id)
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_UPSERT.format(game_configs=tables["game_configs"]), *span)


PROJECTION = Projection(
    name="game_configs",
    version=1,
    event_types=("GameConfigured",),
    tables=("game_configs",),
    handler=apply,
    reads={"GameConfigured": 1},
    read_tables=(ReadTable("game_configs", time="configured_at", order=("configured_at", "platform", "game")),),
)
