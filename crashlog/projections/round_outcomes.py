"""``crashlog.round_outcomes``: the narrow record of each settled round's outcome."""

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
    numeric,
    text,
)

_INSERT = f"""
INSERT INTO {{round_outcomes}} (
    event_id, position, bot_id, session_id, game, platform, game_round_id, round_number,
    strategy_name, outcome, stake, cashout_multiplier, crash_multiplier, profit_loss, occurred_at)
SELECT e.event_id, e.position, e.bot_id, e.session_id, {text('game')}, {text('platform')},
       {text('game_round_id')}, {bigint('round_number')}, {text('strategy_name')},
       {text('outcome')}, {numeric('stake')}, {numeric('cashout_multiplier')},
       {numeric('crash_multiplier')}, {numeric('profit_loss')}, e.occurred_at
FROM {IN_SPAN} AND e.event_type = 'RoundSettled'
{SKIP_KNOWN_EVENTS}
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_INSERT.format(round_outcomes=tables["round_outcomes"]), *span)


PROJECTION = Projection(
    name="round_outcomes",
    version=1,
    event_types=("RoundSettled",),
    tables=("round_outcomes",),
    one_row_per_event=("round_outcomes",),
    handler=apply,
    weight=4,
    reads={"RoundSettled": 1},
    read_tables=(ReadTable("round_outcomes", time="occurred_at", order=("occurred_at", "position")),),
)
