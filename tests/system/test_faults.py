"""Faults for real: a crashed server, connections cut around COMMIT, a killed bot, a long outage.

The promise under test: an acknowledged event (``flush``/``aclose`` returned, or
it was spooled) is never lost and never written twice. Each test prints its
figures (emitted, acknowledged, lost, duplicated); run with ``-s`` to see them:

    python -m pytest tests/system/test_faults.py -m slow -s

Every server stopped here is a ``ThrowawayServer`` of this module's own.
``CRASHLOG_SOAK_SECONDS`` lengthens the outage of test (d) (default 4 s; the
issue's figure is 60).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import asyncpg
import attrs
import pytest
from faults import CuttingProxy, ThrowawayServer

import crashlog
from crashlog import migrations
from crashlog.events import RoundObserved

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("CRASHLOG_SOAK_SECONDS", "4"))


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayServer]:
    throwaway = ThrowawayServer()
    throwaway.start()
    yield throwaway
    throwaway.cleanup()


@pytest.fixture
async def database(server: ThrowawayServer) -> AsyncIterator[str]:
    """A migrated database of this test's own on the throwaway server; yields its name."""
    if not server.is_running():  # an earlier test may have left it stopped
        server.start()
    name = f"faults_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(server.dsn_for(name))
    await migrations.migrate(conn)
    await conn.close()
    await admin.close()
    yield name
    if not server.is_running():
        server.start()
    admin = await asyncpg.connect(server.dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@attrs.define
class Tally:
    """What the bots did: every id emit returned, and those a flush (or aclose) acknowledged."""

    emitted: list[UUID] = attrs.Factory(list)
    acknowledged: set[UUID] = attrs.Factory(set)
    #: Only count (for long runs, whose ids would weigh on the memory being measured).
    count_only: bool = False
    emitted_count: int = 0


def round_for(bot: str, number: int) -> RoundObserved:
    return RoundObserved(bot_id=bot, game="aviator", platform="demo", round_number=number,
                         crash_multiplier=Decimal("1.00") + Decimal(number % 997) / 100)


async def bot(log: crashlog.Logger, name: str, stop: asyncio.Event, tally: Tally,
              *, flush_every: int = 25, pause: float = 0.002) -> None:
    pending: list[UUID] = []
    number = 0
    while not stop.is_set():
        number += 1
        event_id = await log.emit(round_for(name, number))
        tally.emitted_count += 1
        if not tally.count_only:
            tally.emitted.append(event_id)
            pending.append(event_id)
        if number % flush_every == 0:
            await log.flush()
            tally.acknowledged.update(pending)
            pending.clear()
        await asyncio.sleep(pause)
    await log.flush()
    tally.acknowledged.update(pending)


@attrs.frozen
class Census:
    emitted: int
    acknowledged: int
    lost: int
    duplicated: int
    stored: int

    def show(self, label: str) -> None:
        print(f"\nFAULT {label}: emitted={self.emitted} acknowledged={self.acknowledged} "
              f"lost={self.lost} duplicated={self.duplicated} stored={self.stored}")


async def census(dsn: str, emitted: list[UUID], acknowledged: set[UUID]) -> Census:
    conn = await asyncpg.connect(dsn)
    try:
        counts = {r["event_id"]: r["n"] for r in await conn.fetch(
            "SELECT event_id, count(*) AS n FROM crashlog.events GROUP BY event_id")}
    finally:
        await conn.close()
    return Census(
        emitted=len(emitted),
        acknowledged=len(acknowledged),
        lost=sum(1 for e in acknowledged if e not in counts),
        duplicated=sum(n - 1 for n in counts.values()),
        stored=len(counts),
    )


async def test_a_server_crash_and_restart_while_ten_bots_emit(server, database):
    dsn = server.dsn_for(database)
    tally, stop = Tally(), asyncio.Event()
    log = await crashlog.connect(dsn, project=False, flush_interval=0.01, retry_deadline=120,
                                 connect_timeout=2)
    bots = [asyncio.create_task(bot(log, f"bot{i}", stop, tally)) for i in range(10)]
    await asyncio.sleep(1.0)
    server.stop("immediate")  # a crash: no checkpoint, every connection cut
    await asyncio.sleep(3.0)
    server.start()
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*bots), 120)
    retried = log.metrics().retried
    await log.aclose(timeout=120)
    result = await census(dsn, tally.emitted, tally.acknowledged)
    result.show("(a) pg_ctl stop -m immediate, restart after 3 s, 10 bots")
    print(f"retried batches: {retried}")
    assert tally.acknowledged == set(tally.emitted)  # every bot's last flush returned
    assert (result.lost, result.duplicated) == (0, 0)
    assert result.stored == result.emitted
    assert retried > 0  # the crash really hit the writer


