"""Load: 200 concurrent bot tasks emitting through one logger, with the projections running.

No errors, every event committed once, memory within the buffer bound, and the
projections catch up once the bots stop. The figures are printed (run with ``-s``):

    CRASHLOG_SOAK_SECONDS=60 python -m pytest tests/system/test_load.py -s

``CRASHLOG_SOAK_SECONDS`` (default 3) is how long the bots emit.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import time
from decimal import Decimal

import pytest

import crashlog
from crashlog.events import Outcome, RoundSettled
from crashlog.projections import runner

SOAK_SECONDS = float(os.environ.get("CRASHLOG_SOAK_SECONDS", "3"))
BOTS = 200
BUFFER = 50_000


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


async def play(log: crashlog.Logger, name: str, stop: asyncio.Event, emitted: list[int]) -> None:
    """A bot: a round every few milliseconds, a flush every 100 rounds."""
    rng = random.Random(name)
    balance = Decimal("1000.00")
    number = 0
    while not stop.is_set():
        number += 1
        stake = Decimal(rng.randint(1, 20))
        crash = Decimal(rng.randint(100, 1000)) / 100
        target = Decimal("1.50")
        win = crash >= target
        profit = stake * (target - 1) if win else -stake
        await log.emit(RoundSettled(
            bot_id=name, session_id=f"{name}-s", game="aviator", platform="demo",
            round_number=number, game_round_id=f"r{number}", stake=stake,
            target_multiplier=target, crash_multiplier=crash,
            cashout_multiplier=target if win else None,
            outcome=Outcome.WIN if win else Outcome.LOSS, profit_loss=profit,
            balance_before=balance, balance_after=balance + profit,
        ))
        balance += profit
        if number % 100 == 0:
            await log.flush()
        await asyncio.sleep(rng.uniform(0, 0.004))
    emitted.append(number)


@pytest.mark.slow
async def test_two_hundred_bots_with_projections_running(dsn, conn):
    stop, emitted = asyncio.Event(), []
    log = await crashlog.connect(dsn, buffer_size=BUFFER, flush_interval=0.02)
    rss_before, rss_max, held_max, lag_max = _rss_bytes(), 0, 0, 0
    started = time.perf_counter()
    bots = [asyncio.create_task(play(log, f"bot{i:03d}", stop, emitted)) for i in range(BOTS)]
    while time.perf_counter() - started < SOAK_SECONDS:
        await asyncio.sleep(0.25)
        metrics = log.metrics()
        held_max = max(held_max, metrics.buffered + metrics.in_flight)
        rss_max = max(rss_max, _rss_bytes())
        lag_max = max(lag_max, max(n for n, _ in (await runner.lag(conn)).values()))
    stop.set()
    results = await asyncio.gather(*bots, return_exceptions=True)
    elapsed = time.perf_counter() - started
    await log.flush(timeout=120)
    caught_up = time.perf_counter()
    await log.sync(timeout=300)
    sync_seconds = time.perf_counter() - caught_up
    metrics = log.metrics()
    await log.aclose()

    errors = [r for r in results if isinstance(r, BaseException)]
    total = sum(emitted)
    stored = await conn.fetchval("SELECT count(*) FROM crashlog.events")
    rounds = await conn.fetchval("SELECT count(*) FROM crashlog.rounds")
    growth = max(0, rss_max - rss_before)
    print(f"\nLOAD: bots={BOTS} seconds={elapsed:.1f} emitted={total} committed={stored} "
          f"rate={total / elapsed:,.0f} events/s errors={len(errors)} rejected={metrics.rejected} "
          f"retried={metrics.retried} most_held={held_max} (bound {BUFFER}) "
          f"RSS_growth={growth / 2**20:.1f} MiB projection_lag_max={lag_max} events "
          f"sync_after_stop={sync_seconds:.1f}s rounds_projected={rounds}")
    assert errors == []
    assert stored == total == metrics.emitted
    assert metrics.rejected == 0
    assert held_max <= BUFFER
    assert rounds == total  # every round projected once the bots stopped
    assert growth <= BUFFER * 2048 + 128 * 2**20  # a generous bound: ~2 KiB per held event
