"""``crashlog.bots``: each bot as its latest BotRegistered (in log order) describes it."""

from __future__ import annotations

import asyncpg

from crashlog.projections.base import IN_SPAN, Projection, ReadTable, Span, Tables, json_object, numeric, text

# The latest registration of each bot in the span; it replaces the stored one only if it is
# later in the log, so a re-delivered older registration changes nothing.
_UPSERT = f"""
INSERT INTO {{bots}} AS b (
    bot_id, bot_name, vm_provider, region, strategy_name, initial_balance, currency, metadata,
    registered_at, updated_at, last_tx_id, last_position)
SELECT DISTINCT ON (e.bot_id)
       e.bot_id, {text('bot_name')}, {text('vm_provider')}, {text('region')},
       {text('strategy_name')}, {numeric('initial_balance')}, {text('currency')},
       {json_object('metadata')},
       min(e.occurred_at) OVER (PARTITION BY e.bot_id), e.occurred_at, e.tx_id, e.position
FROM {IN_SPAN} AND e.event_type = 'BotRegistered'
ORDER BY e.bot_id, e.tx_id DESC, e.position DESC
ON CONFLICT (bot_id) DO UPDATE SET
    bot_name = excluded.bot_name, vm_provider = excluded.vm_provider, region = excluded.region,
    strategy_name = excluded.strategy_name, initial_balance = excluded.initial_balance,
    currency = excluded.currency, metadata = excluded.metadata,
    registered_at = least(b.registered_at, excluded.registered_at),
    updated_at = excluded.updated_at,
    last_tx_id = excluded.last_tx_id, last_position = excluded.last_position
WHERE (excluded.last_tx_id, excluded.last_position) > (b.last_tx_id, b.last_position)
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_UPSERT.format(bots=tables["bots"]), *span)


PROJECTION = Projection(
    name="bots",
    version=1,
    event_types=("BotRegistered",),
    tables=("bots",),
    handler=apply,
    reads={"BotRegistered": 1},
    read_tables=(ReadTable("bots", time="registered_at", order=("registered_at", "bot_id")),),
)