@pytest.fixture
async def proxy(server) -> AsyncIterator[CuttingProxy]:
    cutting = await CuttingProxy("127.0.0.1", server.port).start()
    yield cutting
    await cutting.close()


@pytest.mark.parametrize("cuts", [("copy_done",), ("copy_done", "commit", "commit")])
async def test_b_a_connection_cut_before_the_commit_reply_adds_no_duplicate(
    server, database, proxy, cuts
):
    tally = Tally()
    log = await crashlog.connect(proxy.dsn_for(database), project=False, flush_interval=0.01,
                                 retry_deadline=60, writer_lanes=1)
    proxy.arm(*cuts)
    for number in range(200):
        tally.emitted.append(await log.emit(round_for("bot-b", number)))
    await log.flush(timeout=60)
    tally.acknowledged.update(tally.emitted)
    metrics = log.metrics()
    await log.aclose()
    result = await census(server.dsn_for(database), tally.emitted, tally.acknowledged)
    result.show(f"(b) proxy cuts after {' then '.join(cuts)} is sent, before the reply")
    print(f"cuts={proxy.cuts} retried={metrics.retried} committed={metrics.committed} "
          f"duplicates_skipped={metrics.duplicates}")
    assert proxy.cuts == len(cuts) and not proxy.armed
    assert (result.lost, result.duplicated, result.stored) == (0, 0, 200)
    # The first COPY committed though its reply never came: the retry found every row stored.
    assert metrics.duplicates == 200 and metrics.committed == 0
    assert metrics.retried >= len(cuts)


BOT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from decimal import Decimal
    import crashlog
    from crashlog.events import RoundObserved

    async def main(dsn, spool, name):
        log = await crashlog.connect(dsn, project=False, spool_dir=spool, flush_interval=0.01,
                                     retry_deadline=0.5, connect_timeout=1, batch_size=50)
        print("ready", flush=True)
        pending, number = [], 0
        while True:
            number += 1
            event = RoundObserved(bot_id=name, game="aviator", platform="demo",
                                  round_number=number, crash_multiplier=Decimal("2.00"))
            pending.append(str(await log.emit(event)))
            if number % 20 == 0:
                await log.flush()   # returns once committed or spooled: acknowledged
                print(f"ack {number} " + " ".join(pending), flush=True)
                pending.clear()
            await asyncio.sleep(0.001)

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def _read_acks(process: asyncio.subprocess.Process, acked: set[UUID]) -> int:
    """Collect the acknowledged ids the bot reports; returns how many it said it had emitted."""
    assert process.stdout is not None
    emitted = 0
    async for line in process.stdout:
        words = line.decode().split()
        if words and words[0] == "ack":
            emitted = int(words[1])
            acked.update(UUID(w) for w in words[2:])
    return emitted


async def _start_bot(dsn: str, spool: Path, name: str) -> asyncio.subprocess.Process:
    root = Path(__file__).resolve().parents[2]
    with (spool.parent / f"{name}.stderr").open("wb") as stderr:  # the pool's reconnect noise
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BOT_SCRIPT, dsn, str(spool), name, cwd=root,
            stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )
    assert process.stdout is not None
    assert (await asyncio.wait_for(process.stdout.readline(), 60)).strip() == b"ready"
    return process


async def test_c_a_bot_killed_mid_stream_is_replayed_by_the_next_process(
    server, database, tmp_path
):
    dsn, spool, acked = server.dsn_for(database), tmp_path / "spool", set()
    process = await _start_bot(dsn, spool, "bot-c")
    reader = asyncio.create_task(_read_acks(process, acked))
    await asyncio.sleep(1.0)  # some events committed straight away
    server.stop("immediate")
    await asyncio.sleep(2.5)  # these go to the spool
    process.send_signal(signal.SIGKILL)  # mid-stream, possibly mid-write
    await process.wait()
    emitted = await reader
    spooled_segments = len(list(spool.rglob("*.spool")))
    server.start()
    # A new process on the same spool replays it at start.
    log = await crashlog.connect(dsn, project=False, spool_dir=str(spool), flush_interval=0.01)
    for _ in range(300):
        if not list(spool.rglob("*.spool")):
            break
        await asyncio.sleep(0.1)
    await log.aclose()
    conn = await asyncpg.connect(dsn)
    committed_before = await conn.fetchval("SELECT count(*) FROM crashlog.events")
    await conn.close()
    result = attrs.evolve(await census(dsn, [], acked), emitted=emitted)
    result.show("(c) SIGKILL of a spooling bot, replay by the next process")
    print(f"(emitted: as last reported by the bot before the kill) spool segments left by the "
          f"killed bot: {spooled_segments}; rows now: {committed_before}")
    assert spooled_segments > 0  # the outage really sent events to the spool
    assert len(acked) > 0
    assert (result.lost, result.duplicated) == (0, 0)
    assert not list(spool.rglob("*.spool"))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


