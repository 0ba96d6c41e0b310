"""Cost as the log grows: write ÷ raw COPY, live lag and rebuild µs/event at N1, then N2 events.

    python benchmarks/log_growth.py [--sizes 1000000,10000000] [--sample 200000]
        [--rate 10000] [--lag-seconds 10] [--dsn DSN] [--no-disk-check]

In one run on one server, one scratch database grows to hold each size's events in turn
(smallest first), and at each size:

- **write ÷ raw COPY**: ``--sample`` fleet events emitted through ``crashlog.connect(dsn,
  project=False)`` and flushed, against raw binary COPY of the same rows (asyncpg
  ``copy_records_to_table``, batches of 5,000, one connection, as ``write_throughput.py``)
  into ``crashlog.events`` itself, taking turns in four rounds so a change of load falls on
  both. The raw rows are rolled back: each batch is a transaction that COPYs inside a
  savepoint, rolls the savepoint back and commits. That is the fair table of the same size
  (the same table, its indexes and cache, no copy of gigabytes to build) and a commit of
  the same cost: the commit has a transaction id, so it flushes the WAL the COPY wrote, as
  crashlog's commits do. The raw rows differ from crashlog's in their event_id only (an id
  of their own, made just before that round's events, so every insert lands on the right
  edge of the unique index, as it does in the log; the same ids would make crashlog's
  inserts visit the raw rows' dead index entries).
- **live lag**: ``--rate`` events/s for ``--lag-seconds`` with the projections running,
  ``projection_throughput.lag_under_load``: the age of the oldest event some projection has
  not applied (p50/p99), and emit -> visible in crashlog.rounds. Its RoundSettled events
  name the same game rounds at every size, so at the second size those rounds gather twice
  the readings (a few more rows per derive: noise next to a batch).
- **rebuild**: ``crashlog.projections.runner.rebuild(dsn, ["all"])`` of every read table,
  µs of wall time per event in the log, then the count of crashlog.projection_errors
  (0: the rebuild projected every row).

Growing the log is not timed. It continues one fleet-like stream (``_common.fleet_stream``:
10 bots settling each game round, 2 observers, a signal, 2 OCR readings), built and
encoded by crashlog's own code (``encode_payload``, ``rows.copy_tuple``) in a worker
process while the previous batch is COPYed (``store.copy_tuples``, 5,000 events a
transaction, as the writer's batches): rows exactly as crashlog writes them, at the speed
of building them in Python (one core). Then the log is vacuumed, analysed and read once,
and every event is below the reading horizon before anything is timed.

Disk: the largest size needs about ``BYTES_PER_EVENT`` per event on the server. For a local
server (Unix socket, localhost) the free space of its data directory is checked first and
again after each size; for a remote one it cannot be, and the run prints pg_database_size as
it goes. The scratch database is dropped at the end, also on failure or Ctrl-C.
Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import attrs
from _common import base_arguments, environment_note, fleet_stream, percentile, scratch_database
from projection_throughput import lag_under_load, rebuild_all, settle, vacuum_log
from write_throughput import BATCH, as_rows

import crashlog
from crashlog.events import Event, encode_payload, uuid7
from crashlog.settings import Settings
from crashlog.store import COLUMNS, copy_tuple, copy_tuples, init_connection

# What the run needs on the server's disk per event at its largest size: the log, the read
# tables, and their shadows while a rebuild runs (about 2,000 measured at 250,000 events, and a margin).
BYTES_PER_EVENT = 2_200
ROUNDS = 4  # turns raw COPY and crashlog take in the write measurement
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def stamp(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- growing the log (in a worker process) --------------------------------------------------

_fleet: Iterator[Event] | None = None


def _start_fleet() -> None:
    global _fleet
    _fleet = fleet_stream()


def _fleet_tuples(count: int) -> list[bytes]:
    """The next ``count`` events of the bulk fleet, each as the COPY tuple ``emit`` makes."""
    assert _fleet is not None
    return [
        copy_tuple(e.event_id, e.event_type, e.schema_version, e.bot_id,
                   getattr(e, "session_id", None), e.occurred_at, encode_payload(e))
        for e in islice(_fleet, count)
    ]


async def grow(dsn: str, workers: ProcessPoolExecutor, count: int) -> None:
    """Append the next ``count`` events of the fleet: the worker builds a batch while the
    one before is copied. Progress and the database's size on stderr."""
    loop, batch = asyncio.get_running_loop(), Settings().batch_size
    conn = await asyncpg.connect(dsn)
    try:
        done, started, shown = 0, time.perf_counter(), 0.0
        pending = loop.run_in_executor(workers, _fleet_tuples, min(batch, count))
        while done < count:
            tuples = await pending
            if done + len(tuples) < count:
                pending = loop.run_in_executor(
                    workers, _fleet_tuples, min(batch, count - done - len(tuples)))
            await copy_tuples(conn, tuples)
            done += len(tuples)
            now = time.perf_counter()
            if now - shown > 10 or done == count:
                shown, rate = now, done / (now - started)
                size = await conn.fetchval("SELECT pg_database_size(current_database())")
                stamp(f"  grown {done:,}/{count:,} events, {rate:,.0f}/s, "
                      f"{(count - done) / rate:,.0f} s to go; database {size / 1e9:.2f} GB")
    finally:
        await conn.close()


