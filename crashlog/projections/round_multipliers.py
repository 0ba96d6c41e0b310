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
    SELECT DISTINCT {text('platform')} AS platform, {text('game')} AS game,
                    {text('game_round_id')} AS game_round_id
    FROM {IN_SPAN} AND {ROUND_EVENTS} AND e.payload ? 'game_round_id'
), readings AS (
    SELECT r.* FROM {{readings}} r
    JOIN touched t USING (platform, game, game_round_id)
), agg AS (
    SELECT platform, game, game_round_id, min(round_number) AS round_number,
           count(DISTINCT bot_id) AS observers, count(*) AS readings,
           min(multiplier) AS min_multiplier, max(multiplier) AS max_multiplier,
           min(occurred_at) AS first_seen_at, max(occurred_at) AS last_seen_at,
           min(position) AS first_position
    FROM readings GROUP BY platform, game, game_round_id
), mode AS (
    SELECT DISTINCT ON (platform, game, game_round_id) platform, game, game_round_id, multiplier
    FROM (SELECT platform, game, game_round_id, multiplier, count(*) AS n,
                 min(occurred_at) AS first_at
          FROM readings GROUP BY platform, game, game_round_id, multiplier) v
    ORDER BY platform, game, game_round_id, n DESC, first_at, multiplier
)
INSERT INTO {{multipliers}} AS m (
    platform, game, game_round_id, round_number, multiplier, observers, readings,
    min_multiplier, max_multiplier, disagreement, first_seen_at, last_seen_at, first_position)
SELECT a.platform, a.game, a.game_round_id, a.round_number, o.multiplier, a.observers,
       a.readings, a.min_multiplier, a.max_multiplier, a.min_multiplier <> a.max_multiplier,
       a.first_seen_at, a.last_seen_at, a.first_position
FROM agg a JOIN mode o USING (platform, game, game_round_id)
ON CONFLICT (platform, game, game_round_id) DO UPDATE SET
    round_number = excluded.round_number, multiplier = excluded.multiplier,
    observers = excluded.observers, readings = excluded.readings,
    min_multiplier = excluded.min_multiplier, max_multiplier = excluded.max_multiplier,
    disagreement = excluded.disagreement, first_seen_at = excluded.first_seen_at,
    last_seen_at = excluded.last_seen_at, first_position = excluded.first_position
WHERE (m.readings, m.multiplier, m.round_number, m.first_seen_at, m.last_seen_at)
      IS DISTINCT FROM (excluded.readings, excluded.multiplier, excluded.round_number,
                        excluded.first_seen_at, excluded.last_seen_at)
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    names = {"readings": tables["round_multiplier_readings"], "multipliers": tables["round_multipliers"]}
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