async def test_d_a_long_outage_stays_within_the_buffer_bound_and_spools_the_rest(
    server, database, tmp_path
):
    dsn, buffer_size, spool = server.dsn_for(database), 20_000, tmp_path / "spool"
    tally, stop = Tally(count_only=True), asyncio.Event()
    log = await crashlog.connect(dsn, project=False, spool_dir=str(spool),
                                 buffer_size=buffer_size, batch_size=1_000, flush_interval=0.01,
                                 retry_deadline=1.0, connect_timeout=1)
    rss_before = _rss_bytes()
    held_max = rss_max = 0
    bots = [asyncio.create_task(bot(log, f"bot{i}", stop, tally, flush_every=200, pause=0))
            for i in range(10)]
    server.stop("immediate")
    deadline = asyncio.get_running_loop().time() + SOAK_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        metrics = log.metrics()
        held_max = max(held_max, metrics.buffered + metrics.in_flight)
        rss_max = max(rss_max, _rss_bytes())
        await asyncio.sleep(0.05)
    spooled_during_outage = log.metrics().spooled
    server.start()
    stop.set()
    await asyncio.wait_for(asyncio.gather(*bots), 120)  # each bot's last flush: all acknowledged
    # The writer replays the spool now that the server is back.
    for _ in range(6000):
        if not list(spool.rglob("*.spool")):
            break
        await asyncio.sleep(0.1)
    left_in_spool = len(list(spool.rglob("*.spool")))
    await log.aclose(timeout=120)
    conn = await asyncpg.connect(dsn)
    stored, distinct = await conn.fetchrow(
        "SELECT count(*), count(DISTINCT event_id) FROM crashlog.events")
    await conn.close()
    emitted = tally.emitted_count
    result = Census(emitted=emitted, acknowledged=emitted, lost=emitted - distinct,
                    duplicated=stored - distinct, stored=stored)
    result.show(f"(d) server down {SOAK_SECONDS:g} s while 10 bots emit, spool on")
    growth = max(0, rss_max - rss_before)
    print(f"spooled during the outage={spooled_during_outage} most held in memory={held_max} "
          f"(bound {buffer_size}) RSS growth during the outage={growth / 2**20:.1f} MiB")
    assert left_in_spool == 0
    assert held_max <= buffer_size
    assert spooled_during_outage > 0
    assert (result.lost, result.duplicated) == (0, 0)
    # ~1 KiB per held event is generous; 64 MiB covers the interpreter's own noise.
    assert growth <= buffer_size * 1024 + 64 * 2**20


async def test_on_full_spool_spills_without_waiting_out_the_retry_deadline(
    server, database, tmp_path
):
    dsn, spool = server.dsn_for(database), tmp_path / "spool"
    log = await crashlog.connect(dsn, project=False, spool_dir=str(spool), on_full="spool",
                                 buffer_size=500, batch_size=100, flush_interval=0.01,
                                 retry_deadline=3600, connect_timeout=1)
    server.stop("immediate")
    ids = [await asyncio.wait_for(log.emit(round_for("bot-e", n)), 60) for n in range(3_000)]
    await log.flush(timeout=60)  # acknowledged: spooled, though the server is still down
    spooled = log.metrics().spooled
    server.start()
    for _ in range(600):
        if not list(spool.rglob("*.spool")):
            break
        await asyncio.sleep(0.1)
    await log.aclose(timeout=60)
    result = await census(dsn, ids, set(ids))
    result.show("(e) buffer full with on_full='spool', server down, retry deadline 1 h")
    assert spooled >= 3_000 - 500
    assert (result.lost, result.duplicated, result.stored) == (0, 0, 3_000)
