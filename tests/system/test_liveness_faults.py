"""Liveness under real faults: the spool's disk fills while the server is down, and a bot
starts while the server is down. Every event whose ``emit`` returned is stored once.

The spool sits on a 256 KiB tmpfs of the test's own (needs root to mount); the server is a
``ThrowawayServer`` of this module's own, stopped and started at will.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from faults import ThrowawayServer

import crashlog
from crashlog import migrations
from crashlog.events import RoundObserved

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayServer]:
    throwaway = ThrowawayServer()
    throwaway.start()
    yield throwaway
    throwaway.cleanup()


async def new_database(server: ThrowawayServer, *, migrated: bool) -> str:
    if not server.is_running():
        server.start()
    name = f"live_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    if migrated:
        conn = await asyncpg.connect(server.dsn_for(name))
        await migrations.migrate(conn)
        await conn.close()
    return name


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs for the spool, unmounted after the test."""
    folder = tmp_path / "spool"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def observed(bot: str, number: int) -> RoundObserved:
    return RoundObserved(bot_id=bot, game="aviator", platform="demo", round_number=number,
                         crash_multiplier=Decimal("1.00") + Decimal(number % 997) / 100)


async def stored(dsn: str) -> dict[uuid.UUID, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["event_id"]: r["n"] for r in await conn.fetch(
            "SELECT event_id, count(*) AS n FROM crashlog.events GROUP BY event_id")}
    finally:
        await conn.close()


async def spool_empties(folder: Path) -> None:
    for _ in range(1200):
        if not list(folder.rglob("*.spool")):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the spool at {folder} was never replayed")


@pytest.mark.parametrize("comes_back_first", ["room", "server"])
async def test_a_full_spool_disk_during_an_outage_loses_nothing_and_the_lane_lives(
    server: ThrowawayServer, small_disk: Path, comes_back_first: str
) -> None:
    dsn = server.dsn_for(await new_database(server, migrated=True))
    log = await crashlog.connect(dsn, project=False, spool_dir=str(small_disk), buffer_size=10_000,
                                 batch_size=100, flush_interval=0.01, retry_deadline=0.5,
                                 connect_timeout=1)
    server.stop("immediate")
    ids = [await log.emit(observed(f"bot{n % 4}", n)) for n in range(2_000)]
    for _ in range(1200):  # the disk fills: batches wait in memory, counted and logged
        if log.metrics().spool_errors >= 2:
            break
        await asyncio.sleep(0.05)
    metrics = log.metrics()
    assert metrics.spool_errors >= 2
    assert metrics.buffered + metrics.in_flight > 0  # kept in memory, not dropped
    if comes_back_first == "room":
        subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
        await log.flush(timeout=120)  # now all spooled: acknowledged with the server still down
        server.start()
    else:  # the server drains the spool, then takes the rest directly
        server.start()
        await log.flush(timeout=120)
    await spool_empties(small_disk)
    restarts = log.metrics().writer_restarts
    await log.aclose(timeout=60)
    counts = await stored(dsn)
    assert sum(1 for i in ids if i not in counts) == 0  # nothing lost
    assert sum(n - 1 for n in counts.values()) == 0  # nothing twice
    assert len(counts) == len(ids)
    assert restarts == 0  # the lane never died


async def test_connect_while_the_server_is_down_spools_then_migrates_and_replays(
    server: ThrowawayServer, tmp_path: Path
) -> None:
    # An empty database: nothing may be sent to it before the migrations made the tables.
    dsn = server.dsn_for(await new_database(server, migrated=False))
    server.stop("fast")
    spool = tmp_path / "spool"
    log = await crashlog.connect(dsn, spool_dir=str(spool), flush_interval=0.01,
                                 connect_timeout=1, projection_connections=1)
    try:
        ids = [await log.emit(observed("early", n)) for n in range(300)]
        await log.flush(timeout=30)  # acknowledged: spooled while the server is away
        assert log.metrics().spooled == 300
        server.start()
        await log.flush(timeout=60)
        await spool_empties(spool)
        await log.sync(timeout=60)  # the projections started once the schema was in place
        async with log.pool.acquire() as conn:
            rounds = await conn.fetchval("SELECT count(*) FROM crashlog.round_multipliers")
    finally:
        await log.aclose(timeout=60)
    counts = await stored(dsn)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}
    assert rounds == 300
