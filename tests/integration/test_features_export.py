"""The ML export through the projections (crashlog/features.py read by exports.py): every
format carries the same features and flags, the CLI's options reach the library, and memory
stays flat as the series grows. (The features on rows alone: tests/unit/test_features.py.)"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tracemalloc
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.features import SPEC, START, assert_features_match_reference

import crashlog
from crashlog import exports
from crashlog.cli import main
from crashlog.events import RoundObserved
from crashlog.exports import export_multipliers
from crashlog.features import FeatureSpec, ml_columns
from crashlog.simulator import CrashGame

OFF_GRID_ROUND, DISPUTED_ROUND = 60, 75


async def observe(log: crashlog.Logger, rounds: int = 150) -> dict[str, list[Decimal]]:
    """Emit fair rounds of two games (with game_round_ids), one off the grid and one that
    two observers disagree on; returns each game's multipliers in time order."""
    played: dict[str, list[Decimal]] = {"aviator": [], "jetx": []}
    games = {"aviator": CrashGame(seed=31), "jetx": CrashGame(seed=32)}
    for n in range(rounds):
        for k, (game, crashes) in enumerate(games.items()):
            crash = crashes.next_crash()
            if game == "aviator" and n == OFF_GRID_ROUND:
                crash = Decimal("2.457")
            at = START + timedelta(seconds=n, milliseconds=100 * k)
            await log.emit(
                RoundObserved(
                    bot_id="watcher",
                    occurred_at=at,
                    game=game,
                    platform="spribe",
                    crash_multiplier=crash,
                    game_round_id=f"{game}-{n}",
                    round_number=n,
                )
            )
            if game == "aviator" and n == DISPUTED_ROUND:
                await log.emit(
                    RoundObserved(
                        bot_id="second",
                        occurred_at=at + timedelta(milliseconds=50),
                        game=game,
                        platform="spribe",
                        crash_multiplier=crash + 1,
                        game_round_id=f"{game}-{n}",
                    )
                )
            played[game].append(crash)
    await log.sync(timeout=30)
    return played


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def typed(row: dict[str, Any], spec: FeatureSpec = SPEC) -> dict[str, Any]:
    """A JSON or CSV row with its decimals as Decimal (they are exported as text)."""
    kinds = dict(ml_columns(spec))
    return {k: Decimal(v) if kinds[k] == "decimal" and v is not None else v for k, v in row.items()}


