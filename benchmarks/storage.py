"""Storage: the bytes each table of schema crashlog takes per event of a fleet-like log, and
what that makes per bot and month.

    python benchmarks/storage.py [--events 220000] [--round-seconds 10] [--dsn DSN]

The fleet mix (``_common.fleet_stream``: per game round 10 bots settle it, 2 more observe
it, 1 signal, 2 OCR readings: 15 events) is written through crashlog, every read table is
rebuilt from it, every table is vacuumed and analysed (as autovacuum would leave it), then
each table's ``pg_total_relation_size`` (heap, TOAST, indexes, free space and visibility
maps) is divided by the events in the log. Per bot and month: a bot that settles every round
of one game with a round every ``--round-seconds`` seconds, and brings its share of the
observations, signals and OCR readings (5 events per round for 10 bots: 1.5 events a round
per bot). Figures only: nothing here asserts a size.
"""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg
from _common import base_arguments, environment_note, fleet_events, scratch_database, write_events

from crashlog.projections.runner import rebuild

#: Events the fleet mix logs per game round for each of its 10 settling bots.
EVENTS_PER_BOT_ROUND = 15 / 10
#: Seconds in an average month (365.25 days / 12).
MONTH = 365.25 / 12 * 86_400

# Every table of schema crashlog (views hold nothing), largest first.
_SIZES = """
SELECT c.relname AS name, c.reltuples::bigint AS estimated_rows,
       pg_total_relation_size(c.oid) AS total, pg_indexes_size(c.oid) AS indexes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'crashlog' AND c.relkind IN ('r', 'p')
ORDER BY total DESC, name
"""


async def main() -> None:
    parser = base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=220_000, help="fleet events to log")
    parser.add_argument("--round-seconds", type=float, default=10.0,
                        help="seconds between two rounds of the game a bot plays")
    args = parser.parse_args()
    print(f"building {args.events:,} fleet events (not timed) ...", file=sys.stderr)
    events = fleet_events(args.events)
    async with scratch_database(args.dsn) as dsn:
        rate = await write_events(dsn, events)
        del events
        started = time.perf_counter()
        await rebuild(dsn, ["all"])
        rebuilt = time.perf_counter() - started
        conn = await asyncpg.connect(dsn)
        try:
            tables = await conn.fetch(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'crashlog' AND c.relkind IN ('r', 'p')")
            for (table,) in tables:
                await conn.execute(f"VACUUM (ANALYZE) {table}")
            sizes = await conn.fetch(_SIZES)
            logged = await conn.fetchval("SELECT count(*) FROM crashlog.events")
        finally:
            await conn.close()
    report(sizes, logged, args.round_seconds)
    print(f"\n(write {rate:,.0f} events/s, rebuild {rebuilt:.2f} s: {environment_note()}, "
          "not what this script measures)")


def report(sizes: list[asyncpg.Record], events: int, round_seconds: float) -> None:
    print(f"\n{events:,} fleet events, {environment_note()}")
    print(f"{'table':<28}{'rows':>10}{'MiB':>9}{'of it indexes':>15}{'bytes/event':>13}")
    for row in sizes:
        print(f"{row['name']:<28}{row['estimated_rows']:>10,}{row['total'] / 2**20:>9.1f}"
              f"{row['indexes'] / 2**20:>15.1f}{row['total'] / events:>13.0f}")
    log = sum(r["total"] for r in sizes if r["name"] == "events")
    everything = sum(r["total"] for r in sizes)
    per_bot_month = EVENTS_PER_BOT_ROUND * MONTH / round_seconds
    print(f"\n{'':<28}{'bytes/event':>13}{'GB per bot and month':>22}")
    for label, size in (("the log", log), ("read tables", everything - log), ("all", everything)):
        per_event = size / events
        print(f"{label:<28}{per_event:>13.0f}{per_event * per_bot_month / 1e9:>22.3f}")
    print(f"(a bot: {per_bot_month:,.0f} events a month, one round every {round_seconds:g} s, "
          f"{EVENTS_PER_BOT_ROUND:g} events a round)")


if __name__ == "__main__":
    asyncio.run(main())
