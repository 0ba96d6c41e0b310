"""The reader against a raw asyncpg cursor: rows/s and peak memory over a large table.

    python benchmarks/reader.py [--rows 200000] [--dsn DSN]

Fills ``crashlog.rounds`` of a scratch database with ``--rows`` rounds, then reads the whole
table in time order four ways, each in a fresh process (so each peak RSS is its own):

- ``raw``: an asyncpg server-side cursor, 10,000 rows per fetch, rows dropped as they come
  (the floor: what the driver alone costs);
- ``batches``: ``crashlog.reader().batches("rounds")``, Arrow record batches of 10,000 rows;
- ``table``: ``reader().table("rounds")``, the whole table in memory (its size beside the
  growth of the peak);
- ``parquet``: ``reader().export("rounds", "x.parquet")``.

It prints rows/s, the ratio to ``raw`` (same server, same run), and the growth of the peak
RSS once the reader is open: flat for ``raw``, ``batches`` and ``parquet`` whatever
``--rows``; about the table's own size for ``table``. Figures only, no assertions; the
machine's load (``uptime``) is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from _common import base_arguments, environment_note, scratch_database

_FILL = """
INSERT INTO crashlog.rounds (
    event_id, position, bot_id, session_id, game, platform, round_number, game_round_id,
    strategy_name, stake, crash_multiplier, cashout_multiplier, outcome, profit_loss,
    balance_before, balance_after, occurred_at, is_contradictory, metadata)
SELECT gen_random_uuid(), i, 'bot-' || (i % 200), 's-' || (i % 200), 'aviator', 'spribe',
       i / 200, 'r' || (i / 200), 'strategy-' || (i % 6), 10.00, 1 + (i % 500) / 100.0, 1.50,
       CASE WHEN i % 3 = 0 THEN 'LOSS' ELSE 'WIN' END, CASE WHEN i % 3 = 0 THEN -10.00 ELSE 5.00 END,
       1000.00, 1005.00, timestamptz '2026-01-01' + i * interval '2.6 s', false, '{"n": 1}'
FROM generate_series(1, $1) AS i
"""
MODES = ("raw", "batches", "table", "parquet")
MIB = 1024  # ru_maxrss is in KiB on Linux


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def raw(dsn: str) -> tuple[int, float, int]:
    conn = await asyncpg.connect(dsn)
    try:
        before = peak_kib()
        started = time.perf_counter()
        rows = 0
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            cursor = await conn.cursor("SELECT * FROM crashlog.rounds ORDER BY occurred_at, position")
            while chunk := await cursor.fetch(10_000):
                rows += len(chunk)
        return rows, time.perf_counter() - started, peak_kib() - before
    finally:
        await conn.close()


def through_reader(dsn: str, mode: str) -> tuple[int, float, int, int]:
    import crashlog

    with crashlog.reader(dsn) as r:
        r.table("bots")  # warm: imports, the pool
        before = peak_kib()
        started = time.perf_counter()
        held = 0
        if mode == "batches":
            rows = sum(batch.num_rows for batch in r.batches("rounds"))
        elif mode == "table":
            table = r.table("rounds")
            rows, held = table.num_rows, table.nbytes
        else:
            with tempfile.TemporaryDirectory() as folder:
                rows = r.export("rounds", Path(folder) / "rounds.parquet")
        return rows, time.perf_counter() - started, peak_kib() - before, held


def child(dsn: str, mode: str) -> None:
    """One measurement, in this (fresh) process: rows, seconds, peak growth KiB, bytes held."""
    if mode == "raw":
        rows, seconds, growth = asyncio.run(raw(dsn))
        held = 0
    else:
        rows, seconds, growth, held = through_reader(dsn, mode)
    print(rows, seconds, growth, held)


def measure(dsn: str, mode: str) -> tuple[int, float, int, int]:
    here = Path(__file__).resolve()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parents[1]), str(here.parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(here), "--child", mode, "--dsn", dsn],
                          capture_output=True, text=True, env=env, check=True)
    rows, seconds, growth, held = done.stdout.split()
    return int(rows), float(seconds), int(growth), int(held)


async def main(args: argparse.Namespace) -> None:
    async with scratch_database(args.dsn) as dsn:
        conn = await asyncpg.connect(dsn)
        await conn.execute(_FILL, args.rows)
        await conn.execute("VACUUM ANALYZE crashlog.rounds")
        await conn.close()
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"{args.rows:,} rounds, {environment_note()}; uptime: {load}")
        results = {mode: await asyncio.to_thread(measure, dsn, mode) for mode in MODES}
    floor = results["raw"][0] / results["raw"][1]
    print(f"{'read':<10}{'rows/s':>12}{'vs raw':>9}{'peak RSS growth':>18}{'table held':>13}")
    for mode, (rows, seconds, growth, held) in results.items():
        rate = rows / seconds
        kept = f"{held / 2**20:,.1f} MiB" if held else ""
        print(f"{mode:<10}{rate:>12,.0f}{rate / floor:>9.2f}{growth / MIB:>14,.1f} MiB{kept:>13}")


if __name__ == "__main__":
    parser = base_arguments((__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rounds to fill (default 200,000)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.dsn, arguments.child)
    else:
        asyncio.run(main(arguments))
