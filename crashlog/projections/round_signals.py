"""``crashlog.round_signals``: each signal, scored against the round it was for.

A signal names its round by ``for_game_round_id`` (matched across bots on
platform, game and game round) or else by ``for_round_number`` (matched against the
same bot's readings). The round's multiplier is the value most readings agree on
(ties: the earliest reported, then the lowest), as in ``round_multipliers``;
``hit`` says it reached the predicted multiplier. A signal whose round is not known
yet waits (``resolved`` false); every reading that arrives re-scores the signals of
its round, so the result does not depend on which came first. The projection keeps
its own copy of the readings (``round_signal_readings``): it never reads another
projection's tables.
"""

from __future__ import annotations

import asyncpg

from crashlog.projections.base import (
    IN_SPAN,
    SKIP_KNOWN_EVENTS,
    Projection,
    ReadTable,
    Span,
    Tables,
    bigint,
    float8,
    numeric,
    text,
)
from crashlog.projections.chunks import key_ranges
from crashlog.projections.round_readings import ROUND_EVENT_TYPES, ROUND_EVENTS, ROUND_READS

_READINGS = f"""
INSERT INTO {{readings}} (
    event_id, bot_id, platform, game, game_round_id, round_number, multiplier, occurred_at)
SELECT e.event_id, e.bot_id, {text('platform')}, {text('game')}, {text('game_round_id')},
       {bigint('round_number')}, {numeric('crash_multiplier')}, e.occurred_at
FROM {IN_SPAN} AND {ROUND_EVENTS}
   AND (e.payload ? 'game_round_id' OR e.payload ? 'round_number')
{SKIP_KNOWN_EVENTS}
"""

_SIGNALS = f"""
INSERT INTO {{signals}} (
    event_id, position, bot_id, session_id, game, platform, signal_id, signal_type,
    confidence_score, pattern_match, predicted_multiplier, feature_vector,
    for_game_round_id, for_round_number, occurred_at)
SELECT e.event_id, e.position, e.bot_id, e.session_id, {text('game')}, {text('platform')},
       {text('signal_id')}, {text('signal_type')}, {float8('confidence_score')},
       {text('pattern_match')}, {numeric('predicted_multiplier')},
       CASE WHEN e.payload ? 'feature_vector' THEN ARRAY(
           SELECT v::double precision
           FROM jsonb_array_elements_text(e.payload->'feature_vector') WITH ORDINALITY AS x(v, i)
           ORDER BY i) END,
       {text('for_game_round_id')}, {bigint('for_round_number')}, e.occurred_at
FROM {IN_SPAN} AND e.event_type = 'SignalRaised'
{SKIP_KNOWN_EVENTS}
"""

# The multiplier most readings agree on, among ``matching`` readings r.
_MODE = """(SELECT r.multiplier FROM {readings} r WHERE {matching}
            GROUP BY r.multiplier ORDER BY count(*) DESC, min(r.occurred_at), r.multiplier
            LIMIT 1)"""
_BY_ROUND_ID = _MODE.format(
    readings="{readings}",
    matching="s.for_game_round_id IS NOT NULL AND r.platform = s.platform AND r.game = s.game"
    " AND r.game_round_id = s.for_game_round_id",
)
_BY_ROUND_NUMBER = _MODE.format(
    readings="{readings}",
    matching="s.for_game_round_id IS NULL AND r.bot_id = s.bot_id AND r.platform = s.platform"
    " AND r.game = s.game AND r.round_number = s.for_round_number",
)

# The multiplier of signal s's round (NULL while no reading of it is known).
_ACTUAL = f"coalesce({_BY_ROUND_ID}, {_BY_ROUND_NUMBER}) AS multiplier"
# The signals of ``actual`` given their round's multiplier (materialised first: its lookups
# are then run once per signal, not once for each column they set).
_UPDATE = """
UPDATE {signals} s
SET actual_multiplier = a.multiplier,
    hit = a.multiplier >= s.predicted_multiplier,
    resolved = a.multiplier IS NOT NULL
FROM actual a
WHERE s.event_id = a.event_id AND s.actual_multiplier IS DISTINCT FROM a.multiplier
"""

# The signals the span's events touched (raised, or whose round was read), scored.
_SCORE = f"""
WITH batch AS MATERIALIZED (
    SELECT DISTINCT e.bot_id, {text('platform')} AS platform, {text('game')} AS game,
           {text('game_round_id')} AS game_round_id, {bigint('round_number')} AS round_number
    FROM {IN_SPAN} AND {ROUND_EVENTS}
), touched AS (
    -- Signals are looked up by index for each round read, however many the planner guesses
    -- (OFFSET 0 keeps it from scanning every signal instead).
    SELECT s.event_id FROM batch b CROSS JOIN LATERAL (
        SELECT s.event_id FROM {{signals}} s
        WHERE s.platform = b.platform AND s.game = b.game AND s.for_game_round_id = b.game_round_id
        OFFSET 0) s
    UNION
    SELECT s.event_id FROM batch b CROSS JOIN LATERAL (
        SELECT s.event_id FROM {{signals}} s
        WHERE s.for_game_round_id IS NULL AND s.bot_id = b.bot_id AND s.platform = b.platform
          AND s.game = b.game AND s.for_round_number = b.round_number
        OFFSET 0) s
    UNION
    SELECT e.event_id FROM {IN_SPAN} AND e.event_type = 'SignalRaised'
), actual AS MATERIALIZED (
    SELECT s.event_id, {_ACTUAL}
    FROM touched t CROSS JOIN LATERAL (
        SELECT s.* FROM {{signals}} s WHERE s.event_id = t.event_id OFFSET 0) s
)
{_UPDATE}
"""

#: The key a rebuild's ``score_all`` goes through the signals by, chunk by chunk.
SIGNAL_KEY = ("event_id",)

# Every signal with an event_id in a range, scored ($1.. the range's bounds): the rebuild's
# derive, once every reading is recorded.
_SCORE_RANGE = f"""
WITH actual AS MATERIALIZED (
    SELECT s.event_id, {_ACTUAL} FROM {{signals}} s WHERE {{range}}
)
{_UPDATE}
"""


def _names(tables: Tables) -> dict[str, str]:
    return {"readings": tables["round_signal_readings"], "signals": tables["round_signals"]}


async def record(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_READINGS.format(**_names(tables)), *span)
    await conn.execute(_SIGNALS.format(**_names(tables)), *span)


async def score(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    names = _names(tables)
    # With no signal stored there is nothing to score (the common case for a betting bot).
    if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {names['signals']})"):
        await conn.execute(_SCORE.format(**names), *span)


async def score_all(conn: asyncpg.Connection, tables: Tables) -> None:
    """Every signal scored, a range of signals per transaction."""
    names = _names(tables)
    for chunk in await key_ranges(conn, names["signals"], SIGNAL_KEY):
        where, args = chunk.where([f"s.{column}" for column in SIGNAL_KEY])
        async with conn.transaction():
            await conn.execute(_SCORE_RANGE.format(**names, range=where), *args)


PROJECTION = Projection(
    name="round_signals",
    version=1,
    event_types=("SignalRaised", *ROUND_EVENT_TYPES),
    tables=("round_signals", "round_signal_readings"),
    handler=record,
    derive=score,
    derived=("round_signals",),
    derive_all=score_all,
    weight=10,
    one_row_per_event=("round_signals", "round_signal_readings"),
    reads={"SignalRaised": 1, **ROUND_READS},
    read_tables=(ReadTable("round_signals", time="occurred_at", order=("occurred_at", "position")),),
)
