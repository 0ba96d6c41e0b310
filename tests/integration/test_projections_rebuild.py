"""Rebuilding read tables while bots keep writing: readers never see a partial table."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest
from test_projections_property import snapshot

import crashlog
from crashlog.errors import CrashlogError
from crashlog.events import Outcome, RoundObserved, RoundSettled
from crashlog.projections import PROJECTIONS, leases
from crashlog.projections.runner import rebuild


def settled(bot: int, n: int) -> RoundSettled:
    return RoundSettled(
        bot_id=f"bot{bot}", session_id="s1", game="aviator", platform="demo", round_number=n,
        game_round_id=f"g{n}", strategy_name=f"s{bot % 2}", stake=Decimal("10.00"),
        crash_multiplier=Decimal("2.00"), cashout_multiplier=Decimal("1.50"), outcome=Outcome.WIN,
        profit_loss=Decimal("5.00"), balance_before=Decimal("1000.00"),
        balance_after=Decimal("1005.00"),
    )


async def test_rebuild_while_five_bots_write_never_shows_a_partial_table(dsn, conn):
    history = 2_000
    async with crashlog.connect(dsn, flush_interval=0.01) as log:
        for n in range(history):
            await log.emit(settled(n % 5, n // 5))
        await log.sync(timeout=60)
        stop = asyncio.Event()

        async def bot(i: int) -> None:
            n = history
            while not stop.is_set():
                await log.emit(settled(i, n))
                await log.emit(RoundObserved(bot_id=f"bot{i}", game="aviator", platform="demo",
                                             game_round_id=f"g{n}", crash_multiplier=Decimal("2.00")))
                n += 1
                await asyncio.sleep(0.005)

        seen: list[tuple[int, int, int]] = []

        async def reader() -> None:
            reading = await asyncpg.connect(dsn)
            try:
                while not stop.is_set():
                    seen.append((
                        await reading.fetchval("SELECT count(*) FROM crashlog.rounds"),
                        await reading.fetchval(
                            "SELECT coalesce(sum(rounds), 0) FROM crashlog.bot_stats WHERE strategy_name = ''"),
                        await reading.fetchval("SELECT count(*) FROM crashlog.round_multipliers"),
                    ))
                    await asyncio.sleep(0.005)
            finally:
                await reading.close()

        tasks = [asyncio.create_task(bot(i)) for i in range(5)] + [asyncio.create_task(reader())]
        progress: list[tuple[int, int]] = []
        await rebuild(dsn, ["all"], progress=lambda done, total: progress.append((done, total)))
        await rebuild(dsn, ["rounds", "bot_stats", "round_multipliers"])
        stop.set()
        await asyncio.gather(*tasks)
        await log.sync(timeout=60)

    assert len(seen) > 10
    for column in range(3):
        counts = [s[column] for s in seen]
        assert counts[0] >= history // 5 if column == 2 else counts[0] >= history
        assert counts == sorted(counts), "a reader saw a table shrink: it was partial"
    assert progress[0][0] == 0 and progress[-1][0] == progress[-1][1] >= history
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    live = await snapshot(conn)
    await rebuild(dsn, ["all"])
    assert await snapshot(conn) == live
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == \
        await conn.fetchval("SELECT count(*) FROM crashlog.events WHERE event_type = 'RoundSettled'")


_SHAPE = """
SELECT c.relname, pg_get_indexdef(i.indexrelid), con.conname, pg_get_constraintdef(con.oid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
WHERE i.indrelid = $1::regclass ORDER BY 1
"""


@pytest.mark.parametrize("concurrent_indexes", [False, True])
async def test_rebuild_keeps_every_index_and_key_constraint_as_it_was(dsn, conn, concurrent_indexes):
    """A rebuild builds some keys only after the load (side by side, or concurrently); the
    swapped-in tables still have every index, primary key and unique constraint, under the
    same names, every one valid, and the same rows."""
    async with crashlog.connect(dsn) as log:
        for n in range(60):
            await log.emit(settled(n % 3, n // 3))
        await log.sync(timeout=30)
    tables = [t for p in PROJECTIONS for t in p.tables]
    before = {t: await conn.fetch(_SHAPE, f"crashlog.{t}") for t in tables}
    rows = await snapshot(conn)
    await rebuild(dsn, ["all"], concurrent_indexes=concurrent_indexes)
    after = {t: await conn.fetch(_SHAPE, f"crashlog.{t}") for t in tables}
    assert after == before
    assert await snapshot(conn) == rows
    assert await conn.fetchval(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
        " WHERE c.relnamespace = 'crashlog'::regnamespace AND NOT i.indisvalid") == 0
    assert any(r["conname"] == "rounds_pkey" for r in after["rounds"])
    assert await conn.fetchval("SELECT to_regclass('crashlog.rounds__rebuild')") is None
    # Shadows fill out of autovacuum's way; the swapped-in tables have it back.
    assert await conn.fetch(
        "SELECT relname, reloptions FROM pg_class WHERE relnamespace = 'crashlog'::regnamespace"
        " AND relkind = 'r' AND reloptions IS NOT NULL") == []


async def test_a_rebuilt_table_keeps_its_storage_parameters(dsn, conn):
    """An operator's fillfactor or autovacuum settings on a read table survive its rebuild."""
    async with crashlog.connect(dsn) as log:
        for n in range(20):
            await log.emit(settled(n % 2, n))
        await log.sync(timeout=30)
    await conn.execute("ALTER TABLE crashlog.rounds SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.05)")
    await conn.execute("ALTER TABLE crashlog.bot_stats SET (autovacuum_enabled = false)")
    options = "SELECT relname, reloptions FROM pg_class WHERE relnamespace = 'crashlog'::regnamespace" \
              " AND relkind = 'r' AND reloptions IS NOT NULL ORDER BY relname"
    before = [tuple(r) for r in await conn.fetch(options)]
    rows = await snapshot(conn)
    await rebuild(dsn, ["all"])
    assert [tuple(r) for r in await conn.fetch(options)] == before == [
        ("bot_stats", ["autovacuum_enabled=false"]),
        ("rounds", ["fillfactor=90", "autovacuum_vacuum_scale_factor=0.05"])]
    assert await snapshot(conn) == rows


async def test_rebuilt_tables_come_with_planner_statistics(dsn, conn):
    """Readers' plans after a swap rest on statistics of the rebuilt tables, not on none."""
    async with crashlog.connect(dsn) as log:
        for n in range(40):
            await log.emit(settled(n % 3, n))
        await log.sync(timeout=30)
    await rebuild(dsn, ["all"])
    for table in ("rounds", "round_multipliers", "round_multiplier_readings", "bot_stats"):
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_stats WHERE schemaname = 'crashlog' AND tablename = $1",
            table), table
    # round_outcomes is a view over rounds (migration 016): its readers plan with the
    # statistics of rounds, which must cover every one of its columns.
    columns = await conn.fetch(
        "SELECT column_name, exists (SELECT FROM pg_stats s WHERE s.schemaname = 'crashlog'"
        " AND s.tablename = 'rounds' AND s.attname = c.column_name) AS has_stats"
        " FROM information_schema.columns c"
        " WHERE table_schema = 'crashlog' AND table_name = 'round_outcomes'")
    assert len(columns) == 15 and all(r["has_stats"] for r in columns), columns


