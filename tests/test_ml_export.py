"""The ML export: features from earlier rounds only, exact outcome columns, a uniform PIT,
the r/c baseline, quality flags carried; through the projections, every format and the CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import crashlog
from crashlog import exports
from crashlog.analytics import wilson_interval
from crashlog.cli import main
from crashlog.events import RoundObserved
from crashlog.exports import export_multipliers
from crashlog.features import FeatureSpec, FeatureStream, ml_columns
from crashlog.simulator import CrashGame

START = datetime(2025, 5, 1, tzinfo=UTC)
SPEC = FeatureSpec(lags=3, windows=(5, 20))
FEATURES = [n for n, _ in ml_columns(SPEC)][ml_columns(SPEC).index(("prior_rounds", "int")) :]


def source(game: str, n: int, multiplier: Any, flags: list[str] | None = None) -> dict[str, Any]:
    """A row of crashlog.round_multipliers as the export reads it."""
    return {
        "platform": "demo",
        "game": game,
        "game_round_id": f"{game}-{n}",
        "event_id": None,
        "round_number": n,
        "first_seen_at": START + timedelta(seconds=n),
        "multiplier": Decimal(str(multiplier)),
        "observers": 1,
        "readings": 1,
        "ocr_confidence": None,
        "quality_flags": flags or [],
    }


def two_games(n: int = 400) -> list[dict[str, Any]]:
    """Two interleaved fair series, so a feature that mixed games would show."""
    a, b = CrashGame(seed=21).crashes(n), CrashGame(seed=22).crashes(n)
    rows = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        rows.append(source("aviator", i, x))
        if i % 3:
            rows.append(source("jetx", i, y))
    return rows


def as_dicts(rows: list[tuple], spec: FeatureSpec = SPEC) -> list[dict[str, Any]]:
    names = [n for n, _ in ml_columns(spec)]
    return [dict(zip(names, row, strict=True)) for row in rows]


def ml_rows(
    sources: list[dict[str, Any]], spec: FeatureSpec = SPEC, **options: Any
) -> list[dict[str, Any]]:
    """The export's rows of ``sources``, by column name."""
    return as_dicts(FeatureStream(spec, **options).batch(sources), spec)


def reference(history: list[Decimal], spec: FeatureSpec = SPEC) -> dict[str, Any]:
    """The features of a round from the list of its series' earlier multipliers, directly."""
    h = history
    got: dict[str, Any] = {"prior_rounds": len(h)}
    for k in range(1, spec.lags + 1):
        got[f"lag_{k}"] = h[-k] if k <= len(h) else None
    for w in spec.windows:
        last = h[-w:] if len(h) >= w else None
        got[f"mean_log_{w}"] = last and math.fsum(math.log(float(x)) for x in last) / w
        got[f"instant_bust_share_{w}"] = last and sum(x == 1 for x in last) / w
        got[f"share_at_least_2_{w}"] = last and sum(x >= 2 for x in last) / w
    busts = [i for i, x in enumerate(h) if x == 1]
    big = [i for i, x in enumerate(h) if x >= 10]
    got["rounds_since_instant_bust"] = len(h) - 1 - busts[-1] if busts else None
    got["rounds_since_10x"] = len(h) - 1 - big[-1] if big else None
    return got


def assert_features_match_reference(
    rows: list[dict[str, Any]], multipliers: list[Decimal], spec: FeatureSpec = SPEC
) -> None:
    """``rows`` (one series, in order) carry the reference features of ``multipliers``."""
    assert len(rows) == len(multipliers)
    for i, row in enumerate(rows):
        want = reference(multipliers[:i], spec)
        for name, value in want.items():
            if isinstance(value, float):
                assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-14), (i, name)
            else:
                assert row[name] == value, (i, name)


def ks_distance(values: list[float]) -> float:
    """Kolmogorov-Smirnov distance of ``values`` from the uniform law on [0, 1)."""
    u = sorted(values)
    n = len(u)
    return max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(u))


# -- no leak --------------------------------------------------------------------------------


def test_features_equal_a_direct_computation_from_earlier_rounds_of_the_same_game() -> None:
    rows = two_games()
    out = ml_rows(rows)
    for game in ("aviator", "jetx"):
        mine = [r for r in out if r["game"] == game]
        assert_features_match_reference(mine, [r["multiplier"] for r in mine])
    assert any(r["rounds_since_instant_bust"] == 0 for r in out)  # the data has busts
    assert any(r["rounds_since_10x"] == 0 for r in out)  # and 10x rounds


def test_a_round_row_does_not_depend_on_any_later_round() -> None:
    rows = two_games()
    full = FeatureStream(SPEC).batch(rows)
    # Cut the series short: every row kept is the same.
    for cut in (0, 1, 7, 55, 230, len(rows) - 1):
        assert FeatureStream(SPEC).batch(rows[:cut]) == full[:cut]
    # Change a round: the rows before it are unchanged, and so are its own features.
    for j in (3, 80, 301):
        for value in ("1.00", "250.00"):
            changed = [dict(r) for r in rows]
            changed[j]["multiplier"] = Decimal(value)
            again = FeatureStream(SPEC).batch(changed)
            assert again[:j] == full[:j]
            changed_row, full_row = as_dicts(again[j : j + 1])[0], as_dicts(full[j : j + 1])[0]
            assert [changed_row[k] for k in FEATURES] == [full_row[k] for k in FEATURES]
        assert any(a != b for a, b in zip(again[j + 1 :], full[j + 1 :], strict=True))


