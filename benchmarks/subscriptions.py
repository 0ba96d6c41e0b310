"""Subscriptions: catch-up delivery rate over N events beside a raw asyncpg cursor reading and
decoding the same rows in the same run, then the delivery latency from emit to the consumer
at a steady rate once caught up.

    python benchmarks/subscriptions.py [--events 1000000] [--rate 1000] [--live-seconds 10]
                                       [--dsn DSN]

Targets: catch-up >= 0.8x the raw cursor; latency p99 <= 100 ms at 1,000 events/s.
Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from _common import base_arguments, environment_note, percentile, sample_rounds, scratch_database, write_events

import crashlog
from crashlog.events import RoundObserved, decode_event
from crashlog.subscriptions import Subscription

# What the raw reader reads: every row in the log's reading order, as the follower reads it.
_ALL = """
SELECT event_type, schema_version, bot_id, event_id, occurred_at, session_id, payload::text AS payload
FROM crashlog.events ORDER BY tx_id, position
"""


async def raw_cursor(dsn: str, count: int) -> float:
    """Read and decode the whole log through one server-side cursor: events/s."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        seen = 0
        async with conn.transaction():
            async for r in conn.cursor(_ALL, prefetch=1000):
                decode_event(r["event_type"], r["schema_version"], bot_id=r["bot_id"],
                             event_id=r["event_id"], occurred_at=r["occurred_at"],
                             session_id=r["session_id"], payload=r["payload"])
                seen += 1
        assert seen == count, (seen, count)
        return count / (time.perf_counter() - started)
    finally:
        await conn.close()


async def catch_up(dsn: str, count: int) -> float:
    """A new named subscription from the beginning, every batch decoded and acknowledged: events/s."""
    started = time.perf_counter()
    seen = 0
    async with Subscription(dsn, "bench-catch-up", start="beginning") as sub:
        async for batch in sub:
            seen += len(batch.events)
            await batch.ack()
            if seen >= count:
                break
    return count / (time.perf_counter() - started)


async def latency(dsn: str, rate: int, seconds: float) -> list[float]:
    """Emit ``rate`` events/s for ``seconds`` while a caught-up subscription consumes them:
    each event's seconds from its creation (just before ``emit``) to its delivery."""
    samples: list[float] = []
    total = int(rate * seconds)
    async with crashlog.connect(dsn, project=False) as log, \
            log.subscribe("bench-live", start="end") as sub:

        async def consume() -> None:
            async for batch in sub:
                now = datetime.now(UTC)
                samples.extend((now - e.occurred_at).total_seconds() for e in batch.events)
                await batch.ack()
                if len(samples) >= total:
                    return

        consumer = asyncio.create_task(consume())
        tick, per_tick = 0.01, max(1, rate // 100)
        started = time.perf_counter()
        for i in range(0, total, per_tick):
            for j in range(i, min(total, i + per_tick)):
                await log.emit(RoundObserved(bot_id=f"live-{j % 10}", game="aviator", platform="demo",
                                             crash_multiplier=Decimal("2.00"), round_number=j))
            delay = started + (i // per_tick + 1) * tick - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))
        await log.flush()
        await asyncio.wait_for(consumer, 120)
    return sorted(samples)


async def main() -> None:
    parser = base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to catch up on")
    parser.add_argument("--rate", type=int, default=1_000, help="events/s while latency is measured")
    parser.add_argument("--live-seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"building {args.events:,} RoundSettled events (not timed) ...", file=sys.stderr)
    events = sample_rounds(args.events)
    async with scratch_database(args.dsn) as dsn:
        await write_events(dsn, events)
        del events
        raw = await raw_cursor(dsn, args.events)
        delivered = await catch_up(dsn, args.events)
        samples = await latency(dsn, args.rate, args.live_seconds)
    print()
    print(f"{args.events:,} events, {environment_note()}")
    print(f"{'measure':<58}{'value':>16}")
    print(f"{'raw asyncpg cursor, read + decode (events/s)':<58}{raw:>16,.0f}")
    print(f"{'subscription catch-up, delivered + acked (events/s)':<58}{delivered:>16,.0f}")
    print(f"{'catch-up / raw cursor (target >= 0.8)':<58}{delivered / raw:>15.2f}x")
    p50, p99 = percentile(samples, 0.5) * 1e3, percentile(samples, 0.99) * 1e3
    label = f"emit -> consumer at {args.rate:,}/s, p50 / p99 (ms; p99 target <= 100)"
    print(f"{label:<58}{f'{p50:,.0f} / {p99:,.0f}':>16}")


if __name__ == "__main__":
    asyncio.run(main())
