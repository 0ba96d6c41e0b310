"""Projection throughput: the rebuild of every read table against its floor, on a fleet-like
log, in the same run on the same server; the live lag while a rebuild runs beside a writer;
then the projection lag while events are written at a steady rate.

    python benchmarks/projection_throughput.py [--events 220000] [--mix fleet|rounds]
        [--writer-rate 1000] [--rate 10000] [--lag-seconds 10] [--no-each]
        [--connections 1,2,4] [--pairs 3] [--dsn DSN]

The floor (``_floor.py``): read every payload once, load the rebuilt tables' rows into empty
tables by binary COPY on two connections, build their indexes after. No rebuild that
materialises those tables can beat it; floor / rebuild says how close the rebuild is. The
rebuild and the floor are measured in turns, ``--pairs`` times: the ratio shown is the median
pair's, beside every pair's (a shared machine's noise moves one pair's ratio by a tenth).
Also: how evenly the progress bar moves, the rebuild on 1, 2 and 4 connections, and the live
lag while a rebuild runs with plain and with concurrent index builds. Figures only: nothing
here asserts a time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal

import _floor
import asyncpg
from _common import (
    base_arguments,
    checkpoint,
    environment_note,
    fleet_events,
    fleet_stream,
    percentile,
    sample_rounds,
    scratch_database,
    write_events,
)
from rebuild_each import rebuild_each

import crashlog
from crashlog.events import Outcome, RoundSettled
from crashlog.projections import NAMES, PROJECTIONS
from crashlog.projections.checkpoints import COMMIT_SAFE
from crashlog.projections.runner import REBUILD_CONNECTIONS, rebuild

# Age of the oldest event that some projection has not applied yet (0 when none): the first
# event after the earliest checkpoint, found through the log's reading-order index (a join
# with the checkpoints instead scans the whole log: 3 s at 10 million events, which then
# counted as lag and took a core from the runner).
_LAG = """
SELECT coalesce(extract(epoch FROM clock_timestamp() - (
    SELECT e.recorded_at FROM crashlog.events e
    WHERE (e.tx_id, e.position) > (SELECT tx_id, position FROM crashlog.projection_checkpoints
                                   ORDER BY 1, 2 LIMIT 1)
    ORDER BY e.tx_id, e.position LIMIT 1)), 0)::float8
"""

# Whether some backend of this database is building an index (or the key it backs) now.
_INDEX_BUILD = r"""
SELECT EXISTS (SELECT 1 FROM pg_stat_activity
               WHERE datname = current_database() AND state = 'active'
                 AND query ~* '^\s*(CREATE (UNIQUE )?INDEX|ALTER TABLE \S+ ADD (PRIMARY KEY|UNIQUE|CONSTRAINT))')
"""


async def rebuild_all(dsn: str, count: int, connections: int = REBUILD_CONNECTIONS,
                      shown: list[tuple[float, float]] | None = None) -> float:
    """Rebuild every read table from the whole log on ``connections`` connections: events/s.
    ``shown`` gets (seconds since the start, share the progress bar showed) at each report."""
    last = [0.0]
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if shown is not None and total:
            shown.append((now - started, done / total))
        if now - last[0] > 1.0 or done == total:
            last[0] = now
            print(f"\r  rebuild: {done:,}/{total:,} events", end="", file=sys.stderr, flush=True)

    await rebuild(dsn, ["all"], progress=progress, connections=connections)
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    return count / elapsed


def evenness(shown: list[tuple[float, float]]) -> str:
    """The share the progress bar showed at a quarter, half and three quarters of the time
    (an even bar: 25% / 50% / 75%)."""
    if not shown:
        return "-"
    end = shown[-1][0]
    marks = []
    for quarter in (0.25, 0.5, 0.75):
        before = [share for at, share in shown if at <= quarter * end]
        marks.append(f"{(before[-1] if before else 0.0):.0%}")
    return " / ".join(marks)


async def settle(dsn: str) -> None:
    """Let the server finish what a rebuild leaves behind before a timed phase: vacuum the
    new tables (autovacuum would, during the measurement) and write the rebuild's pages out."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, relname) AS name FROM pg_stat_user_tables"
            " WHERE schemaname = 'crashlog'")
        for table in tables:
            await conn.execute(f"VACUUM (ANALYZE) {table['name']}")
    finally:
        await conn.close()
    await checkpoint(dsn)


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


