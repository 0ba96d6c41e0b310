"""``projections.follower``: every committed event once, in commit-safe order, live."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from crashlog.projections.checkpoints import ORIGIN, Position
from crashlog.projections.follower import CommittedEvent, LogFollower, start_back
from crashlog.projections.runner import CHANNEL

_INSERT = """
INSERT INTO crashlog.events (event_id, event_type, schema_version, bot_id, occurred_at, payload)
VALUES ($1, $3, 1, $2, now(), '{}'::jsonb)
RETURNING tx_id::text::bigint AS tx_id, position
"""


async def append(
    conn: asyncpg.Connection, bot_id: str, event_type: str = "BotStarted"
) -> tuple[int, int]:
    """One event of ``bot_id`` (its own transaction unless ``conn`` is in one); where it is."""
    row = await conn.fetchrow(_INSERT, uuid.uuid4(), bot_id, event_type)
    return row["tx_id"], row["position"]


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(60):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture
async def connections(dsn: str) -> AsyncIterator[list[asyncpg.Connection]]:
    opened = [await asyncpg.connect(dsn) for _ in range(3)]
    yield opened
    for conn in opened:
        await conn.close()


async def test_a_late_commit_comes_once_before_what_committed_while_it_was_open(
    connections: list[asyncpg.Connection],
) -> None:
    reader, late, writer = connections
    first = await append(writer, "before")
    got: list[CommittedEvent] = []

    async def follow() -> None:
        async with LogFollower(reader, poll=0.05) as log:
            async for event in log:
                got.append(event)

    task = asyncio.create_task(follow())
    try:
        await until(lambda: len(got) == 1)
        held = late.transaction()
        await held.start()
        await late.fetchval("SELECT pg_current_xact_id()")  # its tx_id: below the ones after
        after = [await append(writer, "after") for _ in range(3)]
        mine = [await append(late, "late") for _ in range(2)]  # higher positions than `after`
        await asyncio.sleep(0.5)  # several polls and wake-ups while the transaction is open
        assert [e.bot_id for e in got] == ["before"], "read past a transaction still open"
        await held.commit()
        await until(lambda: len(got) == 6)
        last = await append(writer, "last")
        await until(lambda: len(got) >= 7)
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
    assert [(e.tx_id, e.position) for e in got] == [first, *mine, *after, last]
    assert [e.bot_id for e in got] == ["before", "late", "late", "after", "after", "after", "last"]
    assert all(e.event_type == "BotStarted" and e.payload == "{}" for e in got)


async def test_filters_and_starting_some_events_back(conn: asyncpg.Connection) -> None:
    for bot in ("a", "b", "a", "b", "a"):
        await append(conn, bot)
    # Once all five are read, all five are below the horizon (which never moves back).
    assert [e.bot_id for e in await first(conn, 5)] == ["a", "b", "a", "b", "a"]
    assert await start_back(conn, 100) == ORIGIN
    with pytest.raises(ValueError, match="events=-1"):
        await start_back(conn, -1)
    two_back, none_back = await start_back(conn, 2), await start_back(conn, 0)
    await append(conn, "b", "BotStopped")  # the last event: what a reader that waits gets next

    def seen(events: list[CommittedEvent]) -> list[tuple[str, str]]:
        return [(e.bot_id, e.event_type) for e in events]

    stopped = ("b", "BotStopped")
    assert seen(await first(conn, 3, bot_id="b")) == [("b", "BotStarted")] * 2 + [stopped]
    assert seen(await first(conn, 1, event_type="BotStopped")) == [stopped]
    assert seen(await first(conn, 3, two_back)) == [("b", "BotStarted"), ("a", "BotStarted"), stopped]
    assert seen(await first(conn, 1, none_back)) == [stopped]


async def first(
    conn: asyncpg.Connection, n: int, after: Position = ORIGIN, *, bot_id: str | None = None,
    event_type: str | None = None,
) -> list[CommittedEvent]:
    """The first ``n`` events a follower from ``after`` yields."""
    events: list[CommittedEvent] = []
    async with asyncio.timeout(60), LogFollower(
        conn, after, bot_id=bot_id, event_type=event_type, poll=0.05
    ) as log:
        async for event in log:
            events.append(event)
            if len(events) == n:
                return events
    raise AssertionError("unreachable: a follower never ends by itself")


async def test_it_listens_on_the_runners_channel_only_while_open(conn: asyncpg.Connection) -> None:
    listening = "SELECT array(SELECT pg_listening_channels())"
    async with LogFollower(conn):
        assert await conn.fetchval(listening) == [CHANNEL]
    assert await conn.fetchval(listening) == []