# -- disk ---------------------------------------------------------------------------------

async def local_data_dir(conn: asyncpg.Connection, dsn: str) -> Path | None:
    """The server's data directory when it is on this machine and readable, else None."""
    parts = urlsplit(dsn)
    hosts = [parts.hostname or ""] + parse_qs(parts.query).get("host", [])
    if not all(h in LOCAL_HOSTS or h.startswith("/") for h in hosts):
        return None
    try:
        folder = Path(await conn.fetchval("SHOW data_directory"))
    except asyncpg.PostgresError:  # needs superuser or pg_read_all_settings
        return None
    return folder if folder.exists() else None


_FOOTPRINT = """
SELECT pg_database_size(current_database()) AS database,
       pg_total_relation_size('crashlog.events') AS log,
       (SELECT count(*) FROM crashlog.events) AS events
"""


@attrs.frozen
class Footprint:
    """Bytes on the server's disk: the database, and of it the log (table and indexes)."""

    database: int
    log: int
    events: int

    @property
    def peak_per_event(self) -> float:
        """Bytes per event while a rebuild runs: the log, the read tables and their shadows."""
        return (self.log + 2 * (self.database - self.log)) / max(1, self.events)


async def footprint(dsn: str) -> Footprint:
    conn = await asyncpg.connect(dsn)
    try:
        return Footprint(**dict(await conn.fetchrow(_FOOTPRINT)))
    finally:
        await conn.close()