async def test_one_row_per_event_tables_have_only_their_event_key_as_unique_index(conn):
    """Their handlers skip known events with an ON CONFLICT naming no key: that must mean the
    event_id key, so no other unique index may exist to swallow a row."""
    for p in PROJECTIONS:
        for table in p.one_row_per_event:
            unique = await conn.fetch(
                "SELECT pg_get_indexdef(indexrelid) AS definition FROM pg_index"
                " WHERE indrelid = $1::regclass AND indisunique", f"crashlog.{table}")
            assert [r["definition"].split(" USING ")[1] for r in unique] == ["btree (event_id)"], table


async def test_rebuild_refuses_an_unknown_name_and_a_concurrent_rebuild(dsn):
    with pytest.raises(CrashlogError, match="unknown projection 'nope'"):
        await rebuild(dsn, ["nope"])
    holder = await asyncpg.connect(dsn)
    try:
        from crashlog.projections import checkpoints, leases, select

        await checkpoints.ensure(holder, select(["rounds"])[0])  # a lease lives on this row
        assert await leases.take(holder, ["rounds"], leases.Lease.REBUILD) == {"rounds"}
        with pytest.raises(CrashlogError, match="already being rebuilt"):
            await rebuild(dsn, ["rounds"])
    finally:
        await holder.close()
    await rebuild(dsn, ["rounds"])  # the lease went with the connection


