"""``crashlog.sessions``: one row per (bot, session), its start and its end merged.

Either half may arrive first; each half is the latest of its kind in log order, so a
re-delivered older event changes nothing.
"""

from __future__ import annotations

import asyncpg

from crashlog.projections.base import IN_SPAN, Projection, ReadTable, Span, Tables, numeric, text

_STARTED = f"""
INSERT INTO {{sessions}} AS s (
    bot_id, session_id, game, platform, strategy_name, start_balance, started_at,
    start_tx_id, start_position)
SELECT DISTINCT ON (e.bot_id, e.session_id)
       e.bot_id, e.session_id, {text('game')}, {text('platform')}, {text('strategy_name')},
       {numeric('balance')}, e.occurred_at, e.tx_id, e.position
FROM {IN_SPAN} AND e.event_type = 'SessionStarted'
ORDER BY e.bot_id, e.session_id, e.tx_id DESC, e.position DESC
ON CONFLICT (bot_id, session_id) DO UPDATE SET
    game = excluded.game, platform = excluded.platform, strategy_name = excluded.strategy_name,
    start_balance = excluded.start_balance, started_at = excluded.started_at,
    start_tx_id = excluded.start_tx_id, start_position = excluded.start_position
WHERE s.start_tx_id IS NULL
   OR (excluded.start_tx_id, excluded.start_position) > (s.start_tx_id, s.start_position)
"""

_ENDED = f"""
INSERT INTO {{sessions}} AS s (
    bot_id, session_id, end_balance, end_reason, ended_at, end_tx_id, end_position)
SELECT DISTINCT ON (e.bot_id, e.session_id)
       e.bot_id, e.session_id, {numeric('balance')}, {text('reason')}, e.occurred_at,
       e.tx_id, e.position
FROM {IN_SPAN} AND e.event_type = 'SessionEnded'
ORDER BY e.bot_id, e.session_id, e.tx_id DESC, e.position DESC
ON CONFLICT (bot_id, session_id) DO UPDATE SET
    end_balance = excluded.end_balance, end_reason = excluded.end_reason,
    ended_at = excluded.ended_at, end_tx_id = excluded.end_tx_id,
    end_position = excluded.end_position
WHERE s.end_tx_id IS NULL
   OR (excluded.end_tx_id, excluded.end_position) > (s.end_tx_id, s.end_position)
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_STARTED.format(sessions=tables["sessions"]), *span)
    await conn.execute(_ENDED.format(sessions=tables["sessions"]), *span)


PROJECTION = Projection(
    name="sessions",
    version=1,
    event_types=("SessionStarted", "SessionEnded"),
    tables=("sessions",),
    handler=apply,
    reads={"SessionStarted": 1, "SessionEnded": 1},
    read_tables=(ReadTable("sessions", time="started_at", order=("started_at", "bot_id", "session_id")),),
)
