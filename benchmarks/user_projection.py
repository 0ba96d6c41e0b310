"""A user's projection (a Python handler, ``@projection``) against the built-in ``rounds``:
each applied by a runner from the origin of the same N events, as events/s and a ratio.

    python benchmarks/user_projection.py [--events 200000] [--dsn DSN]

The user's projection decodes every RoundSettled into its class (upcast, validated) and
upserts the rounds per bot: the Python side of the work the built-in does in SQL. Figures
only: nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg
from _common import base_arguments, environment_note, sample_rounds, scratch_database, write_events

from crashlog.events import RoundSettled
from crashlog.projections import Batch, Projection, projection, rounds
from crashlog.projections.runner import Runner

_COUNT = """
INSERT INTO {t} (bot_id, rounds) SELECT bot, count(*) FROM unnest($1::text[]) AS b(bot)
GROUP BY bot
ON CONFLICT (bot_id) DO UPDATE SET rounds = {t}.rounds + EXCLUDED.rounds
"""


@projection("bench_bot_rounds", version=1, events=[RoundSettled],
            tables={"bench_bot_rounds": "bot_id text PRIMARY KEY, rounds bigint NOT NULL"})
async def bench_bot_rounds(batch: Batch) -> None:
    await batch.conn.execute(_COUNT.format(t=batch.table("bench_bot_rounds")),
                             [e.bot_id for e in batch.events])


async def apply_rate(dsn: str, p: Projection, events: int) -> float:
    """Events/s a runner applies ``p`` at, from the origin to the end of the log."""
    conn = await asyncpg.connect(dsn)
    try:
        last = await conn.fetchval("SELECT max(position) FROM crashlog.events")
        runner = Runner(dsn, [p], poll_interval=0.01)
        started = time.perf_counter()
        runner.start()
        while await conn.fetchval(
                "SELECT position FROM crashlog.projection_checkpoints WHERE name = $1",
                p.name) != last:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await runner.stop()
        return events / elapsed
    finally:
        await conn.close()


async def main() -> None:
    parser = base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to apply")
    args = parser.parse_args()
    print(f"building {args.events:,} RoundSettled events (not timed) ...", file=sys.stderr)
    async with scratch_database(args.dsn) as dsn:
        await write_events(dsn, sample_rounds(args.events))
        builtin = await apply_rate(dsn, rounds.PROJECTION, args.events)
        user = await apply_rate(dsn, bench_bot_rounds, args.events)
        print(f"\n{args.events:,} events, {environment_note()}")
        print(f"{'projection':<34}{'events/s':>12}")
        print(f"{'rounds (built-in, SQL)':<34}{builtin:>12,.0f}")
        print(f"{'bench_bot_rounds (user, Python)':<34}{user:>12,.0f}")
        print(f"ratio user / built-in: {user / builtin:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
