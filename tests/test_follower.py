"""``projections.follower``: every committed event once, in commit-safe order, live."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from crashlog.projections.checkpoints import ORIGIN
from crashlog.projections.follower import CommittedEvent, LogFollower, start_back
from crashlog.projections.runner import CHANNEL

_INSERT = """
INSERT INTO crashlog.events (event_id, event_type, schema_version, bot_id, occurred_at, payload)
VALUES ($1, 'BotStarted', 1, $2, now(), '{}'::jsonb)
RETURNING tx_id::text::bigint AS tx_id, position
"""


async def append(conn: asyncpg.Connection, bot_id: str) -> tuple[int, int]:
    """One event of ``bot_id`` (its own transaction unless ``conn`` is in one); where it is."""
    row = await conn.fetchrow(_INSERT, uuid.uuid4(), bot_id)
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
    assert await start_back(conn, 100) == ORIGIN
    with pytest.raises(ValueError, match="events=-1"):
        await start_back(conn, -1)

    async def read(after: object = ORIGIN, **filters: str) -> list[str]:
        async with LogFollower(conn, after, **filters) as log:  # type: ignore[arg-type]
            return [e.bot_id async for e in take(log, 10)]

    assert await read() == ["a", "b", "a", "b", "a"]
    assert await read(bot_id="b") == ["b", "b"]
    assert await read(event_type="RoundSettled") == []
    assert await read(await start_back(conn, 2)) == ["b", "a"]
    assert await read(await start_back(conn, 0)) == []


async def take(log: LogFollower, most: int) -> AsyncIterator[CommittedEvent]:
    """What ``log`` yields until it has nothing more to read now (at most ``most``)."""
    iterator = aiter(log)
    for _ in range(most):
        try:
            yield await asyncio.wait_for(anext(iterator), 1.0)
        except TimeoutError:
            return


async def test_it_listens_on_the_runners_channel_only_while_open(conn: asyncpg.Connection) -> None:
    listening = "SELECT array(SELECT pg_listening_channels())"
    async with LogFollower(conn):
        assert await conn.fetchval(listening) == [CHANNEL]
    assert await conn.fetchval(listening) == []
