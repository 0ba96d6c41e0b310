"""The ML features without a database (crashlog/features.py): features from earlier rounds only,
exact outcome columns, a uniform PIT, the r/c baseline, quality flags carried. (The ML export
through the projections, every format and the CLI: tests/integration/test_features_export.py.)"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from helpers.features import SPEC, START, assert_features_match_reference

from crashlog.analytics import wilson_interval
from crashlog.features import FeatureSpec, FeatureStream, ml_columns
from crashlog.simulator import CrashGame

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
