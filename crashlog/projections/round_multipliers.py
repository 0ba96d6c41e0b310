"""``crashlog.round_multipliers``: where each game round crashed, merged over every observer.

Every reading (RoundObserved, and RoundSettled's crash_multiplier) is kept in
``round_multiplier_readings``; a game round's row is recomputed from all its readings
whenever one arrives, so the result is a function of the set of readings: the order
bots' events arrive in does not matter, and a re-delivery changes nothing. The row's
multiplier is the value most readings agree on (ties: the earliest reported, then
the lowest); ``disagreement`` flags a round whose readings differ. A reading without
a game_round_id is a row of its own, keyed by its event_id.

``quality_flags`` marks what makes a round's value doubtful, so exports and the quality
report can leave it out: ``off_grid`` (a reading not on the two-decimal grid the game
shows), ``disagreement`` (its readings differ) and ``low_ocr_confidence`` (a reading's OCR
confidence below ``LOW_OCR_CONFIDENCE``); ``ocr_confidence`` is the lowest one given.
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
from crashlog.quality_flags import LOW_OCR_CONFIDENCE

#: The columns of ``crashlog.round_multipliers`` a reader gets, in order, with their kind (as
#: ``rounds.COLUMNS``); the keys ``event_id`` and ``first_position`` are the projection's own.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("platform", "text"),
    ("game", "text"),
    ("game_round_id", "text"),
    ("round_number", "int"),
    ("multiplier", "decimal"),
    ("observers", "int32"),
    ("readings", "int32"),
    ("disagreement", "bool"),
    ("min_multiplier", "decimal"),
    ("max_multiplier", "decimal"),
    ("first_seen_at", "time"),
    ("last_seen_at", "time"),
    ("ocr_confidence", "float"),
    ("quality_flags", "texts"),
)


def _flags(*, off_grid: str, disagreement: str, confidence: str) -> str:
    """The SQL array of a row's quality flags, from three SQL expressions (one place for both
    the one-reading rows and the merged ones)."""
    return f"""array_remove(ARRAY[
        CASE WHEN {off_grid} THEN 'off_grid' END,
        CASE WHEN {disagreement} THEN 'disagreement' END,
        CASE WHEN {confidence} < {LOW_OCR_CONFIDENCE} THEN 'low_ocr_confidence' END], NULL)"""


_READINGS = f"""
INSERT INTO {{readings}} (
    event_id, position, bot_id, platform, game, game_round_id, round_number, multiplier,
    ocr_confidence, occurred_at)
SELECT e.event_id, e.position, e.bot_id, {text('platform')}, {text('game')},
       {text('game_round_id')}, {bigint('round_number')}, {numeric('crash_multiplier')},
       {float8('ocr_confidence')}, e.occurred_at
FROM {IN_SPAN} AND {ROUND_EVENTS}
{SKIP_KNOWN_EVENTS}
"""

_UNKEYED = f"""
INSERT INTO {{multipliers}} (
    platform, game, event_id, round_number, multiplier, observers, readings,
    min_multiplier, max_multiplier, disagreement, first_seen_at, last_seen_at, first_position,
    ocr_confidence, quality_flags)
SELECT {text('platform')}, {text('game')}, e.event_id, {bigint('round_number')},
       {numeric('crash_multiplier')}, 1, 1, {numeric('crash_multiplier')},
       {numeric('crash_multiplier')}, false, e.occurred_at, e.occurred_at, e.position,
       {float8('ocr_confidence')},
       {_flags(off_grid=f"{numeric('crash_multiplier')} <> round({numeric('crash_multiplier')}, 2)",
               disagreement="false", confidence=float8('ocr_confidence'))}
FROM {IN_SPAN} AND {ROUND_EVENTS} AND NOT e.payload ? 'game_round_id'
{SKIP_KNOWN_EVENTS}
"""

# The rows of the rounds whose readings ``counted`` holds, merged from all their readings:
# each reading carries how many readings of its round share its value (``n``), and when that
# value was first reported (``first_at``).
_ROUND_ROWS = f"""
INSERT INTO {{multipliers}} AS m (
    platform, game, game_round_id, round_number, multiplier, observers, readings,
    min_multiplier, max_multiplier, disagreement, first_seen_at, last_seen_at, first_position,
    ocr_confidence, quality_flags)