# -- the round's own columns ----------------------------------------------------------------


def test_instant_bust_log_multiplier_and_hit_are_exact() -> None:
    values = ["1.00", "1.0", "1.01", "2.00", "1.99", "1000000.00"]
    out = ml_rows([source("g", i, v) for i, v in enumerate(values)], FeatureSpec())
    assert [r["instant_bust"] for r in out] == [True, True, False, False, False, False]
    assert [r["log_multiplier"] for r in out] == [math.log(float(v)) for v in values]
    assert out[0]["log_multiplier"] == 0.0
    assert [r["hit"] for r in out] == [False, False, False, True, False, True]
    assert {r["baseline_hit_probability"] for r in out} == {0.97 / 2}


def test_baseline_is_rtp_over_target_and_fair_hits_agree_with_it() -> None:
    spec = FeatureSpec(target="3.00", rtp=0.99)
    rows = [source("g", i, x) for i, x in enumerate(CrashGame(rtp=0.99, seed=4).crashes(5000))]
    out = ml_rows(rows, spec)
    assert {r["baseline_hit_probability"] for r in out} == {0.99 / 3}
    assert all(r["hit"] == (r["multiplier"] >= 3) for r in out)
    assert 0.99 / 3 in wilson_interval(sum(r["hit"] for r in out), len(out), 0.999)


def test_an_off_grid_target_has_the_baseline_of_the_next_cent() -> None:
    # hit = multiplier >= 2.005 is multiplier >= 2.01 on the displayed grid: chance r / 2.01.
    out = ml_rows([source("g", 0, "2.00"), source("g", 1, "2.01")], FeatureSpec(target="2.005", rtp=0.97))
    assert [r["hit"] for r in out] == [False, True]
    assert {r["baseline_hit_probability"] for r in out} == {0.97 / 2.01}


def test_quality_flags_are_carried_and_off_grid_rounds_get_no_pit() -> None:
    rows = [
        source("g", 0, "2.45"),
        source("g", 1, "2.457", ["off_grid"]),
        source("g", 2, "3.00", ["disagreement", "low_ocr_confidence"]),
    ]
    out = ml_rows(rows, FeatureSpec())
    assert [r["quality_flags"] for r in out] == [
        [],
        ["off_grid"],
        ["disagreement", "low_ocr_confidence"],
    ]
    assert out[1]["pit"] is None and out[1]["log_multiplier"] == math.log(2.457)
    assert out[0]["pit"] is not None and out[2]["pit"] is not None


def test_excluding_flagged_rounds_keeps_them_in_the_history_of_later_rounds() -> None:
    rows = two_games(200)
    for i in (10, 11, 90, 150):
        rows[i]["quality_flags"] = ["disagreement"]
    full = FeatureStream(SPEC).batch(rows)
    kept = FeatureStream(SPEC, exclude_flagged=True).batch(rows)
    assert kept == [row for row, src in zip(full, rows, strict=True) if not src["quality_flags"]]
    assert len(kept) == len(rows) - 4


# -- PIT ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pit_is_uniform_on_fair_data_and_rejects_the_wrong_rtp(seed: int) -> None:
    n = 20_000
    rows = [source("g", i, x) for i, x in enumerate(CrashGame(rtp=0.97, seed=seed).crashes(n))]
    fair = [r["pit"] for r in ml_rows(rows, FeatureSpec(seed=seed))]
    bound = 1.95 / math.sqrt(n)  # the KS test's critical distance at the 0.1% level
    assert ks_distance(fair) < bound
    # The same data under rtp 0.99: too few instant busts for that law, and the PIT sees it.
    wrong = ml_rows(rows, FeatureSpec(seed=seed, rtp=0.99))
    assert ks_distance([r["pit"] for r in wrong]) > bound


def test_pit_is_reproducible_for_a_seed_whatever_the_export_holds() -> None:
    rows = two_games(300)
    first = ml_rows(rows, FeatureSpec(seed=5))
    again = ml_rows(rows, FeatureSpec(seed=5))
    other = ml_rows(rows, FeatureSpec(seed=6))
    assert [r["pit"] for r in first] == [r["pit"] for r in again]
    assert sum(a["pit"] != b["pit"] for a, b in zip(first, other, strict=True)) > 0.99 * len(rows)
    # One game exported alone, or a single round: each round keeps its pit.
    alone = ml_rows([r for r in rows if r["game"] == "jetx"], FeatureSpec(seed=5))
    assert [r["pit"] for r in alone] == [r["pit"] for r in first if r["game"] == "jetx"]
    assert ml_rows(rows[7:8], FeatureSpec(seed=5))[0]["pit"] == first[7]["pit"]


def test_spec_errors_name_the_field_and_value() -> None:
    with pytest.raises(ValueError, match="lags=-1"):
        FeatureSpec(lags=-1)
    with pytest.raises(ValueError, match="windows='10,x'"):
        FeatureSpec(windows="10,x")
    with pytest.raises(ValueError, match="target='1.00'"):
        FeatureSpec(target="1.00")
    with pytest.raises(ValueError, match="rtp=1.5"):
        FeatureSpec(rtp=1.5)
    assert FeatureSpec(windows="100,10").windows == (10, 100)


# -- through the database -------------------------------------------------------------------

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
