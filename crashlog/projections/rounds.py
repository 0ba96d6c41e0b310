"""``crashlog.rounds``: every settled round as the bot reported it, contradictions flagged.

A contradiction is kept, not corrected: it is the bot's record. Flags:
``win_cashout_above_crash`` (a WIN cashing out above the crash), ``profit_mismatch``
(profit differs by a cent or more from stake x (cashout - 1) for a WIN with a cashout,
-stake for a LOSS, 0 for a SKIP), ``balance_mismatch`` (balance_after differs by a cent
or more from balance_before + profit). The cent of tolerance absorbs a bot rounding
its profit to cents.
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
    json_object,
    numeric,
    text,
    timestamptz,
)
from crashlog.projections.round_outcomes import READ_TABLE as ROUND_OUTCOMES

#: The columns of ``crashlog.rounds`` a reader gets, in order, with their kind: uuid, int, text,
#: decimal, float, time, bool, json or texts (an array of text). Exports write them as listed.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "uuid"),
    ("position", "int"),
    ("bot_id", "text"),
    ("session_id", "text"),
    ("game", "text"),
    ("platform", "text"),
    ("round_number", "int"),
    ("game_round_id", "text"),
    ("strategy_name", "text"),
    ("stake", "decimal"),
    ("target_multiplier", "decimal"),
    ("crash_multiplier", "decimal"),
    ("cashout_multiplier", "decimal"),
    ("outcome", "text"),
    ("profit_loss", "decimal"),
    ("balance_before", "decimal"),
    ("balance_after", "decimal"),
    ("started_at", "time"),
    ("crashed_at", "time"),
    ("cashed_out_at", "time"),
    ("ocr_confidence", "float"),
    ("detection_latency_ms", "int"),
    ("error", "text"),
    ("metadata", "json"),
    ("occurred_at", "time"),
    ("is_contradictory", "bool"),
    ("contradictions", "texts"),
)

#: Money differences below this are rounding, not contradictions.
TOLERANCE = "0.01"

_FIELDS = f"""
    {text('game')} AS game, {text('platform')} AS platform,
    {bigint('round_number')} AS round_number, {text('game_round_id')} AS game_round_id,
    {text('strategy_name')} AS strategy_name, {numeric('stake')} AS stake,
    {numeric('target_multiplier')} AS target_multiplier,
    {numeric('crash_multiplier')} AS crash_multiplier,
    {numeric('cashout_multiplier')} AS cashout_multiplier,
    {text('outcome')} AS outcome, {numeric('profit_loss')} AS profit_loss,
    {numeric('balance_before')} AS balance_before, {numeric('balance_after')} AS balance_after,
    {timestamptz('started_at')} AS started_at, {timestamptz('crashed_at')} AS crashed_at,
    {timestamptz('cashed_out_at')} AS cashed_out_at,
    {float8('ocr_confidence')} AS ocr_confidence,
    {bigint('detection_latency_ms')} AS detection_latency_ms,
    {text('error')} AS error, {json_object('metadata')} AS metadata
"""

_CONTRADICTIONS = f"""
    array_remove(ARRAY[
        CASE WHEN r.outcome = 'WIN' AND r.cashout_multiplier > r.crash_multiplier
             THEN 'win_cashout_above_crash' END,
        CASE WHEN abs(r.profit_loss - CASE r.outcome
                        WHEN 'WIN' THEN r.stake * (r.cashout_multiplier - 1)
                        WHEN 'LOSS' THEN -r.stake
                        ELSE 0 END) >= {TOLERANCE}
             THEN 'profit_mismatch' END,
        CASE WHEN abs(r.balance_after - (r.balance_before + r.profit_loss)) >= {TOLERANCE}
             THEN 'balance_mismatch' END
    ], NULL)
"""

_INSERT = f"""
INSERT INTO {{rounds}} ({", ".join(name for name, _ in COLUMNS)})
SELECT r.event_id, r.position, r.bot_id, r.session_id, r.game, r.platform, r.round_number,
       r.game_round_id, r.strategy_name, r.stake, r.target_multiplier, r.crash_multiplier,
       r.cashout_multiplier, r.outcome, r.profit_loss, r.balance_before, r.balance_after,
       r.started_at, r.crashed_at, r.cashed_out_at, r.ocr_confidence, r.detection_latency_ms,
       r.error, r.metadata, r.occurred_at,
       cardinality(c.flags) > 0, c.flags
FROM (
    SELECT e.event_id, e.position, e.bot_id, e.session_id, e.occurred_at, {_FIELDS}
    FROM {IN_SPAN} AND e.event_type = 'RoundSettled'
) r
CROSS JOIN LATERAL (SELECT {_CONTRADICTIONS} AS flags) c
{SKIP_KNOWN_EVENTS}
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_INSERT.format(rounds=tables["rounds"]), *span)


PROJECTION = Projection(
    name="rounds",
    version=1,
    event_types=("RoundSettled",),
    tables=("rounds",),
    one_row_per_event=("rounds",),
    handler=apply,
    weight=11,
    reads={"RoundSettled": 1},
    # round_outcomes is a view over rounds (migration 016), recreated by rounds' swap.
    read_tables=(ReadTable("rounds", time="occurred_at", order=("occurred_at", "position")),
                 ROUND_OUTCOMES),
)