SELECT platform, game, game_round_id, min(round_number),
       (array_agg(multiplier ORDER BY n DESC, first_at, multiplier))[1],
       count(DISTINCT bot_id), count(*), min(multiplier), max(multiplier),
       min(multiplier) <> max(multiplier), min(occurred_at), max(occurred_at), min(position),
       min(ocr_confidence),
       {_flags(off_grid="bool_or(multiplier <> round(multiplier, 2))",
               disagreement="min(multiplier) <> max(multiplier)", confidence="min(ocr_confidence)")}
FROM counted
GROUP BY platform, game, game_round_id
"""
# ... replacing the rows those rounds had.
_MERGE = _ROUND_ROWS + """
ON CONFLICT (platform, game, game_round_id) DO UPDATE SET
    round_number = excluded.round_number, multiplier = excluded.multiplier,
    observers = excluded.observers, readings = excluded.readings,
    min_multiplier = excluded.min_multiplier, max_multiplier = excluded.max_multiplier,
    disagreement = excluded.disagreement, first_seen_at = excluded.first_seen_at,
    last_seen_at = excluded.last_seen_at, first_position = excluded.first_position,
    ocr_confidence = excluded.ocr_confidence, quality_flags = excluded.quality_flags
WHERE m.readings IS DISTINCT FROM excluded.readings
"""
_COUNTED = """
    SELECT r.*, count(*) OVER w AS n, min(r.occurred_at) OVER w AS first_at
    FROM {source}
    WINDOW w AS (PARTITION BY r.platform, r.game, r.game_round_id, r.multiplier)
"""

# The rounds the span's readings touched, recomputed (the runner's derive).
_KEYED = f"""
WITH touched AS (
    SELECT DISTINCT platform, game, game_round_id FROM (
        SELECT {text('platform')} AS platform, {text('game')} AS game,
               {text('game_round_id')} AS game_round_id
        FROM {IN_SPAN} AND {ROUND_EVENTS}) s
    WHERE game_round_id IS NOT NULL
    -- In round order, the readings come out of the lookups below grouped by round, and
    -- sorting them for the window and the grouping costs a third of sorting them unordered.
    ORDER BY platform, game, game_round_id
), counted AS ({_COUNTED.format(source='''
        -- Each touched round's readings by the index, however many the planner guesses the
        -- batch touches (OFFSET 0 keeps it from turning this into a scan of every reading).
        touched t CROSS JOIN LATERAL (
        SELECT * FROM {readings} r
        WHERE r.platform = t.platform AND r.game = t.game AND r.game_round_id = t.game_round_id
        OFFSET 0) r''')})
{_MERGE}
"""

#: The key a rebuild's ``derive_all`` goes through the readings by, chunk by chunk (the
#: readings' index ``round_multiplier_readings_round`` serves it).
ROUND_KEY = ("platform", "game", "game_round_id")

# Every round with a key in a range, recomputed from all its readings ($1.. the range's
# bounds): the rebuild's derive, one index scan in round order and no lookups. Each round is
# in one range, and the rebuild's table holds no keyed row before: nothing to replace.
_KEYED_RANGE = f"""
WITH counted AS ({_COUNTED.format(source="{readings} r WHERE r.game_round_id IS NOT NULL AND {range}")})
{_ROUND_ROWS}
"""


def _names(tables: Tables) -> dict[str, str]:
    return {"readings": tables["round_multiplier_readings"], "multipliers": tables["round_multipliers"]}


async def record(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_READINGS.format(**_names(tables)), *span)
    await conn.execute(_UNKEYED.format(**_names(tables)), *span)


async def derive(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_KEYED.format(**_names(tables)), *span)


async def derive_all(conn: asyncpg.Connection, tables: Tables) -> None:
    """Every round recomputed from all its readings, a range of rounds per transaction."""
    names = _names(tables)
    for chunk in await key_ranges(conn, names["readings"], ROUND_KEY, "game_round_id IS NOT NULL"):
        where, args = chunk.where([f"r.{column}" for column in ROUND_KEY])
        async with conn.transaction():
            await conn.execute(_KEYED_RANGE.format(**names, range=where), *args)


PROJECTION = Projection(
    name="round_multipliers",
    version=2,
    event_types=ROUND_EVENT_TYPES,
    tables=("round_multipliers", "round_multiplier_readings"),
    handler=record,
    derive=derive,
    derived=("round_multipliers",),
    derive_all=derive_all,
    weight=9,
    one_row_per_event=("round_multiplier_readings",),
    reads=ROUND_READS,
    read_tables=(ReadTable("round_multipliers", time="first_seen_at", order=("first_seen_at", "first_position")),),
)
