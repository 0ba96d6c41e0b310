"""Events as the log's rows, a connection as crashlog's own, and waiting for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from crashlog import store
from crashlog.events import Event, encode_payload
from crashlog.store import Row


def row_of(event: Event) -> Row:
    """``event`` as the row ``emit`` appends (to write it by COPY or INSERT directly)."""
    return Row(event.event_id, event.event_type, event.schema_version, event.bot_id,
               getattr(event, "session_id", None), event.occurred_at, encode_payload(event))


async def connect(dsn: str) -> asyncpg.Connection:
    """A connection with crashlog's codecs, as the logger's own."""
    conn = await asyncpg.connect(dsn)
    await store.init_connection(conn)
    return conn


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 60.0,
                poll: float = 0.05) -> None:
    """Wait for an async condition (a bound on waiting, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(poll)
