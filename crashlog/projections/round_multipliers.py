"""``crashlog.round_multipliers``: where each game round crashed, merged over every observer.

Every reading (RoundObserved, and RoundSettled's crash_multiplier) is kept in
``round_multiplier_readings``; a game round's row is recomputed from all its readings
whenever one arrives, so the result is a function of the set of readings: the order
bots' events arrive in does not matter, and a re-delivery changes nothing. The row's
multiplier is the value most readings agree on (ties: the earliest reported, then
the lowest); ``disagreement`` flags a round whose readings differ. A reading without
a game_round_id is a row of its own, keyed by its event_id.
"""

from __future__ import annotations

import asyncpg

from crashlog.projections.base import IN_SPAN, Projection, Span, Tables, bigint, numeric, text

ROUND_EVENTS = "e.event_type IN ('RoundObserved', 'RoundSettled')"

_READINGS = f"""
INSERT INTO {{readings}} (
    event_id, position, bot_id, platform, game, game_round_id, round_number, multiplier,
    occurred_at)
SELECT e.event_id, e.position, e.bot_id, {text('platform')}, {text('game')},
       {text('game_round_id')}, {bigint('round_number')}, {numeric('crash_multiplier')},
       e.occurred_at
FROM {IN_SPAN} AND {ROUND_EVENTS}
ON CONFLICT (event_id) DO NOTHING
"""

_UNKEYED = f"""
INSERT INTO {{multipliers}} (
    platform, game, event_id, round_number, multiplier, observers, readings,
    min_multiplier, max_multiplier, disagreement, first_seen_at, last_seen_at, first_position)
SELECT {text('platform')}, {text('game')}, e.event_id, {bigint('round_number')},
       {numeric('crash_multiplier')}, 1, 1, {numeric('crash_multiplier')},
       {numeric('crash_multiplier')}, false, e.occurred_at, e.occurred_at, e.position
FROM {IN_SPAN} AND {ROUND_EVENTS} AND NOT e.payload ? 'game_round_id'
ON CONFLICT (event_id) DO NOTHING
"""

_KEYED = f"""
WITH touched AS (
    SELECT DISTINCT platform, game, game_round_id FROM (
        SELECT {text('platform')} AS platform, {text('game')} AS game,
               {text('game_round_id')} AS game_round_id
        FROM {IN_SPAN} AND {ROUND_EVENTS}) s
    WHERE game_round_id IS NOT NULL
), counted AS (
    -- One pass, no join between aggregates: each reading carries how many readings of its
    -- round share its value, and when that value was first reported.
    SELECT r.*,
           count(*) OVER w AS n,
           min(r.occurred_at) OVER w AS first_at
    FROM {{readings}} r JOIN touched t USING (platform, game, game_round_id)
    WINDOW w AS (PARTITION BY r.platform, r.game, r.game_round_id, r.multiplier)
)
INSERT INTO {{multipliers}} AS m (
    platform, game, game_round_id, round_number, multiplier, observers, readings,
    min_multiplier, max_multiplier, disagreement, first_seen_at, last_seen_at, first_position)
SELECT platform, game, game_round_id, min(round_number),
       (array_agg(multiplier ORDER BY n DESC, first_at, multiplier))[1],
       count(DISTINCT bot_id), count(*), min(multiplier), max(multiplier),
       min(multiplier) <> max(multiplier), min(occurred_at), max(occurred_at), min(position)
FROM counted
GROUP BY platform, game, game_round_id
ON CONFLICT (platform, game, game_round_id) DO UPDATE SET
    round_number = excluded.round_number, multiplier = excluded.multiplier,
    observers = excluded.observers, readings = excluded.readings,
    min_multiplier = excluded.min_multiplier, max_multiplier = excluded.max_multiplier,
    disagreement = excluded.disagreement, first_seen_at = excluded.first_seen_at,
    last_seen_at = excluded.last_seen_at, first_position = excluded.first_position
WHERE m.readings IS DISTINCT FROM excluded.readings
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    names = {
        "readings": tables["round_multiplier_readings"],
        "multipliers": tables["round_multipliers"],
    }
    await conn.execute(_READINGS.format(**names), *span)
    await conn.execute(_UNKEYED.format(**names), *span)
    await conn.execute(_KEYED.format(**names), *span)


PROJECTION = Projection(
    name="round_multipliers",
    version=1,
    event_types=("RoundObserved", "RoundSettled"),
    tables=("round_multipliers", "round_multiplier_readings"),
    handler=apply,
)
