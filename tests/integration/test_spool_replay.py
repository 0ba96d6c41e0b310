"""The spool's replay into PostgreSQL: every batch stored once, in order; a crash between commit
and segment removal, a failed replay or a row the server refuses loses and doubles nothing.
(The disk format itself, without a database: tests/unit/test_spool.py.)"""

from __future__ import annotations

import shutil

import asyncpg
import pytest
from helpers.spool import make_rows

from crashlog import store
from crashlog.appender import append_idempotent
from crashlog.spool import Spool
from crashlog.store import Row


async def stored(conn: asyncpg.Connection) -> list[Row]:
    records = await conn.fetch(
        "SELECT event_id, event_type, schema_version, bot_id, session_id, occurred_at, payload"
        " FROM crashlog.events ORDER BY position"
    )
    return [Row(*r) for r in records]


async def test_replay_stores_every_batch_once_in_order_and_deletes_segments(folder, dsn, conn):
    spool = Spool.open(folder, segment_bytes=3_000)
    rows = make_rows(40)
    for i in range(0, 40, 4):
        spool.append(rows[i : i + 4])
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=store.init_connection)
    try:
        assert await spool.replay(lambda batch: append_idempotent(pool, batch)) == 40
    finally:
        await pool.close()
    assert spool.segments() == []
    got = await stored(conn)
    assert [r.event_id for r in got] == [r.event_id for r in rows]
    assert [r.occurred_at for r in got] == [r.occurred_at for r in rows]
    assert [r.bot_id for r in got] == [r.bot_id for r in rows]
    spool.close()


async def test_a_crash_between_commit_and_segment_removal_adds_nothing_twice(
    folder, tmp_path, dsn, conn
):
    spool = Spool.open(folder)
    rows = make_rows(10)
    spool.append(rows)
    spool.seal()
    copy = tmp_path / "saved.spool"
    shutil.copy(spool.segments()[0], copy)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=store.init_connection)
    try:
        await spool.replay(lambda batch: append_idempotent(pool, batch))
        shutil.copy(copy, folder / "000000000001.spool")  # as if the unlink never happened
        spool.close()
        spool = Spool.open(folder)
        assert await spool.replay(lambda batch: append_idempotent(pool, batch)) == 10
    finally:
        await pool.close()
        spool.close()
    assert await conn.fetchval("SELECT count(*) FROM crashlog.events") == 10


async def test_a_failed_replay_keeps_the_segment_for_the_next_attempt(folder, dsn, conn):
    spool = Spool.open(folder)
    spool.append(make_rows(3))
    spool.append(make_rows(3, start=3))
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=store.init_connection)
    calls = 0

    async def flaky(batch):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionResetError("the server went away")
        await append_idempotent(pool, batch)

    try:
        with pytest.raises(ConnectionResetError):
            await spool.replay(flaky)
        assert len(spool.segments()) == 1
        assert spool.pending_events == 3
        assert await spool.replay(flaky) == 3  # the first batch is not sent again
        assert spool.pending_events == 0
    finally:
        await pool.close()
        spool.close()
    assert await conn.fetchval("SELECT count(DISTINCT event_id) FROM crashlog.events") == 6
    assert await conn.fetchval("SELECT count(*) FROM crashlog.events") == 6


async def test_a_row_the_server_refuses_is_set_aside_and_the_rest_replayed(folder, dsn, conn):
    spool = Spool.open(folder)
    rows = make_rows(5)
    bad = rows[2]._replace(payload=b'{"text":"nul \\u0000 inside"}')  # jsonb refuses \u0000
    rows[2] = bad
    spool.append(rows)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=store.init_connection)
    try:
        await spool.replay(lambda batch: append_idempotent(pool, batch))
    finally:
        await pool.close()
        spool.close()
    assert {r.event_id for r in await stored(conn)} == {r.event_id for r in rows} - {bad.event_id}
    rejected = await conn.fetchval("SELECT event_id FROM crashlog.rejected_events")
    assert rejected == bad.event_id