async def vacuum_log(dsn: str) -> None:
    """Vacuum and analyse the log, and read it once: the rebuild and the floor then start
    from the same warm, visible-all log."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE crashlog.events")
        # Every event below the reading horizon first (an open transaction elsewhere on the
        # server holds it back), so that the rebuild reads the whole log, as the floor does.
        while await conn.fetchval(f"SELECT EXISTS (SELECT FROM crashlog.events WHERE NOT ({COMMIT_SAFE}))"):
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    await _floor.read_payloads(dsn)


class Horizon:
    """Samples, every 20 ms, the projection lag and whether an index build runs, and how long
    the index builds ran (stretches of consecutive samples that saw one)."""

    def __init__(self) -> None:
        self.outside: list[float] = []
        self.during: list[float] = []
        self.stretches: list[float] = []
        self._since: float | None = None

    async def sample(self, dsn: str, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            while not stop.is_set():
                building = await conn.fetchval(_INDEX_BUILD)
                lag = await conn.fetchval(_LAG)
                now = time.perf_counter()
                (self.during if building else self.outside).append(lag)
                if building and self._since is None:
                    self._since = now
                elif not building and self._since is not None:
                    self.stretches.append(now - self._since)
                    self._since = None
                await asyncio.sleep(0.02)
        finally:
            await conn.close()


async def rebuild_beside_writer(dsn: str, rate: int, concurrent_indexes: bool = False) -> tuple[float, Horizon, int]:
    """A full rebuild while a logger writes ``rate`` fleet events/s and projects them live:
    the rebuild's seconds, the horizon samples, events written."""
    horizon, stop = Horizon(), asyncio.Event()
    stream = fleet_stream(prefix="live")
    written = 0
    async with crashlog.connect(dsn) as log:
        await log.sync(timeout=600)

        async def write() -> None:
            nonlocal written
            started, per_tick = time.perf_counter(), max(1, rate // 100)
            while not stop.is_set():
                for _ in range(per_tick):
                    await log.emit(next(stream))
                written += per_tick
                await asyncio.sleep(max(0.0, started + written / rate - time.perf_counter()))

        tasks = [asyncio.create_task(write()), asyncio.create_task(horizon.sample(dsn, stop))]
        await asyncio.sleep(1.0)  # the live runner in its steady state first
        started = time.perf_counter()
        await rebuild(dsn, ["all"], concurrent_indexes=concurrent_indexes)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)
        await log.sync(timeout=600)
    return elapsed, horizon, written


def _ms(samples: list[float]) -> str:
    if not samples:
        return "-"
    ordered = sorted(samples)
    p50, p99 = percentile(ordered, 0.5) * 1e3, percentile(ordered, 0.99) * 1e3
    return f"{p50:,.0f} / {p99:,.0f}"


