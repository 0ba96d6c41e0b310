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

# Each contradiction as a boolean of the round r (NULL, as no contradiction, where a figure is
# missing).
_CHECKS = f"""
    (r.outcome = 'WIN' AND r.cashout_multiplier > r.crash_multiplier) AS win_cashout_above_crash,
    (abs(r.profit_loss - CASE r.outcome
                           WHEN 'WIN' THEN r.stake * (r.cashout_multiplier - 1)
                           WHEN 'LOSS' THEN -r.stake
                           ELSE 0 END) >= {TOLERANCE}) AS profit_mismatch,
    (abs(r.balance_after - (r.balance_before + r.profit_loss)) >= {TOLERANCE}) AS balance_mismatch
"""
_ANY = "(c.win_cashout_above_crash OR c.profit_mismatch OR c.balance_mismatch)"
# The array is built only for a round with a contradiction (few): building one for every
# round cost as much as reading all its fields.
_FLAGS = f"""
    CASE WHEN {_ANY} THEN array_remove(ARRAY[
        CASE WHEN c.win_cashout_above_crash THEN 'win_cashout_above_crash' END,
        CASE WHEN c.profit_mismatch THEN 'profit_mismatch' END,
        CASE WHEN c.balance_mismatch THEN 'balance_mismatch' END], NULL)
    ELSE ARRAY[]::text[] END
"""

# The fields are taken out of each payload once (OFFSET 0: otherwise each use of a field in
# the checks takes it out again), the checks computed once from them.
_INSERT = f"""
INSERT INTO {{rounds}} ({", ".join(name for name, _ in COLUMNS)})
SELECT c.event_id, c.position, c.bot_id, c.session_id, c.game, c.platform, c.round_number,
       c.game_round_id, c.strategy_name, c.stake, c.target_multiplier, c.crash_multiplier,
       c.cashout_multiplier, c.outcome, c.profit_loss, c.balance_before, c.balance_after,
       c.started_at, c.crashed_at, c.cashed_out_at, c.ocr_confidence, c.detection_latency_ms,
       c.error, c.metadata, c.occurred_at,
       coalesce({_ANY}, false), {_FLAGS}
FROM (
    SELECT r.*, {_CHECKS}
    FROM (
        SELECT e.event_id, e.position, e.bot_id, e.session_id, e.occurred_at, {_FIELDS}
        FROM {IN_SPAN} AND e.event_type = 'RoundSettled'
        OFFSET 0
    ) r
    OFFSET 0
) c
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
