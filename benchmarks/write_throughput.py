"""Write throughput: crashlog emit -> flush against raw COPY on the same server, same events, same run.

    python benchmarks/write_throughput.py [--events 200000] [--dsn DSN]

Prints events/s for each way of appending and its ratio to raw COPY, the client
CPU time each spends per event, the latency of ``emit()`` while the buffer has room,
and the process's peak memory. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time

import asyncpg
import attrs

import crashlog
from crashlog.events import encode_payload, uuid7
from crashlog.store import COLUMNS, Row, init_connection

from _common import base_arguments, percentile, sample_rounds, scratch_database

BATCH = 5_000  # asyncpg copy_records_to_table batch used as the baseline ("the limit")
PER_EVENT_SAMPLE = 2_000  # one-transaction-per-event is slow: measure it on a sample


def cpu_seconds() -> float:
    """This process's CPU time so far, user and system (page faults and socket writes count)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def as_rows(events: list) -> list[Row]:
    return [
        Row(e.event_id, e.event_type, e.schema_version, e.bot_id, e.session_id, e.occurred_at,
            encode_payload(e))
        for e in events
    ]


async def raw_copy(dsn: str, rows: list[Row]) -> float:
    """The baseline: pre-encoded rows, binary COPY in batches of 5,000, one connection."""
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    await conn.execute("CREATE TABLE raw_events (LIKE crashlog.events INCLUDING ALL)")
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        await conn.copy_records_to_table("raw_events", columns=COLUMNS, records=rows[i : i + BATCH])
    elapsed = time.perf_counter() - started
    await conn.execute("DROP TABLE raw_events")
    await conn.close()
    return len(rows) / elapsed


async def crashlog_emit_flush(dsn: str, events: list) -> tuple[float, crashlog.Metrics]:
    async with crashlog.connect(dsn, project=False) as log:  # writing only: projections have their own benchmark
        started = time.perf_counter()
        for event in events:
            await log.emit(event)
        await log.flush()
        elapsed = time.perf_counter() - started
        return len(events) / elapsed, log.metrics()


async def one_transaction_per_event(dsn: str, rows: list[Row]) -> float:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    insert = (
        "INSERT INTO crashlog.events (event_id, event_type, schema_version, bot_id, session_id,"
        " occurred_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    started = time.perf_counter()
    for row in rows:
        async with conn.transaction():
            await conn.execute(insert, *row)
    elapsed = time.perf_counter() - started
    await conn.close()
    return len(rows) / elapsed


async def emit_latency(dsn: str, count: int) -> tuple[float, float, float]:
    """emit() latency in microseconds (p50, p99, max) while the buffer has room.

    Each event is built just before its emit, as a bot does (building is not timed).
    """
    samples = []
    template = sample_rounds(1, seed=9)[0]
    async with crashlog.connect(dsn, buffer_size=count + 1, project=False) as log:
        clock = time.perf_counter_ns
        for i in range(count):
            event = attrs.evolve(template, event_id=uuid7(), round_number=i)
            t0 = clock()
            await log.emit(event)
            samples.append(clock() - t0)
        await log.flush()
    samples.sort()
    return percentile(samples, 0.50) / 1e3, percentile(samples, 0.99) / 1e3, samples[-1] / 1e3


async def main() -> None:
    parser = base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    print(f"building {args.events:,} RoundSettled events (not timed) ...")
    events = sample_rounds(args.events)
    gc.collect()
    gc.freeze()  # the prepared events are scaffolding: keep the collector from rescanning them
    rows = as_rows(events)
    async with scratch_database(args.dsn) as dsn:
        gc.collect()
        cpu_before = cpu_seconds()
        raw = await raw_copy(dsn, rows)
        cpu_raw = cpu_seconds()
        ours, metrics = await crashlog_emit_flush(dsn, events)
        cpu_ours = cpu_seconds()
        sampled = min(PER_EVENT_SAMPLE, args.events)
        per_event = await one_transaction_per_event(dsn, as_rows(sample_rounds(sampled, seed=8)))
        p50, p99, worst = await emit_latency(dsn, args.events)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"{'append path':<42}{'events/s':>12}{'x raw COPY':>12}")
    for label, rate in [
        (f"raw asyncpg COPY, batch {BATCH:,}", raw),
        ("crashlog emit -> flush", ours),
        (f"one transaction per event ({sampled:,} sampled)", per_event),
    ]:
        print(f"{label:<42}{rate:>12,.0f}{rate / raw:>11.2f}x")
    print()
    print(f"client CPU per event (user + system, set-up included): raw COPY "
          f"{(cpu_raw - cpu_before) / len(rows) * 1e6:.1f} us (events already encoded), "
          f"crashlog {(cpu_ours - cpu_raw) / len(events) * 1e6:.1f} us")
    print(f"emit() latency with room in the buffer: p50 {p50:.1f} us, p99 {p99:.1f} us, max {worst:.0f} us")
    print(f"peak memory of this process (RSS): {peak_mib:,.0f} MiB")
    print(f"crashlog counters: committed {metrics.committed:,}, batches {metrics.batches}, "
          f"retried {metrics.retried}, rejected {metrics.rejected}")


if __name__ == "__main__":
    asyncio.run(main())
