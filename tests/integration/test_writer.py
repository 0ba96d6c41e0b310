"""The buffered writer, against a real server: every acknowledged event is stored exactly once,
the log refuses changes, a refused row does not sink its batch, a full buffer makes emit wait."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import pytest
from helpers.log import row_of

import crashlog
from crashlog import rows as row_codec
from crashlog import store
from crashlog.events import BotErrorRaised, Outcome, RoundSettled
from crashlog.store import Row


def a_round(bot_id: str = "b1", number: int = 1, **changes: Any) -> RoundSettled:
    values: dict[str, Any] = dict(
        bot_id=bot_id, session_id="s1", game="aviator", platform="demo", round_number=number,
        stake=Decimal("10.00"), crash_multiplier=Decimal("2.45"),
        cashout_multiplier=Decimal("1.33"), outcome=Outcome.WIN, profit_loss=Decimal("3.30"),
    )
    return RoundSettled(**{**values, **changes})


async def count(conn: asyncpg.Connection, table: str = "crashlog.events") -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 (our own names)


@contextlib.asynccontextmanager
async def stalled_server(dsn: str) -> AsyncIterator[None]:
    """Another session holds the log locked, so every append waits until the block ends."""
    locker = await asyncpg.connect(dsn)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE crashlog.events IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await transaction.rollback()
    finally:
        await locker.close()


async def wait_until(condition: Any, what: str) -> None:
    """Give the event loop turns until ``condition()`` holds (a hang fails via the timeout)."""
    async with asyncio.timeout(30):
        while not condition():
            await asyncio.sleep(0.005)
    assert condition(), what


# -- every acknowledged event, exactly once ----------------------------------------------------


async def test_20_tasks_emitting_2500_events_each_store_50000_rows_exactly_once(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    async def bot(number: int) -> list[UUID]:
        return [await log.emit(a_round(f"bot-{number}", i)) for i in range(2_500)]

    returned = [i for ids in await asyncio.gather(*(bot(n) for n in range(20))) for i in ids]
    await log.flush()
    assert len(returned) == 50_000 and len(set(returned)) == 50_000
    stored = await conn.fetch("SELECT event_id, count(*) AS n FROM crashlog.events GROUP BY 1")
    assert len(stored) == 50_000
    assert {r["event_id"] for r in stored} == set(returned)
    assert all(r["n"] == 1 for r in stored)
    metrics = log.metrics()
    assert (metrics.emitted, metrics.committed, metrics.buffered, metrics.in_flight) == (
        50_000, 50_000, 0, 0)


async def test_each_bots_events_land_in_the_log_in_emit_order(
    dsn: str, conn: asyncpg.Connection
) -> None:
    async with crashlog.connect(dsn, batch_size=50, flush_interval=0.005) as log:
        async def bot(name: str) -> None:
            for number in range(600):
                await log.emit(a_round(name, number))
                if number % 97 == 0:
                    await asyncio.sleep(0)  # interleave the bots in the buffer

        await asyncio.gather(*(bot(f"bot-{n}") for n in range(6)))
        await log.flush()
    rows = await conn.fetch(
        "SELECT bot_id, (payload->>'round_number')::int AS n FROM crashlog.events ORDER BY position"
    )
    by_bot: dict[str, list[int]] = {}
    for row in rows:
        by_bot.setdefault(row["bot_id"], []).append(row["n"])
    assert by_bot == {f"bot-{n}": list(range(600)) for n in range(6)}


# -- the log is append-only --------------------------------------------------------------------


async def test_the_log_refuses_update_delete_and_truncate(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    event_id = await log.emit(a_round())
    await log.flush()
    for statement in [
        "UPDATE crashlog.events SET bot_id = 'someone else'",
        "DELETE FROM crashlog.events",
        "TRUNCATE crashlog.events",
        "TRUNCATE crashlog.events CASCADE",
    ]:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute(statement)
    assert await conn.fetchval("SELECT bot_id FROM crashlog.events WHERE event_id = $1",
                               event_id) == "b1"
    assert await count(conn) == 1


# -- idempotency -------------------------------------------------------------------------------


async def test_a_batch_resent_after_it_committed_adds_nothing(conn: asyncpg.Connection) -> None:
    rows = [row_of(a_round("b1", i)) for i in range(500)]
    assert await store.copy_rows(conn, rows) == 500
    # The reply to the COPY was "lost": the writer retries the same batch.
    assert await store.insert_rows_idempotent(conn, rows) == 0
    assert await count(conn) == 500
    # A retry that overlaps partly: only the new rows are added, in order after the old ones.
    more = [row_of(a_round("b1", i)) for i in range(500, 600)]
    assert await store.insert_rows_idempotent(conn, rows[250:] + more) == 100
    numbers = await conn.fetch(
        "SELECT (payload->>'round_number')::int AS n FROM crashlog.events ORDER BY position")
    assert [r["n"] for r in numbers] == list(range(600))


async def test_an_event_emitted_again_is_stored_once_and_counted_as_duplicate(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    event = a_round()
    await log.emit(event)
    await log.flush()
    again = [a_round("b1", 2), event, a_round("b1", 3)]  # the stored id arrives inside a batch
    for e in again:
        await log.emit(e)
    await log.flush()
    assert await count(conn) == 3
    assert log.metrics().duplicates == 1 and log.metrics().committed == 3


async def test_the_same_event_twice_in_one_batch_is_stored_once(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    event = a_round()
    await log.emit(event)
    await log.emit(event)
    await log.flush()
    assert await count(conn) == 1
    assert (log.metrics().committed, log.metrics().duplicates) == (1, 1)


# -- the COPY tuples the writer sends -----------------------------------------------------------

EDGE_ROWS = [
    Row(UUID(int=1), "RoundSettled", 1, "bot \\ tab\t nl\n é 🚀", None,
        datetime(1, 1, 1, tzinfo=UTC), b'{"text":"back\\\\slash \\" quote \\n"}'),
    Row(UUID(int=2**128 - 1), "OcrRead", 32767, "b", "s" * 128,
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), b"{}"),
    Row(UUID(int=3), "SessionStarted", 2, "b", "",
        datetime(2026, 5, 1, 14, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))), b'{"x":[1,2.5,null]}'),
]


def test_a_row_encoded_as_a_copy_tuple_decodes_to_the_same_row() -> None:
    for row in EDGE_ROWS:
        assert store.decode_row(store.encode_row(row)) == row


async def test_copy_tuples_store_exactly_the_rows_they_encode(conn: asyncpg.Connection) -> None:
    assert await store.copy_tuples(conn, [store.encode_row(r) for r in EDGE_ROWS[:2]]) == 2
    assert await store.insert_tuples_idempotent(conn, [store.encode_row(r) for r in EDGE_ROWS]) == 1
    stored = await conn.fetch(
        "SELECT event_id, event_type, schema_version, bot_id, session_id, occurred_at, payload"
        " FROM crashlog.events ORDER BY position")
    def parsed(row: Row) -> tuple[Any, ...]:
        return (*row[:-1], orjson.loads(row.payload))

    assert [parsed(Row(*r)) for r in stored] == [parsed(r) for r in EDGE_ROWS]


async def test_more_bots_than_the_encoders_cache_keep_their_own_ids_and_sessions(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    bots = [f"bot-é-{i}" for i in range(row_codec._TEXT_FIELDS_MAX + 500)]
    for i, bot in enumerate(bots):
        await log.emit(a_round(bot, i, session_id=None if i % 3 == 0 else f"s\\{i}"))
    await log.flush()
    stored = await conn.fetch("SELECT bot_id, session_id, payload FROM crashlog.events")
    assert sorted((r["bot_id"], r["session_id"]) for r in stored) == sorted(
        (bot, None if i % 3 == 0 else f"s\\{i}") for i, bot in enumerate(bots))
    assert all(orjson.loads(r["payload"])["game"] == "aviator" for r in stored)


def test_a_row_that_cannot_be_encoded_is_refused_naming_its_event_field_and_value() -> None:
    naive = EDGE_ROWS[2]._replace(occurred_at=datetime(2026, 1, 1))
    with pytest.raises(asyncpg.DataError, match=str(naive.event_id)) as refused:
        store.encode_row(naive)
    assert "invalid occurred_at=datetime.datetime(2026, 1, 1, 0, 0)" in str(refused.value)
    with pytest.raises(asyncpg.DataError, match=str(naive.event_id)) as refused:
        store.encode_row(EDGE_ROWS[2]._replace(schema_version=2**15))
    assert "invalid schema_version=32768: must be a smallint" in str(refused.value)


# -- a refused row does not sink its batch -----------------------------------------------------


async def test_one_poison_row_among_1000_leaves_999_committed_and_1_rejected(
    dsn: str, conn: asyncpg.Connection
) -> None:
    # A constraint only this database has: the server itself refuses the row.
    await conn.execute(
        "ALTER TABLE crashlog.events ADD CONSTRAINT no_poison CHECK (bot_id <> 'poison')")
    events = [a_round("b1", i) for i in range(1_000)]
    events[637] = a_round("poison", 637)
    async with crashlog.connect(dsn, batch_size=1_000, flush_interval=0.01) as log:
        for event in events:
            await log.emit(event)
        await log.flush()
        metrics = log.metrics()
    assert await count(conn) == 999
    assert await conn.fetchval(
        "SELECT count(*) FROM crashlog.events WHERE event_id = $1", events[637].event_id) == 0
    rejected = await conn.fetch(
        "SELECT event_id, event_type, bot_id, payload, sqlstate, error FROM crashlog.rejected_events")
    assert len(rejected) == 1
    row = rejected[0]
    assert (row["event_id"], row["event_type"], row["bot_id"]) == (
        events[637].event_id, "RoundSettled", "poison")
    assert orjson.loads(row["payload"])["round_number"] == 637
    assert row["sqlstate"] == "23514" and "no_poison" in row["error"]
    assert (metrics.committed, metrics.rejected) == (999, 1)


async def test_metrics_add_up(dsn: str, conn: asyncpg.Connection) -> None:
    await conn.execute(
        "ALTER TABLE crashlog.events ADD CONSTRAINT no_poison CHECK (bot_id <> 'poison')")
    async with crashlog.connect(dsn, batch_size=100, flush_interval=0.01) as log:
        first = a_round("b1", 0)
        await log.emit(first)
        await log.flush()
        for i in range(1, 450):
            await log.emit(a_round("poison" if i in (10, 300) else "b1", i))
        await log.emit(first)  # a duplicate
        await log.flush()
        m = log.metrics()
    assert m.emitted == 451
    assert (m.committed, m.duplicates, m.rejected) == (448, 1, 2)
    assert m.emitted == m.committed + m.duplicates + m.rejected + m.buffered + m.in_flight
    assert (m.buffered, m.in_flight, m.spooled) == (0, 0, 0)
    assert m.batches >= 6  # 1 + ceil(450 / 100), at least
    assert m.last_flush_latency is not None and m.last_flush_latency >= 0
    assert await count(conn) == 448 and await count(conn, "crashlog.rejected_events") == 2


# -- backpressure ------------------------------------------------------------------------------


async def test_a_full_buffer_makes_emit_wait_and_memory_stays_bounded(
    dsn: str, conn: asyncpg.Connection
) -> None:
    bound, total = 100, 400
    async with crashlog.connect(dsn, buffer_size=bound, batch_size=10, flush_interval=0.005) as log:
        held: list[int] = []
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                m = log.metrics()
                held.append(m.buffered + m.in_flight)
                await asyncio.sleep(0.001)

        async def emit_all() -> list[UUID]:
            return [await log.emit(a_round("b1", i)) for i in range(total)]

        watcher = asyncio.create_task(watch())
        async with stalled_server(dsn):
            emitter = asyncio.create_task(emit_all())
            await wait_until(lambda: log.metrics().emitted == bound, "the buffer fills")
            # The server cannot store anything, so the emitter must stay blocked: give it time.
            done, _ = await asyncio.wait({emitter}, timeout=0.3)
            assert not done, "emit returned although the buffer was full"
            assert log.metrics().emitted == bound
            assert log.metrics().buffered + log.metrics().in_flight == bound
        ids = await asyncio.wait_for(emitter, 30)  # the block is over: the emitter finishes
        await log.flush()
        stop.set()
        await watcher
    assert max(held) <= bound
    assert await count(conn) == total
    assert set(await conn.fetchval("SELECT array_agg(event_id) FROM crashlog.events")) == set(ids)


async def test_flush_timeout_raises_not_flushed_saying_how_many_and_where(
    dsn: str, conn: asyncpg.Connection
) -> None:
    async with crashlog.connect(dsn, batch_size=10, flush_interval=0.005) as log:
        async with stalled_server(dsn):
            ids = [await log.emit(a_round("b1", i)) for i in range(25)]
            await wait_until(lambda: log.metrics().in_flight > 0, "a batch is on its way")
            with pytest.raises(crashlog.NotFlushed) as info:
                await log.flush(timeout=0.2)
            error = info.value
            assert error.pending == 25
            assert sum(error.where.values()) == 25
            assert error.where["in_flight"] > 0
            message = str(error)
            assert "25 events" in message
            for place, n in error.where.items():
                if n:
                    assert f"{n} in {place}" in message
            assert isinstance(error, TimeoutError)
        await log.flush(timeout=30)  # nothing was lost while it waited
    assert set(await conn.fetchval("SELECT array_agg(event_id) FROM crashlog.events")) == set(ids)


async def test_aclose_timeout_raises_not_flushed_and_returns(dsn: str) -> None:
    log = await crashlog.connect(dsn, batch_size=10, flush_interval=0.005)
    async with stalled_server(dsn):
        for i in range(15):
            await log.emit(a_round("b1", i))
        with pytest.raises(crashlog.NotFlushed) as info:
            # aclose promises to give up after its timeout; a hang here is the bug, not slowness.
            async with asyncio.timeout(5):
                await log.aclose(timeout=0.2)
        assert info.value.pending == 15 and "15 events" in str(info.value)


async def test_on_full_raise_raises_buffer_full(dsn: str, conn: asyncpg.Connection) -> None:
    async with crashlog.connect(dsn, buffer_size=5, batch_size=2, on_full="raise") as log:
        async with stalled_server(dsn):
            kept = [await log.emit(a_round("b1", i)) for i in range(5)]
            with pytest.raises(crashlog.BufferFull, match="5"):
                await log.emit(a_round("b1", 5))
            assert log.metrics().emitted == 5
        await log.flush(timeout=30)
    assert set(await conn.fetchval("SELECT array_agg(event_id) FROM crashlog.events")) == set(kept)


# -- bad calls ---------------------------------------------------------------------------------


async def test_emit_of_a_non_event_raises_invalid_event(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    for thing in [None, "RoundSettled", {"bot_id": "b1"}, 42]:
        with pytest.raises(crashlog.InvalidEvent) as info:
            await log.emit(thing)  # type: ignore[arg-type]
        assert info.value.field == "event" and repr(thing) in str(info.value)
    await log.emit(BotErrorRaised(bot_id="b1", error_type="E", message="still working"))
    await log.flush()
    assert await count(conn) == 1 and log.metrics().emitted == 1


async def test_emit_after_close_raises_logger_closed(dsn: str) -> None:
    log = await crashlog.connect(dsn)
    await log.aclose()
    with pytest.raises(crashlog.LoggerClosed):
        await log.emit(a_round())


# -- a writer stays light -------------------------------------------------------------------


def test_importing_crashlog_loads_neither_analytics_nor_exports() -> None:
    """A bot that only writes must not pay for the reading side (thousands of lines, pyarrow)."""
    source_root = Path(crashlog.__file__).resolve().parent.parent

    def loaded_by(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(source_root)}, cwd=source_root.parent,
        )
        return done.stdout.strip()

    imported = Path(loaded_by("import crashlog; print(crashlog.__file__)")).resolve()
    assert imported == source_root / "crashlog" / "__init__.py"  # this tree's crashlog
    assert loaded_by("import crashlog, sys; print([m for m in sys.modules if 'analytics' in m])") == "[]"
    heavy = ("analytics", "exports", "features", "pyarrow", "simulator")
    assert loaded_by(
        "import crashlog, crashlog.sync, sys;"
        f" print(sorted(m for m in sys.modules if any(k in m for k in {heavy!r})))") == "[]"
