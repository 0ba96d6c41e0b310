"""Write throughput: crashlog emit -> flush against raw COPY on the same server, same events, same run.

    python benchmarks/write_throughput.py [--events 200000] [--rounds 4] [--dsn DSN]

Raw COPY and crashlog take turns (``--rounds``), each over its own slice of the
events, so that a change of load on a shared machine falls on both. Prints events/s
for each way of appending and its ratio to raw COPY, the client CPU time each spends
per event, the latency of ``emit()`` while the buffer has room,
and the process's peak memory. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time

import asyncpg
import attrs
from _common import base_arguments, percentile, sample_rounds, scratch_database

import crashlog
from crashlog.events import encode_payload, uuid7
from crashlog.store import COLUMNS, Row, init_connection

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


@attrs.define
class Side:
    """Time and client CPU one append path has spent so far."""

    seconds: float = 0.0
    cpu: float = 0.0

    def rate(self, events: int) -> float:
        return events / self.seconds


async def raw_and_crashlog(
    dsn: str, rows: list[Row], events: list, rounds: int
) -> tuple[Side, Side, crashlog.Metrics]:
    """Raw COPY and crashlog take turns over the same events, a slice each per round, so a
    change in the machine's load while the benchmark runs falls on both.

    Raw: the rows already encoded, ``copy_records_to_table`` in batches of 5,000 on one
    connection into a table shaped and indexed like ``crashlog.events``. Crashlog: ``emit``
    of each event of the slice, then ``flush``.
    """
    raw, ours = Side(), Side()
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    await conn.execute("CREATE TABLE raw_events (LIKE crashlog.events INCLUDING ALL)")
    # writing only: projections have their own benchmark
    async with crashlog.connect(dsn, project=False) as log:
        size = -(-len(events) // rounds)
        for start in range(0, len(events), size):
            end = min(start + size, len(events))
            cpu, started = cpu_seconds(), time.perf_counter()
            for i in range(start, end, BATCH):
                await conn.copy_records_to_table(
                    "raw_events", columns=COLUMNS, records=rows[i : min(i + BATCH, end)]
                )
            raw.seconds += time.perf_counter() - started
            raw.cpu += cpu_seconds() - cpu
            cpu, started = cpu_seconds(), time.perf_counter()
            for event in events[start:end]:
                await log.emit(event)
            await log.flush()
            ours.seconds += time.perf_counter() - started
            ours.cpu += cpu_seconds() - cpu
        metrics = log.metrics()
    await conn.execute("DROP TABLE raw_events")
    await conn.close()
    return raw, ours, metrics


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
    parser.add_argument("--rounds", type=int, default=4,
                        help="turns raw COPY and crashlog take, each over its own slice of the events")
    args = parser.parse_args()
    print(f"building {args.events:,} RoundSettled events (not timed) ...")
    events = sample_rounds(args.events)
    gc.collect()
    gc.freeze()  # the prepared events are scaffolding: keep the collector from rescanning them
    rows = as_rows(events)
    async with scratch_database(args.dsn) as dsn:
        gc.collect()
        raw_side, our_side, metrics = await raw_and_crashlog(dsn, rows, events, args.rounds)
        raw, ours = raw_side.rate(len(rows)), our_side.rate(len(events))
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
    print(f"client CPU per event (user + system): raw COPY {raw_side.cpu / len(rows) * 1e6:.1f} us "
          f"(events already encoded), crashlog {our_side.cpu / len(events) * 1e6:.1f} us "
          f"({args.rounds} rounds each)")
    print(f"emit() latency with room in the buffer: p50 {p50:.1f} us, p99 {p99:.1f} us, max {worst:.0f} us")
    print(f"peak memory of this process (RSS): {peak_mib:,.0f} MiB")
    print(f"crashlog counters: committed {metrics.committed:,}, batches {metrics.batches}, "
          f"retried {metrics.retried}, rejected {metrics.rejected}")


if __name__ == "__main__":
    asyncio.run(main())
