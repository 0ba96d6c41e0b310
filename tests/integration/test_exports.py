"""Exports read back with json/csv/pyarrow equal the tables, in time order, in flat memory."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import attrs
import pyarrow.parquet as pq
import pytest

import crashlog
from crashlog.events import RoundObserved, RoundSettled
from crashlog.exports import (
    MULTIPLIER_COLUMNS,
    ROUND_COLUMNS,
    count_rows,
    export_multipliers,
    export_rounds,
    format_of,
)
from crashlog.simulator import CrashGame, Martingale, SimulatedBot

START = datetime(2025, 3, 1, tzinfo=UTC)


async def play(log: crashlog.Logger, rounds: int = 120) -> None:
    game = CrashGame(seed=11)
    bots = [SimulatedBot(f"bot-{i}", Martingale(target="1.80")) for i in range(2)]
    for n in range(rounds):
        crash = game.next_crash()
        at = START + timedelta(seconds=n)
        for bot in bots:
            played = bot.play(crash)
            await log.emit(
                RoundSettled(
                    bot_id=bot.bot_id,
                    occurred_at=at,
                    game="aviator",
                    platform="demo",
                    game_round_id=f"r{n}",
                    strategy_name="martingale",
                    metadata={"n": n},
                    **attrs.asdict(played),
                )
            )
        await log.emit(
            RoundObserved(
                bot_id="watcher",
                occurred_at=at,
                game="jetx",
                platform="demo",
                crash_multiplier=crash,
            )
        )
    await log.sync(timeout=30)


def text(value) -> str:
    """A table value as the exports write it in CSV."""
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


async def table(conn: asyncpg.Connection, name: str, columns, order: str) -> list[tuple]:
    select = ", ".join(f"{c}::text" if kind in ("json", "uuid") else c for c, kind in columns)
    return [
        tuple(r) for r in await conn.fetch(f"SELECT {select} FROM crashlog.{name} ORDER BY {order}")
    ]


async def test_rounds_export_in_every_format_equals_the_table(
    log: crashlog.Logger, tmp_path: Path
) -> None:
    await play(log)
    async with log.pool.acquire() as conn:
        expected = await table(conn, "rounds", ROUND_COLUMNS, "occurred_at, position")
    names = [c for c, _ in ROUND_COLUMNS]
    assert len(expected) == 240

    assert await export_rounds(log.pool, tmp_path / "r.jsonl", "jsonl") == 240
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    for got, row in zip(lines, expected, strict=True):
        want = dict(zip(names, row, strict=True))
        assert Decimal(got["stake"]) == want["stake"] and got["bot_id"] == want["bot_id"]
        assert got["metadata"] == json.loads(want["metadata"])
        assert datetime.fromisoformat(got["occurred_at"]) == want["occurred_at"]
        assert got["event_id"] == want["event_id"]
        assert (
            None if got["cashout_multiplier"] is None else Decimal(got["cashout_multiplier"])
        ) == want["cashout_multiplier"]

    assert await export_rounds(log.pool, tmp_path / "r.json", "json", bot_id="bot-1") == 120
    array = json.loads((tmp_path / "r.json").read_text())
    assert [r["event_id"] for r in array] == [r[0] for r in expected if r[2] == "bot-1"]

    await export_rounds(log.pool, tmp_path / "r.csv", "csv")
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == names
    assert rows[1:] == [[text(v) for v in row] for row in expected]

    await export_rounds(log.pool, tmp_path / "r.parquet", "parquet")
    parquet = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert [tuple(r.values()) for r in parquet] == expected


async def test_multipliers_export_equals_the_table(log: crashlog.Logger, tmp_path: Path) -> None:
    await play(log, rounds=50)
    async with log.pool.acquire() as conn:
        expected = await table(
            conn, "round_multipliers", MULTIPLIER_COLUMNS, "first_seen_at, first_position"
        )
        assert await count_rows(conn, "multipliers", game="aviator") == 50
    names = [c for c, _ in MULTIPLIER_COLUMNS]
    assert len(expected) == 100  # 50 aviator rounds seen by 2 bots each, 50 jetx observations
    assert [r[4] for r in expected if r[1] == "aviator"] == list(CrashGame(seed=11).crashes(50))

    buffer = io.BytesIO()
    assert await export_multipliers(log.pool, buffer, "jsonl", game="aviator") == 50
    got = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [Decimal(r["multiplier"]) for r in got] == [r[4] for r in expected if r[1] == "aviator"]
    assert all(r["observers"] == 2 for r in got)

    await export_multipliers(log.pool, tmp_path / "m.parquet", "parquet")
    parquet = pq.read_table(tmp_path / "m.parquet").to_pylist()
    assert [tuple(r.values()) for r in parquet] == expected
    assert list(parquet[0]) == names


async def test_bad_format_is_named(log: crashlog.Logger, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format='xlsx'"):
        await export_rounds(log.pool, tmp_path / "x", "xlsx")


def test_the_format_follows_the_extension() -> None:
    assert [format_of(f"out.{e}") for e in ("jsonl", "ndjson", "json", "csv", "parquet")] == [
        "jsonl",
        "jsonl",
        "json",
        "csv",
        "parquet",
    ]
    assert format_of(Path("dir.v2/OUT.NDJSON")) == "jsonl"
    assert format_of("rounds.txt") == "jsonl"  # unknown: the default
    assert format_of("rounds", default="csv") == "csv"


async def test_count_rows_is_what_the_export_writes(log: crashlog.Logger, tmp_path: Path) -> None:
    await play(log, rounds=30)
    for filters in ({}, {"bot_id": "bot-1"}, {"game": "aviator", "platform": "demo"}, {"game": "x"}):
        written = await export_rounds(log.pool, tmp_path / "r.jsonl", **filters)
        assert await count_rows(log.pool, "rounds", **filters) == written
    for filters in ({}, {"game": "jetx"}, {"exclude_flagged": True}):
        written = await export_multipliers(log.pool, tmp_path / "m.jsonl", **filters)
        assert await count_rows(log.pool, "multipliers", **filters) == written
    assert written > 0


FILL = """
INSERT INTO crashlog.rounds (event_id, position, bot_id, game, platform, stake, crash_multiplier,
    outcome, profit_loss, occurred_at, is_contradictory, metadata)
