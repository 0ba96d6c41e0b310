"""What the benchmarks share: a scratch database on the server under test, sample events,
and crashlog writing them."""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import asyncpg

import crashlog
from crashlog import migrations
from crashlog.database import mask_dsn, resolve_dsn
from crashlog.events import Event, Outcome, RoundSettled
from crashlog.events.fields import MULTIPLIER_CAP


def base_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--dsn", default=None, help="server to measure (default CRASHLOG_DSN, else the embedded one)"
    )
    return parser


@asynccontextmanager
async def scratch_database(dsn: str | None) -> AsyncIterator[str]:
    """A new, migrated database on the server, dropped afterwards; yields its DSN."""
    server = resolve_dsn(dsn)
    name = f"crashlog_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    scratch = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    try:
        conn = await asyncpg.connect(scratch)
        version = await conn.fetchval("SHOW server_version")
        await migrations.migrate(conn)
        await conn.close()
        print(f"server: PostgreSQL {version} at {mask_dsn(server)}, scratch database {name}")
        yield scratch
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def write_events(dsn: str, events: Sequence[Event]) -> float:
    """Emit ``events`` through crashlog and flush them, writing only (no projections):
    events/s."""
    async with crashlog.connect(dsn, project=False) as log:
        started = time.perf_counter()
        for event in events:
            await log.emit(event)
        await log.flush()
        return len(events) / (time.perf_counter() - started)


def sample_rounds(count: int, *, bots: int = 10, seed: int = 7) -> list[RoundSettled]:
    """``count`` settled rounds of ``bots`` bots watching the same game rounds (each round seen
    by every bot), crash points by the real law capped at the catalogue's multiplier cap.
    The same events every run."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    balance = [Decimal("1000.00")] * bots
    crash = Decimal("1.00")
    events = []
    for i in range(count):
        bot = i % bots
        if bot == 0:  # a new game round
            drawn = Decimal(int(97 / (1 - rng.random()))) / 100
            crash = min(MULTIPLIER_CAP, max(Decimal("1.00"), drawn))
        stake, target = Decimal("10.00"), Decimal("1.50")
        win = crash >= target
        profit = stake * (target - 1) if win else -stake
        before, balance[bot] = balance[bot], balance[bot] + profit
        events.append(
            RoundSettled(
                bot_id=f"bench-bot-{bot}", session_id=f"bench-session-{bot}",
                game="aviator", platform="demo", round_number=i // bots,
                game_round_id=f"r{i // bots:09d}", strategy_name="fixed-1.5",
                stake=stake, target_multiplier=target, crash_multiplier=crash,
                cashout_multiplier=target if win else None,
                outcome=Outcome.WIN if win else Outcome.LOSS, profit_loss=profit,
                balance_before=before, balance_after=balance[bot],
                occurred_at=start + timedelta(seconds=i),
            )
        )
    return events


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def environment_note() -> str:
    return f"{os.cpu_count()} cores"