def median_pair(pairs: list[tuple[float, _floor.Floor]]) -> tuple[float, _floor.Floor]:
    """Of (rebuild seconds, floor) pairs measured in turn, the one with the median ratio (the
    lower middle one for an even number)."""
    ordered = sorted(pairs, key=lambda pair: pair[1].total / pair[0])
    return ordered[(len(ordered) - 1) // 2]


def report_floor(count: int, rebuilt: float, floor: _floor.Floor) -> None:
    """``rebuilt``: seconds of the rebuild paired with ``floor``."""
    print(f"{'rebuild of all read tables (s, events/s)':<58}{rebuilt:>8.2f}{count / rebuilt:>10,.0f}")
    print(f"{'floor (s)':<58}{floor.total:>8.2f}")
    print(f"{'  (a) read every payload once':<58}{floor.read:>8.2f}")
    print(f"{'  (b) + (c) on two connections, wall':<58}{floor.lanes:>8.2f}")
    print(f"{'      (b) binary COPY load, summed over lanes':<58}{floor.load:>8.2f}")
    print(f"{'      (c) index builds, summed over lanes':<58}{floor.index:>8.2f}")
    print(f"{'floor / rebuild (the median pair)':<58}{floor.total / rebuilt:>8.2f}")
    rows = sum(t.rows for t in floor.tables)
    print(f"{'rows the rebuild produces, per event':<58}{rows / count:>8.2f}")


def report_each(count: int, each: dict[str, float], floor: _floor.Floor) -> None:
    """µs/event of each projection rebuilt alone, beside its tables' share of the floor."""
    by_table = {t.table: t for t in floor.tables}
    print(f"\n{'projection (alone, one connection)':<36}{'µs/event':>10}{'floor µs/event':>16}"
          f"{'load':>8}{'index':>8}")
    for p in PROJECTIONS:
        mine = [by_table[t] for t in p.tables if t in by_table]
        load, index = sum(t.load for t in mine), sum(t.index for t in mine)
        print(f"{p.name:<36}{each[p.name] / count * 1e6:>10.1f}{(load + index) / count * 1e6:>16.1f}"
              f"{load / count * 1e6:>8.1f}{index / count * 1e6:>8.1f}")
    total = sum(each.values())
    print(f"{'sum':<36}{total / count * 1e6:>10.1f}"
          f"{(floor.load + floor.index) / count * 1e6:>16.1f}"
          f"{floor.load / count * 1e6:>8.1f}{floor.index / count * 1e6:>8.1f}")
    print(f"{'(a) payload read, once for all':<36}{'':>10}{floor.read / count * 1e6:>16.1f}")


def report_beside(rate: int, how: str, seconds: float, horizon: Horizon, written: int) -> None:
    print(f"\nfull rebuild beside a {rate:,} events/s writer (projecting live), {how}:")
    print(f"{'  rebuild (s)':<58}{seconds:>8.2f}")
    print(f"{'  live lag outside index builds p50 / p99 (ms)':<58}{_ms(horizon.outside):>16}")
    print(f"{'  live lag during index builds p50 / p99 (ms)':<58}{_ms(horizon.during):>16}")
    held = sum(horizon.stretches)
    longest = max(horizon.stretches, default=0.0)
    print(f"{'  index builds run: total / longest stretch (s)':<58}{f'{held:.2f} / {longest:.2f}':>16}")
    print(f"{'  events written meanwhile':<58}{written:>16,}")


async def main() -> None:
    parser = base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=220_000, help="events to rebuild from")
    parser.add_argument("--mix", choices=["fleet", "rounds"], default="fleet",
                        help="fleet: settled, observed, signals, OCR; rounds: RoundSettled only")
    parser.add_argument("--writer-rate", type=int, default=1_000,
                        help="events/s written while a full rebuild runs (0: skip)")
    parser.add_argument("--rate", type=int, default=10_000, help="events/s written while lag is measured")
    parser.add_argument("--lag-seconds", type=float, default=10.0, help="(0: skip)")
    parser.add_argument("--no-each", action="store_true", help="skip each projection alone")
    parser.add_argument("--connections", default="1,2,4",
                        help="the rebuild again on each of these numbers of connections ('': skip)")
    parser.add_argument("--pairs", type=int, default=3,
                        help="rebuild, then floor, this many times in turn (the median pair is shown)")
    args = parser.parse_args()
    print(f"building {args.events:,} {args.mix} events (not timed) ...", file=sys.stderr)
    events = fleet_events(args.events) if args.mix == "fleet" else sample_rounds(args.events)
    async with scratch_database(args.dsn) as dsn:
        written = await write_events(dsn, events)
        del events
        await vacuum_log(dsn)
        shown: list[tuple[float, float]] = []
        tables = [t for p in PROJECTIONS for t in p.tables]
        pairs = []
        for turn in range(max(1, args.pairs)):
            # Each timed phase starts from a settled server: the last one's writes on disk
            # (the floor drops its tables, so its dirty pages are never written; the rebuild's
            # stay) and the rebuilt tables vacuumed (else autovacuum does it in the next one).
            await settle(dsn)
            seconds = args.events / await rebuild_all(dsn, args.events, shown=None if turn else shown)
            pairs.append((seconds, await _floor.measure(dsn, tables, settle=settle)))
        rebuilt, floor = median_pair(pairs)
        curve = {}
        for n in (int(n) for n in args.connections.split(",") if n):
            await settle(dsn)  # as before each rebuild of the pairs
            curve[n] = await rebuild_all(dsn, args.events, n)
        each = {} if args.no_each else await rebuild_each(dsn)
        await settle(dsn)
        # Plain index builds hold the live runners' horizon back while they run; concurrent
        # ones do not.
        beside = {how: await rebuild_beside_writer(dsn, args.writer_rate, how == "indexes built concurrently")
                  for how in ("plain index builds", "indexes built concurrently")} if args.writer_rate else {}
        if args.lag_seconds:
            await settle(dsn)
            lags, visible, live = await lag_under_load(dsn, args.rate, args.lag_seconds)
    print()
    print(f"{len(NAMES)} projections, {args.events:,} {args.mix} events, {environment_note()}")
    print(f"{'measure':<58}{'value':>16}")
    print(f"{'crashlog write, emit -> flush (events/s)':<58}{written:>16,.0f}")
    report_floor(args.events, rebuilt, floor)
    ratios = " ".join(f"{f.total / r:.2f}" for r, f in pairs)
    print(f"{f'  each pair, in turn ({len(pairs)})':<58}{ratios:>16}")
    print(f"{'progress shown at 1/4, 1/2, 3/4 of the rebuild':<58}{evenness(shown):>16}")
    if curve:
        print(f"\n{'rebuild on n connections (n: s, floor / rebuild)':<58}")
        for n, rate in curve.items():
            seconds = args.events / rate
            print(f"{f'  {n}':<58}{f'{seconds:.2f} s, {floor.total / seconds:.2f}':>16}")
    if each:
        report_each(args.events, each, floor)
    for how, figures in beside.items():
        report_beside(args.writer_rate, how, *figures)
    if args.lag_seconds:
        achieved = live / args.lag_seconds
        print(f"\n{f'lag while writing {achieved:,.0f} events/s for {args.lag_seconds:g} s:':<58}")
        for label, samples in [("  oldest unapplied event's age", lags),
                               ("  emit -> visible in crashlog.rounds", visible)]:
            if samples:
                print(f"{label + ' p50 / p99 (ms)':<58}{_ms(samples):>16}")


if __name__ == "__main__":
    asyncio.run(main())