SELECT gen_random_uuid(), i, 'bot-' || (i % 7), 'aviator', 'demo', 1.00, 2.45, 'LOSS', -1.00,
       '2025-01-01'::timestamptz + i * interval '1 second', false,
       jsonb_build_object('note', repeat('x', 100))
FROM generate_series($1::int, $2::int) AS i
"""


async def peak_export_memory(conn: asyncpg.Connection, tmp_path: Path) -> int:
    tracemalloc.start()
    try:
        await export_rounds(conn, tmp_path / "big.jsonl", "jsonl")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_memory_stays_flat_as_the_export_grows(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await conn.execute(FILL, 1, 5_000)
    small = await peak_export_memory(conn, tmp_path)
    await conn.execute(FILL, 5_001, 20_000)
    large = await peak_export_memory(conn, tmp_path)
    assert (tmp_path / "big.jsonl").read_bytes().count(b"\n") == 20_000
    # Four times the rows; had they been held at once the peak would grow about fourfold.
    assert large < 1.5 * small, (small, large)


class FailingSink(io.BytesIO):
    """A file that fails on its second write, as a full disk would."""

    def write(self, data) -> int:  # type: ignore[override]
        if self.tell():
            raise OSError("disk full")
        return super().write(data)


async def test_an_export_cut_short_leaves_the_connection_as_it_found_it(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(FILL, 1, 12_000)  # more than two chunks
    with pytest.raises(OSError, match="disk full"):
        await export_rounds(conn, FailingSink(), "jsonl")
    assert not conn.is_in_transaction()  # its snapshot and cursor are closed
    # In the caller's transaction the export reads that transaction's state, and leaves it open.
    async with conn.transaction():
        await conn.execute(FILL, 12_001, 12_010)
        buffer = io.BytesIO()
        assert await export_rounds(conn, buffer, "jsonl") == 12_010
        assert conn.is_in_transaction()


async def test_parquet_refuses_to_round_a_decimal(conn: asyncpg.Connection, tmp_path: Path) -> None:
    await conn.execute(FILL, 1, 3)
    await conn.execute("UPDATE crashlog.rounds SET profit_loss = 1e-13 WHERE position = 2")
    with pytest.raises(ValueError, match="column profit_loss"):
        await export_rounds(conn, tmp_path / "r.parquet", "parquet")
    assert await export_rounds(conn, tmp_path / "r.jsonl", "jsonl") == 3  # exact as text
    assert "0.0000000000001" in (tmp_path / "r.jsonl").read_text()
