"""Where a rebuild's time goes: each projection rebuilt alone, on one connection, from the
same N events, as µs of wall time per event (fill, index builds, derive and swap included).

    python benchmarks/rebuild_each.py [--events 300000] [--dsn DSN]

Figures only: nothing here asserts a time. ``weight`` in each projection module comes from
these figures.
"""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg
from _common import base_arguments, environment_note, sample_rounds, scratch_database, write_events

from crashlog.projections import PROJECTIONS
from crashlog.projections.rebuild import rebuild_projections
from crashlog.projections.runner import REBUILD_SETTINGS


async def rebuild_each(dsn: str) -> dict[str, float]:
    """Each projection rebuilt alone on one connection: seconds per projection."""
    conn = await asyncpg.connect(dsn, server_settings=REBUILD_SETTINGS)
    seconds = {}
    try:
        for projection in PROJECTIONS:
            started = time.perf_counter()
            await rebuild_projections(conn, [projection])
            seconds[projection.name] = time.perf_counter() - started
    finally:
        await conn.close()
    return seconds


async def main() -> None:
    parser = base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="events to rebuild from")
    args = parser.parse_args()
    print(f"building {args.events:,} RoundSettled events (not timed) ...", file=sys.stderr)
    events = sample_rounds(args.events)
    async with scratch_database(args.dsn) as dsn:
        await write_events(dsn, events)
        del events
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("VACUUM ANALYZE crashlog.events")
        finally:
            await conn.close()
        seconds = await rebuild_each(dsn)
    print(f"\n{args.events:,} events, {environment_note()}")
    print(f"{'projection':<24}{'s':>8}{'µs/event':>12}")
    for name, elapsed in seconds.items():
        print(f"{name:<24}{elapsed:>8.2f}{elapsed / args.events * 1e6:>12.1f}")
    total = sum(seconds.values())
    print(f"{'sum':<24}{total:>8.2f}{total / args.events * 1e6:>12.1f}")


if __name__ == "__main__":
    asyncio.run(main())
