"""The projections' leases, the migration lock's bounded wait, and doctor's naming of an open
transaction: against a real server, with the faults made by hand (a terminated backend, a
heartbeat made stale, a lock held by another session)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

import crashlog
from crashlog import health, migrations
from crashlog.events import Outcome, RoundSettled
from crashlog.projections import NAMES, PROJECTIONS, checkpoints, leases
from crashlog.projections.leases import Lease
from crashlog.projections.runner import Runner


def settled(bot: str, number: int) -> RoundSettled:
    return RoundSettled(
        bot_id=bot, session_id="s1", game="aviator", platform="demo", round_number=number,
        stake=Decimal("10.00"), crash_multiplier=Decimal("2.45"),
        cashout_multiplier=Decimal("1.50"), outcome=Outcome.WIN, profit_loss=Decimal("5.00"),
    )


async def until(condition, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


async def hold_every_lease(dsn: str) -> asyncpg.Connection:
    """A session (not a runner) holding every projection's apply lease."""
    holder = await asyncpg.connect(dsn)
    for p in PROJECTIONS:
        await checkpoints.ensure(holder, p)
    assert await leases.take(holder, NAMES, Lease.APPLY) == set(NAMES)
    return holder


async def rounds(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM crashlog.rounds"))


async def test_a_runner_stands_by_then_takes_over_when_the_holder_is_terminated(dsn, conn):
    holder = await hold_every_lease(dsn)
    runner = Runner(dsn, poll_interval=0.02, standby_interval=0.05)
    runner.start()
    try:
        async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
            for n in range(50):
                await log.emit(settled("b", n))
        await asyncio.sleep(0.5)
        assert runner.held == {} and await rounds(conn) == 0  # it stood by
        await conn.execute("SELECT pg_terminate_backend($1)", holder.get_server_pid())
        await until(lambda: _is(len(runner.held) == len(NAMES)))
        await until(lambda: _equals(rounds(conn), 50))
    finally:
        await runner.stop()
        holder.terminate()


async def test_a_stale_heartbeat_is_taken_over_and_its_holder_learns_so(dsn, conn):
    holder = await hold_every_lease(dsn)
    runner = Runner(dsn, poll_interval=0.02, standby_interval=0.05)
    runner.start()
    try:
        await asyncio.sleep(0.3)
        assert runner.held == {}
        # The holder's backend is alive, but silent for longer than the bound.
        await conn.execute(
            "UPDATE crashlog.projection_checkpoints SET lease_heartbeat = now() - $1::float8"
            " * interval '1 second'", leases.LEASE_TIMEOUT + 1)
        await until(lambda: _is(len(runner.held) == len(NAMES)))
        assert await leases.refresh(holder, NAMES, Lease.APPLY) == set()  # lost, and told so
    finally:
        await runner.stop()
        await holder.close()


async def test_a_runner_whose_lease_is_taken_stops_applying_it(dsn, conn, monkeypatch):
    monkeypatch.setattr(leases, "HEARTBEAT_INTERVAL", 0.05)
    runner = Runner(dsn, poll_interval=0.02, standby_interval=60)
    runner.start()
    try:
        await until(lambda: _is(len(runner.held) == len(NAMES)))
        await conn.execute(  # another live backend now holds rounds
            "UPDATE crashlog.projection_checkpoints SET lease_pid = pg_backend_pid(),"
            " lease_heartbeat = now() WHERE name = 'rounds'")
        await until(lambda: _is("rounds" not in runner.held))
        async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
            for n in range(20):
                await log.emit(settled("b", n))
        await until(lambda: _equals(
            conn.fetchval("SELECT events_applied FROM crashlog.projection_checkpoints"
                          " WHERE name = 'bot_stats'"), 20))
        assert await rounds(conn) == 0  # the runner no longer applies rounds
    finally:
        await runner.stop()


async def test_a_held_migration_lock_gives_a_clear_error_after_the_bound(empty_dsn, dsn):
    holder = await asyncpg.connect(empty_dsn)
    conn = await asyncpg.connect(empty_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrations.MIGRATION_LOCK_KEY)
        with pytest.raises(crashlog.MigrationError) as refused:
            await asyncio.wait_for(migrations.migrate(conn, lock_wait=0.3), 10)
        assert f"pid {holder.get_server_pid()}" in str(refused.value)
        assert "migration lock" in str(refused.value) and "0.3 s" in str(refused.value)
        assert await conn.fetchval("SELECT to_regclass('crashlog.events')") is None
        await holder.execute("SELECT pg_advisory_unlock($1)", migrations.MIGRATION_LOCK_KEY)
        assert len(await migrations.migrate(conn, lock_wait=0.3)) == len(migrations.load_migrations())
    finally:
        await holder.close()
        await conn.close()
    # With nothing pending no lock is needed: a session holding it holds up nobody.
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrations.MIGRATION_LOCK_KEY)
        async with crashlog.connect(dsn, project=False):
            pass
    finally:
        await holder.close()


async def test_doctor_names_an_open_transaction(dsn, conn):
    blocker = await asyncpg.connect(dsn, server_settings={"application_name": "blocker-app"})
    try:
        async with blocker.transaction():
            await blocker.fetchval("SELECT pg_current_xact_id()")
            await asyncio.sleep(0.4)
            check = await health.horizon_check(conn, max_age=0.2)
            assert not check.ok
            database = await conn.fetchval("SELECT current_database()")
            role = await blocker.fetchval("SELECT current_user")
            for part in (f"pid {blocker.get_server_pid()}", f"role {role}",
                         f"database {database}", "'blocker-app'", "pg_terminate_backend"):
                assert part in check.detail, (part, check.detail)
        # Ended: no longer named.
        assert f"pid {blocker.get_server_pid()}" not in (await health.horizon_check(conn, 0.2)).detail
    finally:
        await blocker.close()


async def _is(value: bool) -> bool:
    return value


async def _equals(awaitable, expected: int) -> bool:
    return await awaitable == expected


async def test_a_runner_of_older_code_stands_by_instead_of_rebuilding_a_newer_version(
        dsn, conn, caplog):
    """A rolling upgrade: newer runners rebuilt ``rounds`` at a higher version. A runner still
    on the old code must not rebuild it back (a tug of war over the whole log): it leaves
    ``rounds`` alone, says why, and applies the projections whose versions it shares."""
    for p in PROJECTIONS:
        await checkpoints.ensure(conn, p)
    newer = next(p for p in PROJECTIONS if p.name == "rounds").version + 1
    await conn.execute(
        "UPDATE crashlog.projection_checkpoints SET version = $1 WHERE name = 'rounds'", newer)
    runner = Runner(dsn, poll_interval=0.02, standby_interval=0.05)
    runner.start()
    try:
        async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
            for n in range(20):
                await log.emit(settled("b", n))
        await until(lambda: _equals(_count(conn, "bot_stats"), 1))
        await asyncio.sleep(0.3)
        assert "rounds" not in runner.held and await rounds(conn) == 0
        assert await conn.fetchval(
            "SELECT version FROM crashlog.projection_checkpoints WHERE name = 'rounds'") == newer
        assert any("standing by for newer runners" in r.getMessage() for r in caplog.records)
    finally:
        await runner.stop()


async def _count(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM crashlog.{table}"))
