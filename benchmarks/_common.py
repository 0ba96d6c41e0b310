"""What the benchmarks share: a scratch database on the server under test, sample events,
and crashlog writing them."""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import asyncpg

import crashlog
from crashlog import migrations
from crashlog.database import mask_dsn, resolve_dsn
from crashlog.events import Event, OcrRead, Outcome, RoundObserved, RoundSettled, SignalRaised
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


def fleet_stream(*, bots: int = 10, observers: int = 2, prefix: str = "fleet",
                 seed: int = 11) -> Iterator[Event]:
    """An endless fleet-like log, game round after game round: ``bots`` bots each settle the
    round (all watching the same ``game_round_id``), ``observers`` more only observe it, one
    signal is raised for it before it starts, and two OCR readings (the multiplier and the
    balance) are taken: 10 + 2 + 1 + 2 = 15 events a round, two thirds RoundSettled. Crash
    points by the real law capped at the catalogue's cap; the same events every run."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    balance = [Decimal("1000.00")] * bots
    stake, target = Decimal("10.00"), Decimal("1.50")
    n = 0
    while True:
        at = start + timedelta(seconds=10 * n)
        crash = min(MULTIPLIER_CAP, max(Decimal("1.00"), Decimal(int(97 / (1 - rng.random()))) / 100))
        game_round = f"{prefix}-r{n:09d}"
        yield SignalRaised(
            bot_id=f"{prefix}-bot-0", session_id=f"{prefix}-session-0", game="aviator",
            platform="demo", signal_id=f"{prefix}-s{n:09d}", signal_type="streak",
            confidence_score=rng.random(), predicted_multiplier=Decimal("2.00"),
            for_game_round_id=game_round, for_round_number=n, occurred_at=at)
        win = crash >= target
        for bot in range(bots):
            profit = stake * (target - 1) if win else -stake
            before, balance[bot] = balance[bot], balance[bot] + profit
            yield RoundSettled(
                bot_id=f"{prefix}-bot-{bot}", session_id=f"{prefix}-session-{bot}",
                game="aviator", platform="demo", round_number=n, game_round_id=game_round,
                strategy_name="fixed-1.5", stake=stake, target_multiplier=target,
                crash_multiplier=crash, cashout_multiplier=target if win else None,
                outcome=Outcome.WIN if win else Outcome.LOSS, profit_loss=profit,
                balance_before=before, balance_after=balance[bot],
                ocr_confidence=0.99, detection_latency_ms=40, occurred_at=at)
        for watcher in range(observers):
            yield RoundObserved(
                bot_id=f"{prefix}-watcher-{watcher}", game="aviator", platform="demo",
                crash_multiplier=crash, game_round_id=game_round, round_number=n,
                occurred_at=at)
        for field, value in (("multiplier", crash), ("balance", balance[0])):
            yield OcrRead(
                bot_id=f"{prefix}-bot-0", session_id=f"{prefix}-session-0", field=field,
                raw_text=str(value), parsed_value=value, confidence=0.97, latency_ms=35,
                occurred_at=at)
        n += 1


def fleet_events(count: int) -> list[Event]:
    """The first ``count`` events of ``fleet_stream()``: the same events every run."""
    stream = fleet_stream()
    return [next(stream) for _ in range(count)]


async def checkpoint(dsn: str) -> None:
    """Have the server write out every dirty page now (CHECKPOINT), so that the next timed
    phase does not pay for the last one's writes; said on stderr when the role may not."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        print("  (no CHECKPOINT: needs superuser or pg_checkpoint)", file=sys.stderr)
    finally:
        await conn.close()


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def environment_note() -> str:
    return f"{os.cpu_count()} cores"
