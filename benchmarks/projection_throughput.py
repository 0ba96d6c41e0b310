"""Projection throughput: rebuild of every read table from N events, against crashlog's own
write throughput (emit -> flush of the same events) in the same run; then the projection
lag while events are written at a steady rate.

    python benchmarks/projection_throughput.py [--events 1000000] [--rate 10000]
                                               [--lag-seconds 10] [--dsn DSN]

Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal

import asyncpg
from _common import (
    base_arguments,
    environment_note,
    percentile,
    sample_rounds,
    scratch_database,
    write_events,
)

import crashlog
from crashlog.events import Outcome, RoundSettled
from crashlog.projections import NAMES
from crashlog.projections.runner import rebuild

# Age of the oldest event that some projection has not applied yet (0 when none).
_LAG = """
SELECT coalesce(extract(epoch FROM clock_timestamp() - min(e.recorded_at)), 0)::float8
FROM crashlog.events e,
     (SELECT tx_id, position FROM crashlog.projection_checkpoints ORDER BY 1, 2 LIMIT 1) cp
WHERE (e.tx_id, e.position) > (cp.tx_id, cp.position)
"""


async def rebuild_all(dsn: str, count: int) -> float:
    """Rebuild every read table from the whole log: events/s."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 1.0 or done == total:
            last[0] = now
            print(f"\r  rebuild: {done:,}/{total:,} events", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    await rebuild(dsn, ["all"], progress=progress)
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    return count / elapsed


async def settle(dsn: str) -> None:
    """Let the server finish what a rebuild leaves behind before the live phase: vacuum the
    new tables (autovacuum would, during the measurement) and write the rebuild's pages out."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, relname) AS name FROM pg_stat_user_tables"
            " WHERE schemaname = 'crashlog'")
        for table in tables:
            await conn.execute(f"VACUUM (ANALYZE) {table['name']}")
        try:
            await conn.execute("CHECKPOINT")
        except asyncpg.InsufficientPrivilegeError:
            print("  (no CHECKPOINT: needs superuser or pg_checkpoint)", file=sys.stderr)
    finally:
        await conn.close()


def live_round(i: int) -> RoundSettled:
    win = i % 3 != 0
    return RoundSettled(
        bot_id=f"live-bot-{i % 10}", session_id="live", game="aviator", platform="demo",
        round_number=i, game_round_id=f"live-{i // 10:09d}", strategy_name="fixed-1.5",
        stake=Decimal("10.00"), target_multiplier=Decimal("1.50"),
        crash_multiplier=Decimal("2.00") if win else Decimal("1.20"),
        cashout_multiplier=Decimal("1.50") if win else None,
        outcome=Outcome.WIN if win else Outcome.LOSS,
        profit_loss=Decimal("5.00") if win else Decimal("-10.00"),
    )


async def lag_under_load(dsn: str, rate: int, seconds: float) -> tuple[list[float], list[float], int]:
    """Write ``rate`` events/s for ``seconds`` with the projections running in-process.

    Returns samples of the projection lag (age of the oldest unapplied event, every 20 ms),
    samples of emit -> visible in crashlog.rounds (one event every 100 ms), and events written.
    """
    lags: list[float] = []
    visible: list[float] = []
    stop = asyncio.Event()
    async with crashlog.connect(dsn) as log:
        await log.sync(timeout=600)  # start with the projections caught up
        sampler = await asyncpg.connect(dsn)
        watcher = await asyncpg.connect(dsn)

        async def sample_lag() -> None:
            while not stop.is_set():
                lags.append(await sampler.fetchval(_LAG))
                await asyncio.sleep(0.02)

        probes: asyncio.Queue = asyncio.Queue()

        async def watch_visible() -> None:
            while True:
                item = await probes.get()
                if item is None:
                    return
                event_id, emitted = item
                while not await watcher.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM crashlog.rounds WHERE event_id = $1)", event_id):
                    await asyncio.sleep(0.002)
                visible.append(time.perf_counter() - emitted)

        tasks = [asyncio.create_task(sample_lag()), asyncio.create_task(watch_visible())]
        tick, per_tick = 0.01, max(1, rate // 100)
        started = time.perf_counter()
        written, next_probe = 0, started
        while time.perf_counter() - started < seconds:
            for _ in range(per_tick):
                event_id = await log.emit(live_round(written))
                written += 1
            now = time.perf_counter()
            if now >= next_probe:
                probes.put_nowait((event_id, now))
                next_probe = now + 0.1
            delay = started + (written / per_tick) * tick - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))
        await log.sync(timeout=600)
        stop.set()
        probes.put_nowait(None)
        await asyncio.gather(*tasks)
        await sampler.close()
        await watcher.close()
    return sorted(lags), sorted(visible), written


async def main() -> None:
    parser = base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to rebuild from")
    parser.add_argument("--rate", type=int, default=10_000, help="events/s written while lag is measured")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"building {args.events:,} RoundSettled events (not timed) ...", file=sys.stderr)
    events = sample_rounds(args.events)
    async with scratch_database(args.dsn) as dsn:
        written = await write_events(dsn, events)
        del events
        rebuilt = await rebuild_all(dsn, args.events)
        await settle(dsn)
        lags, visible, live = await lag_under_load(dsn, args.rate, args.lag_seconds)
    print()
    print(f"{len(NAMES)} projections, {args.events:,} events, {environment_note()}")
    print(f"{'measure':<58}{'value':>16}")
    print(f"{'crashlog write, emit -> flush (events/s)':<58}{written:>16,.0f}")
    print(f"{'rebuild of all read tables (events/s)':<58}{rebuilt:>16,.0f}")
    print(f"{'rebuild / write':<58}{rebuilt / written:>15.2f}x")
    achieved = live / args.lag_seconds
    print(f"{f'lag while writing {achieved:,.0f} events/s for {args.lag_seconds:g} s:':<58}")
    for label, samples in [("  oldest unapplied event's age", lags), ("  emit -> visible in crashlog.rounds", visible)]:
        if samples:
            p50, p99 = percentile(samples, 0.5) * 1e3, percentile(samples, 0.99) * 1e3
            print(f"{label + ' p50 / p99 (ms)':<58}{f'{p50:,.0f} / {p99:,.0f}':>16}")


if __name__ == "__main__":
    asyncio.run(main())
