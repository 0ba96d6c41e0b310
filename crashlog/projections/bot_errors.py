"""``crashlog.bot_errors``: every error a bot reported."""

from __future__ import annotations

import asyncpg

from crashlog.projections.base import IN_SPAN, SKIP_KNOWN_EVENTS, Projection, ReadTable, Span, Tables, json_object, text

_INSERT = f"""
INSERT INTO {{bot_errors}} (
    event_id, position, bot_id, session_id, error_type, message, severity, traceback,
    context, occurred_at)
SELECT e.event_id, e.position, e.bot_id, e.session_id, {text('error_type')}, {text('message')},
       coalesce({text('severity')}, 'error'), {text('traceback')}, {json_object('context')},
       e.occurred_at
FROM {IN_SPAN} AND e.event_type = 'BotErrorRaised'
{SKIP_KNOWN_EVENTS}
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_INSERT.format(bot_errors=tables["bot_errors"]), *span)


PROJECTION = Projection(
    name="bot_errors",
    version=1,
    event_types=("BotErrorRaised",),
    tables=("bot_errors",),
    one_row_per_event=("bot_errors",),
    handler=apply,
    reads={"BotErrorRaised": 1},
    read_tables=(ReadTable("bot_errors", time="occurred_at", order=("occurred_at", "position")),),
)
