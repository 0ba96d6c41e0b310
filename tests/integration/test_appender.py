"""The appender: one way into the log for the writer's lanes and the spool's replay. A row the
server refuses is set aside in rejected_events and the rest of its batch commits, whichever
side sent it; what a later attempt may get past is retried, nothing else is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import attrs
import pytest

import crashlog
from crashlog import store
from crashlog.appender import Appender, is_transient, refuses_a_row
from crashlog.events import BotErrorRaised
from crashlog.events.uuid7 import uuid7
from crashlog.spool import Spool
from crashlog.store import Row


def rows(count: int, *, poison_at: tuple[int, ...] = (), start: int = 0) -> list[Row]:
    """Valid rows; those at ``poison_at`` belong to the bot the test's CHECK refuses."""
    return [
        Row(uuid7(), "BotErrorRaised", 1, "poison" if i in poison_at else "b1", None,
            datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=start + i),
            b'{"error_type":"E","message":"m%d","severity":"error"}' % (start + i))
        for i in range(count)
    ]


@pytest.fixture
async def refusing(dsn: str, conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a database whose log refuses the bot "poison" (a constraint: SQLSTATE 23514)."""
    await conn.execute("ALTER TABLE crashlog.events ADD CONSTRAINT no_poison CHECK (bot_id <> 'poison')")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=store.init_connection)
    yield pool
    await pool.close()


async def stored_ids(conn: asyncpg.Connection, table: str = "crashlog.events") -> list[object]:
    return [r["event_id"] for r in await conn.fetch(f"SELECT event_id FROM {table} ORDER BY event_id")]


@pytest.mark.parametrize("first_try", [True, False])
async def test_a_refused_row_is_set_aside_and_the_rest_of_its_batch_commits(
    refusing: asyncpg.Pool, conn: asyncpg.Connection, first_try: bool
) -> None:
    earlier, batch = rows(1), rows(40, poison_at=(3, 29), start=1)
    appender = Appender(refusing)
    await appender.append([store.encode_row(r) for r in earlier])
    again = earlier[0]  # already stored: a duplicate, not a refusal
    await appender.append([store.encode_row(r) for r in [*batch[:20], again, *batch[20:]]], first_try=first_try)
    poison = {batch[3].event_id, batch[29].event_id}
    assert sorted(await stored_ids(conn)) == sorted(
        r.event_id for r in earlier + batch if r.event_id not in poison)
    assert set(await stored_ids(conn, "crashlog.rejected_events")) == poison
    assert await conn.fetchval("SELECT count(DISTINCT sqlstate) FROM crashlog.rejected_events") == 1
    assert attrs.asdict(appender.counts) == {"committed": 39, "duplicates": 1, "retried": 0, "rejected": 2,
                                            "refused_batches": 0}


async def test_the_writer_and_the_spool_replay_set_refused_rows_aside_alike(
    dsn: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute("ALTER TABLE crashlog.events ADD CONSTRAINT no_poison CHECK (bot_id <> 'poison')")
    left = rows(30, poison_at=(11,))  # spooled by an earlier process, replayed at connect
    spool = Spool.open(tmp_path / "spool")
    spool.append(left[:15])
    spool.append(left[15:])
    spool.close()
    emitted = [BotErrorRaised(bot_id="poison" if i == 5 else "b2", error_type="E", message=f"n{i}")
               for i in range(20)]
    async with crashlog.connect(dsn, project=False, spool_dir=str(tmp_path / "spool"),
                                flush_interval=0.01) as log:
        for event in emitted:
            await log.emit(event)
        await log.flush()
        for _ in range(1_000):  # the replay runs beside the lanes
            if log.metrics().committed + log.metrics().rejected == 50:
                break
            await asyncio.sleep(0.01)
        metrics = log.metrics()
    refused = {left[11].event_id, emitted[5].event_id}
    assert set(await stored_ids(conn, "crashlog.rejected_events")) == refused
    assert sorted(await stored_ids(conn)) == sorted(
        e.event_id for e in [*left, *emitted] if e.event_id not in refused)
    assert (metrics.committed, metrics.rejected, metrics.duplicates) == (48, 2, 0)
    assert not list((tmp_path / "spool").rglob("*.spool"))  # the replayed segments are gone


def test_only_what_a_later_attempt_may_get_past_is_transient() -> None:
    transient = [
        ConnectionResetError("reset by peer"),
        TimeoutError(),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),  # 57P01
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),  # 40P01
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),  # 53300
    ]
    refused = [
        asyncpg.exceptions.CheckViolationError("no_poison"),  # 23514
        asyncpg.exceptions.UntranslatableCharacterError("\\u0000"),  # 22P05
        asyncpg.DataError("cannot encode"),  # 22000
    ]
    assert [is_transient(e) for e in transient] == [True] * len(transient)
    assert [is_transient(e) for e in refused] == [False] * len(refused)
    assert [refuses_a_row(e) for e in refused] == [True] * len(refused)
    assert [refuses_a_row(e) for e in transient] == [False] * len(transient)