async def test_ml_export_through_the_projections(
    log: crashlog.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    played = await observe(log)
    buffer = io.BytesIO()
    assert await export_multipliers(log.pool, buffer, "jsonl", features=SPEC) == 300
    rows = [typed(r) for r in read_jsonl(buffer.getvalue())]
    assert [n for n, _ in ml_columns(SPEC)] == list(rows[0])
    # Time order across games, keyed by round.
    assert [r["game_round_id"] for r in rows[:4]] == ["aviator-0", "jetx-0", "aviator-1", "jetx-1"]
    assert all(r["platform"] == "spribe" and r["event_id"] is None for r in rows)
    assert datetime.fromisoformat(rows[3]["first_seen_at"]) == START + timedelta(seconds=1.1)
    for game, multipliers in played.items():
        mine = [r for r in rows if r["game"] == game]
        assert [r["multiplier"] for r in mine] == multipliers
        assert [r["round_number"] for r in mine] == list(range(150))
        assert_features_match_reference(mine, multipliers)

    by_id = {r["game_round_id"]: r for r in rows}
    off_grid, disputed = by_id[f"aviator-{OFF_GRID_ROUND}"], by_id[f"aviator-{DISPUTED_ROUND}"]
    assert off_grid["quality_flags"] == ["off_grid"] and off_grid["pit"] is None
    assert disputed["quality_flags"] == ["disagreement"] and disputed["observers"] == 2
    assert sum(bool(r["quality_flags"]) for r in rows) == 2
    assert all(0 <= r["pit"] < 1 for r in rows if r is not off_grid)

    # Without the flagged rounds: the same rows for every other round.
    kept = io.BytesIO()
    assert (
        await export_multipliers(log.pool, kept, "jsonl", features=SPEC, exclude_flagged=True)
        == 298
    )
    assert [typed(r) for r in read_jsonl(kept.getvalue())] == [
        r for r in rows if not r["quality_flags"]
    ]
    array = io.BytesIO()  # one JSON array; a chunk of one row, when flagged, writes nothing
    monkeypatch.setattr(exports, "CHUNK", 1)
    await export_multipliers(log.pool, array, "json", features=SPEC, exclude_flagged=True)
    assert [typed(r) for r in json.loads(array.getvalue())] == [
        typed(r) for r in read_jsonl(kept.getvalue())
    ]

    # CSV and Parquet carry the same values.
    await log.export_multipliers(tmp_path / "m.csv", "csv", features=SPEC)
    with open(tmp_path / "m.csv", newline="") as f:
        from_csv = list(csv.DictReader(f))
    assert [Decimal(r["multiplier"]) for r in from_csv] == [r["multiplier"] for r in rows]
    assert [r["lag_2"] for r in from_csv] == [
        "" if r["lag_2"] is None else format(r["lag_2"], "f") for r in rows
    ]
    assert [json.loads(r["quality_flags"]) for r in from_csv] == [r["quality_flags"] for r in rows]
    assert [float(r["pit"]) if r["pit"] else None for r in from_csv] == [r["pit"] for r in rows]

    await export_multipliers(log.pool, tmp_path / "m.parquet", "parquet", features=SPEC)
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.schema.field("lag_1").type == pa.decimal128(38, 12)
    assert table.schema.field("mean_log_5").type == pa.float64()
    assert table.schema.field("hit").type == pa.bool_()
    parquet = table.to_pylist()
    for got, want in zip(parquet, rows, strict=True):
        for name in (
            "multiplier",
            "lag_1",
            "mean_log_20",
            "pit",
            "hit",
            "quality_flags",
            "prior_rounds",
        ):
            assert got[name] == want[name], name


async def test_plain_multiplier_export_carries_flags_and_can_leave_them_out(
    log: crashlog.Logger,
) -> None:
    await observe(log, rounds=80)
    everything, clean = io.BytesIO(), io.BytesIO()
    assert await export_multipliers(log.pool, everything, "jsonl", game="aviator") == 80
    assert (
        await export_multipliers(log.pool, clean, "jsonl", game="aviator", exclude_flagged=True)
        == 78
    )
    flagged = [r for r in read_jsonl(everything.getvalue()) if r["quality_flags"]]
    assert [(r["game_round_id"], r["quality_flags"]) for r in flagged] == [
        (f"aviator-{OFF_GRID_ROUND}", ["off_grid"]),
        (f"aviator-{DISPUTED_ROUND}", ["disagreement"]),
    ]


async def test_cli_exports_features_with_its_options(
    log: crashlog.Logger, dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await observe(log, rounds=120)
    out = tmp_path / "ml.jsonl"
    args = ["export", "multipliers", "--dsn", dsn, "--features", "--target", "3", "--rtp", "0.99"]
    args += [
        "--seed",
        "7",
        "--lags",
        "2",
        "--windows",
        "10,30",
        "--exclude-flagged",
        "-o",
        str(out),
    ]
    assert await asyncio.to_thread(main, args) == 0
    assert "238 multipliers written" in capsys.readouterr().err
    spec = FeatureSpec(target="3", rtp=0.99, seed=7, lags=2, windows=(10, 30))
    library = io.BytesIO()
    await export_multipliers(log.pool, library, "jsonl", features=spec, exclude_flagged=True)
    assert out.read_bytes() == library.getvalue()
    rows = read_jsonl(out.read_bytes())
    assert {r["baseline_hit_probability"] for r in rows} == {0.99 / 3}
    assert "lag_3" not in rows[0] and "mean_log_30" in rows[0]

    # A feature option without --features, or --features for rounds: refused, and said why.
    assert (
        await asyncio.to_thread(main, ["export", "multipliers", "--dsn", dsn, "--seed", "7"]) == 1
    )
    assert "--seed goes with --features" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["export", "rounds", "--dsn", dsn, "--features"]) == 1
    assert "are for multipliers" in capsys.readouterr().err
    bad = ["export", "multipliers", "--dsn", dsn, "--features", "--windows", "0"]
    assert await asyncio.to_thread(main, bad) == 1
    assert "invalid windows='0'" in capsys.readouterr().err


FILL = """
INSERT INTO crashlog.round_multipliers (platform, game, game_round_id, round_number, multiplier,
    observers, readings, min_multiplier, max_multiplier, disagreement, first_seen_at,
    last_seen_at, first_position)
SELECT 'demo', 'g' || (i % 3), 'r' || i, i, m, 1, 1, m, m, false, t, t, i
FROM generate_series($1::int, $2::int) AS i,
     LATERAL (SELECT round((100 + (i * 7919) % 2000) / 100.0, 2) AS m,
                     '2025-01-01'::timestamptz + i * interval '1 second' AS t) AS v
"""


async def peak_ml_export_memory(conn: asyncpg.Connection, tmp_path: Path) -> int:
    tracemalloc.start()
    try:
        await export_multipliers(conn, tmp_path / "ml.jsonl", "jsonl", features=FeatureSpec())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_ml_export_memory_stays_flat_as_the_series_grows(
    conn: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "CHUNK", 500)  # several chunks, in a short test
    await conn.execute(FILL, 1, 1_500)
    small = await peak_ml_export_memory(conn, tmp_path)
    await conn.execute(FILL, 1_501, 6_000)
    large = await peak_ml_export_memory(conn, tmp_path)
    rows = (tmp_path / "ml.jsonl").read_bytes().splitlines()
    assert len(rows) == 6_000 and json.loads(rows[-1])["prior_rounds"] == 1_999
    # Four times the rounds; had the series been held, the peak would grow about fourfold.
    assert large < 1.5 * small, (small, large)