async def test_a_migration_during_a_rebuild_is_not_undone_by_its_swap(dsn, conn, monkeypatch):
    """The shadows copy the live tables' shape when the rebuild starts; a migration that
    changes a table meanwhile must not be swapped away: that rebuild is refused, the live
    table keeps its new column, and the next rebuild succeeds."""
    from crashlog.projections import filling

    fill = filling._fill

    async def migrate_meanwhile(*args, **kwargs):
        await conn.execute("ALTER TABLE crashlog.bots ADD COLUMN team text")
        return await fill(*args, **kwargs)

    monkeypatch.setattr(filling, "_fill", migrate_meanwhile)
    with pytest.raises(CrashlogError, match="crashlog.bots changed while it was being rebuilt"):
        await rebuild(dsn, ["bots"])
    monkeypatch.undo()
    assert await conn.fetchval("SELECT to_regclass('crashlog.bots__rebuild')") is None
    await rebuild(dsn, ["bots"])
    assert "team" in {r["attname"] for r in await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'crashlog.bots'::regclass AND attnum > 0")}


async def test_a_rebuild_lane_that_fails_stops_the_other_and_leaves_nothing_behind(
        dsn, conn, monkeypatch):
    """Rebuilds fill on two connections; when one lane fails, the other is cancelled, every
    shadow is dropped, the rebuild locks are released and the live tables are untouched."""
    from crashlog.projections import filling

    log = await crashlog.connect(dsn)
    async with log:
        for n in range(50):
            await log.emit(RoundObserved(bot_id="b1", game="aviator", platform="demo",
                                         game_round_id=f"g{n}", crash_multiplier=Decimal("2.00")))
        await log.sync(timeout=30)
    before = await conn.fetchval("SELECT count(*) FROM crashlog.round_multipliers")
    fill = filling._fill
    cancelled, started = [], []

    async def fill_or_fail(lane_conn, projection, *rest):
        started.append(projection.name)
        if len(started) == 1:  # the first fill to start fails; the other lane's is under way
            await asyncio.sleep(0.1)
            raise RuntimeError("lane lost")
        try:
            await asyncio.sleep(5)  # the other lane is still filling when this one fails
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return await fill(lane_conn, projection, *rest)

    monkeypatch.setattr(filling, "_fill", fill_or_fail)
    with pytest.raises(RuntimeError, match="lane lost"):
        await rebuild(dsn, ["all"], connections=2)
    monkeypatch.undo()
    assert cancelled == [True]
    shadows = await conn.fetchval(
        "SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_\\_rebuild' AND relkind = 'r'")
    assert shadows == 0
    assert await conn.fetchval("SELECT count(*) FROM crashlog.round_multipliers") == before == 50
    await rebuild(dsn, ["all"], connections=2)  # nothing held: the next rebuild runs
    assert await conn.fetchval("SELECT count(*) FROM crashlog.round_multipliers") == 50


async def test_a_rebuild_that_lost_its_lease_swaps_nothing_and_leaves_the_new_holders_shadows(
        dsn, conn, monkeypatch):
    """A rebuild's keeper connection dies after the fill (a network blip, a terminated
    backend): the lease is free, and a second rebuild takes it and makes its own shadows.
    The first must not swap (it would swap the second's half-filled shadow and move the
    checkpoint to its own end: an empty table for good), nor drop the second's shadows."""
    from crashlog.projections import rebuild as rebuilding

    async with crashlog.connect(dsn) as log:
        for n in range(40):
            await log.emit(settled(n % 4, n))
        await log.sync(timeout=30)
    before = await conn.fetch("SELECT * FROM crashlog.bot_stats ORDER BY bot_id, strategy_name")
    swap = rebuilding._swap
    filled, second_has_shadows = asyncio.Event(), asyncio.Event()

    async def swap_after_the_takeover(*args, **kwargs):
        filled.set()
        await second_has_shadows.wait()
        return await swap(*args, **kwargs)

    monkeypatch.setattr(rebuilding, "_swap", swap_after_the_takeover)
    first = asyncio.create_task(rebuild(dsn, ["bot_stats"]))
    await asyncio.wait_for(filled.wait(), 30)
    keeper = await conn.fetchval(
        "SELECT rebuild_pid FROM crashlog.projection_checkpoints WHERE name = 'bot_stats'")
    assert await conn.fetchval("SELECT pg_terminate_backend($1)", keeper)
    # The second rebuild: its lease and its shadow, as _create_shadows makes them.
    second = await asyncpg.connect(dsn)
    try:
        for _ in range(100):  # until the server has seen the keeper go
            taken = await leases.take(second, ["bot_stats"], leases.Lease.REBUILD)
            if taken:
                break
            await asyncio.sleep(0.05)
        assert taken == {"bot_stats"}
        await second.execute("DROP TABLE crashlog.bot_stats__rebuild")
        await second.execute(
            "CREATE TABLE crashlog.bot_stats__rebuild (LIKE crashlog.bot_stats INCLUDING ALL)")
        second_has_shadows.set()
        with pytest.raises(CrashlogError, match="lost its rebuild lease"):
            await first
        assert await conn.fetchval("SELECT to_regclass('crashlog.bot_stats__rebuild')") is not None
    finally:
        await second.close()
    after = await conn.fetch("SELECT * FROM crashlog.bot_stats ORDER BY bot_id, strategy_name")
    assert after == before and len(after) > 0