async def check_disk(dsn: str, largest: int, per_event: float, *, enforce: bool) -> None:
    """Refuse (SystemExit) when a local server's disk cannot hold ``largest`` events at
    ``per_event`` bytes each; for a remote one, say what it will need."""
    used = await footprint(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        folder = await local_data_dir(conn, dsn)
    finally:
        await conn.close()
    need = max(0.0, largest * per_event - used.database)
    what = (f"about {need / 1e9:.1f} GB more needed for {largest:,} events at {per_event:,.0f} "
            f"bytes each; database now {used.database / 1e9:.2f} GB")
    if folder is None:
        stamp(f"disk: the server is not local (or its data directory not readable), free space "
              f"not checked: {what}")
        return
    free = shutil.disk_usage(folder).free
    stamp(f"disk: {free / 1e9:.1f} GB free in {folder}, {what}")
    if enforce and free < need:
        raise SystemExit(f"not enough disk: {free / 1e9:.1f} GB free in {folder}, {what} "
                         "(--no-disk-check to try anyway)")


# -- measures -----------------------------------------------------------------------------

async def write_against_raw(dsn: str, sample: int, prefix: str) -> tuple[float, float]:
    """crashlog's write and raw COPY of the same ``sample`` fleet events into the log,
    taking turns: (crashlog events/s, raw COPY events/s). See the module's docstring."""
    stream, size = fleet_stream(prefix=prefix), -(-sample // ROUNDS)
    rounds = []
    for start in range(0, sample, size):  # built before any clock starts
        ids = [uuid7() for _ in range(min(size, sample - start))]
        events = [next(stream) for _ in ids]
        rows = [row._replace(event_id=i) for row, i in zip(as_rows(events), ids, strict=True)]
        rounds.append((events, rows))
    ours = raw = 0.0
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        async with crashlog.connect(dsn, project=False) as log:
            for events, rows in rounds:
                started = time.perf_counter()
                for i in range(0, len(rows), BATCH):
                    async with conn.transaction():
                        savepoint = conn.transaction()
                        await savepoint.start()
                        await conn.copy_records_to_table(
                            "events", schema_name="crashlog", columns=COLUMNS,
                            records=rows[i : i + BATCH])
                        await savepoint.rollback()
                raw += time.perf_counter() - started
                started = time.perf_counter()
                for event in events:
                    await log.emit(event)
                await log.flush()
                ours += time.perf_counter() - started
    finally:
        await conn.close()
    return sample / ours, sample / raw


@attrs.define
class Size:
    """What one size measured."""

    size: int
    footprint: Footprint | None = None  # after the size's measures
    write: float = 0.0  # events/s, crashlog
    raw: float = 0.0  # events/s, raw COPY
    lags: list[float] = attrs.Factory(list)  # seconds, sorted
    visible: list[float] = attrs.Factory(list)
    live: float = 0.0  # events/s achieved while the lag was measured
    rebuilt: int = 0  # events in the log the rebuild read
    rebuild_us: float = 0.0  # µs of wall time per event
    errors: int = 0  # rows of crashlog.projection_errors after the rebuild


def _p(samples: list[float], fraction: float) -> float | None:
    return percentile(samples, fraction) if samples else None


def _ms(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{percentile(samples, 0.5) * 1e3:,.0f} / {percentile(samples, 0.99) * 1e3:,.0f}"


def _factor(now: float | None, before: float | None) -> str:
    # A lag of a few ms is below the sampler's resolution: no factor from it.
    if now is None or before is None or before < 0.005 or now <= 0:
        return "-"
    return f"{now / before:.2f}"


HEADER = (f"{'events in the log':>18}{'log GB':>7}{'write /s':>10}{'raw COPY /s':>12}"
          f"{'write÷raw':>10}{'lag p50/p99 ms':>16}{'emit→visible ms':>17}{'rebuild µs/ev':>15}"
          f"{'proj. errors':>13}")


def row(s: Size) -> str:
    ratio = f"{s.write / s.raw:.2f}" if s.raw else "-"
    log = s.footprint.log / 1e9 if s.footprint else 0.0
    return (f"{s.size:>18,}{log:>7.2f}{s.write:>10,.0f}{s.raw:>12,.0f}{ratio:>10}"
            f"{_ms(s.lags):>16}{_ms(s.visible):>17}{s.rebuild_us:>15.1f}{s.errors:>13,}")


def growth(first: Size, s: Size) -> str:
    """Each figure at ``s`` ÷ the same at ``first``: 1.00 is flat."""
    lag = f"{_factor(_p(s.lags, .5), _p(first.lags, .5))} / {_factor(_p(s.lags, .99), _p(first.lags, .99))}"
    vis = (f"{_factor(_p(s.visible, .5), _p(first.visible, .5))} / "
           f"{_factor(_p(s.visible, .99), _p(first.visible, .99))}")
    ratio = (_factor(s.write / s.raw, first.write / first.raw) if s.raw and first.raw else "-")
    label = f"× {s.size / first.size:.3g} events"
    logs = _factor(s.footprint.log, first.footprint.log) if s.footprint and first.footprint else "-"
    return (f"{label:>18}{logs:>7}{_factor(s.write, first.write):>10}"
            f"{_factor(s.raw, first.raw):>12}{ratio:>10}{lag:>16}{vis:>17}"
            f"{_factor(s.rebuild_us, first.rebuild_us):>15}{'':>13}")


async def fetchval(dsn: str, query: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def measure(dsn: str, args: argparse.Namespace) -> list[Size]:
    results: list[Size] = []
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding connections
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=_start_fleet) as workers:
        for n, size in enumerate(args.sizes):
            s, began = Size(size), time.perf_counter()
            have = await fetchval(dsn, "SELECT count(*) FROM crashlog.events")
            stamp(f"size {size:,}: growing the log from {have:,} events")
            if have > size:
                stamp(f"  (the log already holds {have - size:,} more than {size:,}: sizes too close)")
            await grow(dsn, workers, max(0, size - have))
            stamp("  vacuum, analyse, wait for the horizon, read the log once")
            await vacuum_log(dsn)
            stamp(f"  ready in {time.perf_counter() - began:,.0f} s")
            if args.sample:
                stamp(f"  write: {args.sample:,} events, crashlog and raw COPY in turns")
                s.write, s.raw = await write_against_raw(dsn, args.sample, f"sample{n}")
                stamp(f"  write {s.write:,.0f}/s, raw COPY {s.raw:,.0f}/s")
                await vacuum_log(dsn)  # the raw rows rolled back are dead: gone before the rebuild
            s.rebuilt = await fetchval(dsn, "SELECT count(*) FROM crashlog.events")
            stamp(f"  rebuild of every read table from {s.rebuilt:,} events")
            started = time.perf_counter()
            await rebuild_all(dsn, s.rebuilt)
            s.rebuild_us = (time.perf_counter() - started) / s.rebuilt * 1e6
            s.errors = await fetchval(dsn, "SELECT count(*) FROM crashlog.projection_errors")
            stamp(f"  rebuilt in {time.perf_counter() - started:,.0f} s, {s.rebuild_us:.1f} µs/event; "
                  f"projection_errors: {s.errors:,}")
            if args.lag_seconds:
                stamp(f"  live lag: {args.rate:,} events/s for {args.lag_seconds:g} s")
                await settle(dsn)
                s.lags, s.visible, written = await lag_under_load(dsn, args.rate, args.lag_seconds)
                s.live = written / args.lag_seconds
            s.footprint = await footprint(dsn)
            results.append(s)
            stamp(f"size {size:,} done in {time.perf_counter() - began:,.0f} s")
            print(f"{HEADER}\n{row(s)}", flush=True)  # kept if a later size fails
            if n + 1 < len(args.sizes):
                await check_disk(dsn, args.sizes[-1], s.footprint.peak_per_event,
                                 enforce=args.disk_check)
    return results


def report(results: list[Size], args: argparse.Namespace, seconds: float) -> None:
    print(f"\nlog growth, fleet-like events, {environment_note()}, run took {seconds / 60:,.1f} min")
    if args.lag_seconds:
        achieved = ", ".join(f"{s.live:,.0f}" for s in results)
        print(f"live lag at {args.rate:,} events/s for {args.lag_seconds:g} s (achieved: {achieved} /s)")
    print(HEADER)
    for s in results:
        print(row(s))
    for s in results[1:]:
        print(growth(results[0], s))
    print("growth rows: each figure ÷ the same at the first size (1.00 is flat); "
          "'-' where a lag is under 5 ms")
    for s in results:
        if s.footprint:
            f = s.footprint
            print(f"after {s.size:,}: {f.events:,} events, log {f.log / 1e9:.2f} GB "
                  f"({f.log / f.events:,.0f} B/event), database {f.database / 1e9:.2f} GB; "
                  f"a rebuild's peak about {f.peak_per_event:,.0f} B/event")


def sizes(text: str) -> list[int]:
    values = sorted({int(v.replace("_", "")) for v in text.split(",") if v.strip()})
    if not values or values[0] <= 0:
        raise argparse.ArgumentTypeError("sizes are positive event counts, e.g. 1000000,10000000")
    return values


async def main() -> None:
    parser = base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=[1_000_000, 10_000_000],
                        help="events in the log when each size is measured (comma-separated)")
    parser.add_argument("--sample", type=int, default=200_000,
                        help="events written through crashlog, and by raw COPY, per size (0: skip)")
    parser.add_argument("--rate", type=int, default=10_000, help="events/s while the lag is measured")
    parser.add_argument("--lag-seconds", type=float, default=10.0, help="(0: skip)")
    parser.add_argument("--no-disk-check", dest="disk_check", action="store_false",
                        help="go on when a local server's disk seems too small")
    args = parser.parse_args()
    began = time.perf_counter()
    async with scratch_database(args.dsn) as dsn:
        await check_disk(dsn, args.sizes[-1], BYTES_PER_EVENT, enforce=args.disk_check)
        results = await measure(dsn, args)
    report(results, args, time.perf_counter() - began)


if __name__ == "__main__":
    asyncio.run(main())
