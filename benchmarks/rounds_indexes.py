"""The indexes of crashlog.rounds, checked with EXPLAIN on a million rounds.

    python benchmarks/rounds_indexes.py [--rounds 1000000] [--dsn DSN]

Fills ``crashlog.rounds`` of a scratch database with a fleet's worth of rounds (200 bots,
6 strategies, 3 games on 2 platforms, a round every 2.6 s over a month), then prints, for each
query users run, the plan's access path and its time. The indexes are those of the
migrations (sql/004_read_indexes.sql, sql/007_rounds_indexes.sql). Figures only.
"""

from __future__ import annotations

import asyncio
import re
import time

import asyncpg
from _common import base_arguments, environment_note, scratch_database

_FILL = """
INSERT INTO crashlog.rounds (
    event_id, position, bot_id, session_id, game, platform, round_number, game_round_id,
    strategy_name, stake, crash_multiplier, outcome, profit_loss, occurred_at,
    is_contradictory, contradictions)
SELECT gen_random_uuid(), i, 'bot-' || (i % 200), 's-' || (i % 200), g.game, g.platform,
       i / 200, 'r' || (i / 200), 'strategy-' || (i % 6), 10, 1 + (i % 500) / 100.0,
       CASE WHEN i % 3 = 0 THEN 'LOSS' ELSE 'WIN' END, CASE WHEN i % 3 = 0 THEN -10 ELSE 5 END,
       timestamptz '2026-01-01' + i * interval '2.6 s',
       i % 997 = 0, CASE WHEN i % 997 = 0 THEN '{profit_mismatch}'::text[] ELSE '{}' END
FROM generate_series(1, $1) AS i,
     LATERAL (SELECT (ARRAY['aviator', 'jetx', 'aviatrix'])[1 + (i / 7) % 3] AS game,
                     (ARRAY['demo', 'spribe'])[1 + (i / 11) % 2] AS platform) g
"""

# (what a user asks, the query, read through a cursor as crashlog's own readers do?): the
# questions behind the indexes. A cursor asks the planner for the first rows fast, so an
# index already in the order asked for is read as it is, without sorting anything.
QUERIES = [
    ("a bot's history in order (bot_statistics)",
     "SELECT * FROM crashlog.rounds WHERE bot_id = 'bot-7' ORDER BY occurred_at, position", True),
    ("a bot's last day",
     "SELECT count(*), sum(profit_loss) FROM crashlog.rounds WHERE bot_id = 'bot-7'"
     " AND occurred_at >= '2026-01-10' AND occurred_at < '2026-01-11'", False),
    ("a game's rounds over a day (charts)",
     "SELECT occurred_at, crash_multiplier FROM crashlog.rounds WHERE platform = 'demo'"
     " AND game = 'jetx' AND occurred_at >= '2026-01-10' AND occurred_at < '2026-01-11'"
     " ORDER BY occurred_at", False),
    ("a strategy's history in order (strategy_statistics)",
     "SELECT * FROM crashlog.rounds WHERE strategy_name = 'strategy-2'"
     " ORDER BY occurred_at, position", True),
    ("a strategy over a day",
     "SELECT count(*) FROM crashlog.rounds WHERE strategy_name = 'strategy-2'"
     " AND occurred_at >= '2026-01-10' AND occurred_at < '2026-01-11'", False),
    ("every round of an hour, all bots",
     "SELECT count(*) FROM crashlog.rounds"
     " WHERE occurred_at >= '2026-01-10' AND occurred_at < '2026-01-10 01:00'", False),
    ("the contradictory records (doctor, audits)",
     "SELECT count(*) FROM crashlog.rounds WHERE is_contradictory", False),
    ("the whole table in time order (export)",
     "SELECT * FROM crashlog.rounds ORDER BY occurred_at, position", True),
]

_ACCESS = re.compile(r"(Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)(?: Backward)?"
                     r"(?: using (\S+) on| on (rounds_\S+)| on)")


async def _explained(conn: asyncpg.Connection, query: str) -> tuple[str, float]:
    """The plan the query ran with, and its execution time (ms)."""
    plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, TIMING OFF) {query}"))
    return plan, float(re.search(r"Execution Time: ([\d.]+)", plan)[1])


async def _through_cursor(conn: asyncpg.Connection, query: str) -> tuple[str, float]:
    """The plan of the query as a cursor, and the time (ms) to read every row through it."""
    async with conn.transaction():
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN DECLARE c CURSOR FOR {query}"))
        started = time.perf_counter()
        async for _ in conn.cursor(query, prefetch=1000):
            pass
    return plan, (time.perf_counter() - started) * 1e3


async def main() -> None:
    parser = base_arguments(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1_000_000)
    args = parser.parse_args()
    async with scratch_database(args.dsn) as dsn:
        conn = await asyncpg.connect(dsn, server_settings={"jit": "off"})
        try:
            await conn.execute(_FILL, args.rounds)
            await conn.execute("VACUUM ANALYZE crashlog.rounds")
            print(f"{args.rounds:,} rounds, {environment_note()}")
            sizes = await conn.fetch(
                "SELECT c.relname, pg_relation_size(c.oid) AS bytes FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = 'crashlog.rounds'::regclass ORDER BY 1")
            for row in sizes:
                print(f"  index {row['relname']:<28} {row['bytes'] / 2**20:8.1f} MiB")
            print(f"\n{'query':<56}{'access path':<50}{'ms':>8}")
            for label, query, cursor in QUERIES:
                plan, took = await (_through_cursor if cursor else _explained)(conn, query)
                paths = sorted({f"{m[1]} {m[2] or m[3] or ''}".strip() for m in _ACCESS.finditer(plan)})
                sort = " + sort" if re.search(r"\bSort\b", plan) else ""
                how = " (cursor)" if cursor else ""
                print(f"{label:<56}{', '.join(paths) + sort + how:<50}{took:>8.1f}")
        finally:
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
