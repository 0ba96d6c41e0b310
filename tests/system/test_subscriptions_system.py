"""Subscriptions as users run them: a consumer SIGKILLed mid-stream and its successor, the
``crashlog subscriptions`` verb, and ``crashlog tail`` as an ephemeral subscription."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
from test_cli import crashlog_cli

import crashlog
from crashlog.events import RoundObserved

# A consumer that records each delivered event (bot, id) and acknowledges after writing it
# down; slow on purpose, so that it is killed with batches still to come.
CONSUMER = """
import asyncio, os, sys
import crashlog

async def main(dsn, name, out):
    async with crashlog.connect(dsn, project=False) as log:
        async with log.subscribe(name, batch_size=25) as sub:
            print("consuming", flush=True)
            with open(out, "a") as record:
                async for batch in sub:
                    for e in batch.events:
                        record.write(f"{e.bot_id} {e.event_id}\\n")
                    record.flush()
                    os.fsync(record.fileno())
                    await asyncio.sleep(0.2)
                    await batch.ack()

asyncio.run(main(*sys.argv[1:]))
"""

BOTS = ("a", "b", "c", "d")


def observed(bot: str, n: int) -> RoundObserved:
    return RoundObserved(bot_id=bot, game="aviator", platform="demo",
                         crash_multiplier=Decimal("2.00"), round_number=n)


def delivered(path: Path) -> list[tuple[str, uuid.UUID]]:
    if not path.exists():
        return []
    return [(bot, uuid.UUID(i)) for bot, i in (line.split() for line in path.read_text().splitlines())]


async def log_order(dsn: str) -> list[tuple[str, uuid.UUID]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT bot_id, event_id FROM crashlog.events ORDER BY tx_id, position")
    finally:
        await conn.close()
    return [(r["bot_id"], r["event_id"]) for r in rows]


def start_consumer(script: Path, dsn: str, name: str, out: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "CRASHLOG_DSN"}
    return subprocess.Popen([sys.executable, str(script), dsn, name, str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


async def wait_for(condition, seconds: float = 120) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.05)


async def wait_for_consumers(dsn: str, count: int) -> None:
    """Until ``count`` subscription connections are open on the test's database."""
    conn = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(120):
            while await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'crashlog-subscription'") < count:
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


def in_order_per_bot(seen: list[tuple[str, uuid.UUID]], log: list[tuple[str, uuid.UUID]]) -> bool:
    where = {event_id: i for i, (_, event_id) in enumerate(log)}
    for bot in BOTS:
        mine = [where[i] for b, i in seen if b == bot]
        if mine != sorted(mine):
            return False
    return True


async def test_a_killed_consumer_and_its_successor_deliver_everything_in_order(
    dsn: str, tmp_path: Path
) -> None:
    async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
        for n in range(200):
            for bot in BOTS:
                await log.emit(observed(bot, n))
        await log.flush()
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    first_out, second_out = tmp_path / "first.txt", tmp_path / "second.txt"
    first = start_consumer(script, dsn, "killable", first_out)
    second = None
    try:
        assert first.stdout is not None and "consuming" in first.stdout.readline()
        second = start_consumer(script, dsn, "killable", second_out)
        await wait_for_consumers(dsn, 2)  # the second is connected, waiting for the name
        so_far = len(delivered(first_out))
        await wait_for(lambda: len(delivered(first_out)) >= so_far + 50)
        assert delivered(second_out) == [] and second.poll() is None
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        total = await log_order(dsn)
        assert len(delivered(first_out)) < len(total)  # killed mid-stream
        await wait_for(lambda: {i for _, i in delivered(first_out) + delivered(second_out)}
                       >= {i for _, i in total})
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
                process.wait(timeout=30)
    first_seen, second_seen = delivered(first_out), delivered(second_out)
    assert second_seen, "the second consumer took over"
    assert in_order_per_bot(first_seen, total) and in_order_per_bot(second_seen, total)
    # At least once: the second starts at most a batch (25) before where the first stopped.
    assert set(first_seen) | set(second_seen) == set(total)
    assert len(first_seen) + len(second_seen) - len(total) <= 25


async def test_the_subscriptions_verb_lists_lag_and_drops(dsn: str) -> None:
    async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
        for n in range(3):
            await log.emit(observed("a", n))
        await log.flush()
        async with log.subscribe("reporter", events=[RoundObserved]) as sub:
            async for batch in sub:
                await batch.ack()
                break  # one batch acknowledged: all three, or fewer if the horizon lagged
        for n in range(3, 5):
            await log.emit(observed("a", n))
        await log.flush()
    listed = crashlog_cli("subscriptions", "--dsn", dsn).stdout
    (line,) = [row for row in listed.splitlines() if "reporter" in row]
    cells = line.replace("│", " ").split()
    assert cells[:2] == ["reporter", "RoundObserved"]
    lag, _, done = int(cells[2]), cells[3], int(cells[4])
    assert lag + done == 5 and lag >= 2
    assert cells[-1] == "-"  # no consumer runs
    assert "dropped subscription reporter" in crashlog_cli(
        "subscriptions", "--dsn", dsn, "--drop", "reporter").stdout
    assert "reporter" not in crashlog_cli("subscriptions", "--dsn", dsn).stdout
    missing = crashlog_cli("subscriptions", "--dsn", dsn, "--drop", "reporter", check=False)
    assert missing.returncode == 1
    assert "no subscription named 'reporter'" in missing.stderr


async def test_tail_is_an_ephemeral_subscription_with_its_filters(dsn: str) -> None:
    async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
        for n in range(4):
            await log.emit(observed("a" if n % 2 else "b", n))
    shown = crashlog_cli("tail", "--dsn", dsn, "--from-start", "--bot", "a", "--count", "2",
                         "--type", "RoundObserved").stdout.splitlines()
    assert len(shown) == 2 and all("RoundObserved a " in line for line in shown)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM crashlog.subscription_checkpoints") == 0
    finally:
        await conn.close()
