"""``check_quality`` without a database (analytics/quality.py and the checks of
analytics/quality_checks.py): fair data passes at the stated rate; each corruption is caught by
its own check. (``quality_report`` and ``crashlog quality`` on a database:
tests/integration/test_quality_report.py.)"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from helpers.quality import START, verdicts

from crashlog.analytics import check_quality
from crashlog.analytics.fit import value_probability
from crashlog.analytics.inference import binomial_mid_p, holm_adjust
from crashlog.analytics.quality import EXACT_VALUES, repeat_probability
from crashlog.analytics.quality import STATISTICAL_CHECKS as STATISTICAL
from crashlog.law import CENT, instant_bust_probability, survival
from crashlog.simulator import CrashGame

D = Decimal


def fair_rows(seed: int, n: int = 4000, rtp: float = 0.97) -> list[dict[str, Any]]:
    """Rounds as round_multipliers holds them, from a fair game: every check can be made."""
    jitter = random.Random(seed)
    return [
        {
            "multiplier": crash,
            "game_round_id": str(500_000 + i),
            "first_seen_at": START + timedelta(seconds=10 * i + jitter.uniform(0, 5)),
            "observers": 2,
            "disagreement": False,
            "ocr_confidence": 0.9 + jitter.uniform(0, 0.1),
            "quality_flags": [],
        }
        for i, crash in enumerate(CrashGame(rtp, seed).crashes(n))
    ]


# -- the statistics against independent computations ---------------------------------------


def brute_mid_p(k: int, n: int, p: float, alternative: str = "two-sided") -> float:
    pmf = [math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(n + 1)]
    upper = sum(pmf[k:]) - pmf[k] / 2
    lower = sum(pmf[: k + 1]) - pmf[k] / 2
    return upper if alternative == "greater" else min(1.0, 2 * min(lower, upper))


@pytest.mark.parametrize(("n", "p"), [(10, 0.5), (40, 0.04), (200, 0.0024), (60, 0.7)])
def test_binomial_mid_p_equals_the_sum_of_the_pmf(n: int, p: float) -> None:
    for k in range(n + 1):
        for alternative in ("two-sided", "greater"):
            got = binomial_mid_p(k, n, p, alternative=alternative)
            assert got == pytest.approx(brute_mid_p(k, n, p, alternative), abs=1e-12), (k, alternative)


def test_binomial_mid_p_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="successes=5, trials=3"):
        binomial_mid_p(5, 3, 0.5)
    with pytest.raises(ValueError, match="probability=1.5"):
        binomial_mid_p(1, 3, 1.5)


def test_holm_adjust_matches_the_step_down_by_hand() -> None:
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 -> max(0.06, 0.04)
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.9, 0.8]) == [1.0, 1.0]
    assert holm_adjust([]) == []


def test_repeat_probability_is_the_sum_of_squares_over_the_grid() -> None:
    # Independently, through survival(): every grid value up to 100.00, the rest is < 1e-8.
    rtp = 0.97
    total = math.fsum((survival(D(h) / 100, rtp) - survival(D(h + 1) / 100, rtp)) ** 2 for h in range(100, 10_000))
    assert repeat_probability(rtp) == pytest.approx(total, abs=1e-8)
    assert repeat_probability(rtp) > instant_bust_probability(rtp) ** 2


def test_value_probability_is_exact() -> None:
    assert value_probability(D("2.00"), 0.97) == pytest.approx(0.97 / 2 - 0.97 / 2.01, rel=1e-12)
    assert sum(value_probability(D(h) / 100) for h in range(100, 2000)) == pytest.approx(
        1 - survival(D("20.00")), rel=1e-9
    )


# -- fair data ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_fair_data_is_all_ok(seed: int) -> None:
    report = check_quality(fair_rows(seed))
    assert set(verdicts(report).values()) == {"ok"}, report.shown_checks()
    assert report.verdict == "ok" and not report.suspects
    assert report.significance == 0.01 and report.rtp_source == "given"


def test_fair_data_at_another_rtp_is_ok_only_under_that_rtp() -> None:
    rows = fair_rows(3, n=20_000, rtp=0.90)
    assert check_quality(rows, rtp=0.90).verdict == "ok"
    wrong = check_quality(rows, rtp=0.99)
    assert wrong.check("instant_busts").verdict == "suspect"
    assert "too many 1.00x busts" in wrong.check("instant_busts").detail


def false_alarms(seeds: range, n: int, significance: float) -> int:
    return sum(1 for s in seeds if check_quality(fair_rows(s, n), significance=significance).suspects)


def test_fair_data_false_alarms_stay_near_the_significance() -> None:
    # 60 seeds at 5%: about 2 reports with a suspect; 9 or more would happen by chance < 0.1%.
    assert false_alarms(range(100, 160), 1500, 0.05) <= 8


@pytest.mark.slow
def test_fair_data_false_alarm_rate_is_about_the_significance() -> None:
    # Holm over exact mid-p tests: the share of fair reports with any suspect is at most
    # about alpha (measured 3.0% at 5% over 1,000 seeds, 0.35% at 1% over 2,000).
    seeds = 600
    alarms = false_alarms(range(1000, 1000 + seeds), 2000, 0.05)
    assert seeds * 0.05 / 4 <= alarms <= seeds * 0.05 + 3 * math.sqrt(seeds * 0.05)


def test_bare_values_and_crashlog_rounds_rows_are_accepted() -> None:
    values = list(CrashGame(0.97, 8).crashes(3000))
    report = check_quality([float(v) for v in values])
    assert report.rounds == 3000
    assert verdicts(report)["instant_busts"] == "ok" and verdicts(report)["off_grid"] == "ok"
    assert verdicts(report)["round_id_gaps"] == "insufficient data"
    rows = [{"crash_multiplier": str(v), "occurred_at": START + timedelta(seconds=i)} for i, v in enumerate(values)]
    assert verdicts(check_quality(rows))["time_gaps"] == "ok"


def test_bad_input_is_refused_naming_it() -> None:
    # A cell that is not a number is counted and quoted, never an abort (issue 17).
    unparseable = check_quality(["abc", D("2.00")]).check("unparseable_values")
    assert unparseable.verdict == "suspect" and "'abc'" in unparseable.detail
    with pytest.raises(ValueError, match="law='nope'"):
        check_quality([D("2.00")], law="nope")
    with pytest.raises(ValueError, match="rtp=97"):
        check_quality([D("2.00")], rtp=97)
    with pytest.raises(ValueError, match="significance=1.5"):
        check_quality([D("2.00")], significance=1.5)


def test_a_few_rounds_are_insufficient_data_not_ok() -> None:
    report = check_quality(fair_rows(1, n=30))
    for name in STATISTICAL:
        assert report.check(name).verdict == "insufficient data", name
    assert report.check("off_grid").verdict == "ok" and report.verdict == "insufficient data"
    assert check_quality([]).verdict == "insufficient data"


# -- each corruption, caught by its own check ------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_a_reader_returning_2_and_4_too_often(seed: int) -> None:
    rows = fair_rows(seed)
    spoil = random.Random(seed)
    for row in spoil.sample(rows, 60):  # 1.5% of the rounds read as 2.00 or 4.00
        row["multiplier"] = spoil.choice([D("2.00"), D("4.00")])
    report = check_quality(rows)
    assert report.check("exact_2.00").verdict == "suspect"
    assert report.check("exact_4.00").verdict == "suspect"
    assert report.check("whole_half_values").verdict == "suspect"
    assert "screen reader" in report.check("exact_2.00").detail
    assert report.check("exact_3.00").verdict != "suspect"
    assert report.check("instant_busts").verdict == "ok"
    assert report.check("exact_2.00") in report.shown_checks()


@pytest.mark.parametrize("seed", range(3))
def test_busts_stored_as_null(seed: int) -> None:
    rows = [r for r in fair_rows(seed) if r["multiplier"] != D("1.00")]
    for row in rows:  # dropped, the ids and times say nothing: only the share can tell
        row["game_round_id"] = None
    busts = check_quality(rows).check("instant_busts")
    assert busts.verdict == "suspect" and "as null" in busts.detail
    assert busts.p_value is not None and busts.p_value < 1e-6


def test_half_the_busts_dropped_is_seen_too() -> None:
    rows = fair_rows(4, n=10_000)
    busts = [r for r in rows if r["multiplier"] == D("1.00")]
    kept = [r for r in rows if r not in busts[::2]]
    assert check_quality(kept).check("instant_busts").verdict == "suspect"


@pytest.mark.parametrize("seed", range(3))
def test_three_decimal_values(seed: int) -> None:
    rows = fair_rows(seed)
    spoil = random.Random(seed)
    for row in spoil.sample(rows, 400):
        row["multiplier"] = row["multiplier"] + D(spoil.randint(1, 9)) / 1000
    report = check_quality(rows)
    grid = report.check("off_grid")
    assert grid.verdict == "suspect" and grid.figure.startswith("400 of 4,000")
    # The law is checked on the values left on the grid, which are still fair.
    assert all(report.check(name).verdict == "ok" for name in STATISTICAL)


@pytest.mark.parametrize("seed", range(3))
def test_duplicated_rows(seed: int) -> None:
    rows = fair_rows(seed)
    spoil = random.Random(seed)
    doubled: list[dict[str, Any]] = []
    for row in rows:
        doubled.append(row)
        if spoil.random() < 0.03:
            doubled.append(dict(row))
    report = check_quality(doubled)
    ids = report.check("round_id_gaps")
    assert ids.verdict == "suspect" and "duplicated rows" in ids.detail
    # Without ids, only the order is left: the repeats give them away.
    for row in doubled:
        row["game_round_id"] = None
    repeats = check_quality(doubled).check("repeats")
    assert repeats.verdict == "suspect" and "duplicated rows" in repeats.detail


def test_a_gap_in_ids_and_in_time() -> None:
    rows = fair_rows(2)
    gapped = rows[:1500] + rows[1600:]
    report = check_quality(gapped)
    ids = report.check("round_id_gaps")
    assert ids.verdict == "suspect" and ids.figure.startswith("100 missing in 1 gaps")
    time = report.check("time_gaps")
    assert time.verdict == "suspect" and time.figure.startswith("1 gaps")
    assert report.check("repeats").verdict == "ok"  # rounds either side of the gap are not pairs


def test_ids_that_are_not_integers_cannot_show_gaps() -> None:
    rows = fair_rows(2, n=200)
    for row in rows:
        row["game_round_id"] = f"r-{row['game_round_id']}"
    assert check_quality(rows).check("round_id_gaps").verdict == "insufficient data"


def test_a_disagreeing_observer() -> None:
    rows = fair_rows(5)
    for row in rows[::40]:
        row["disagreement"] = True
        row["dissenters"] = ["bot-b"]
        row["quality_flags"] = ["disagreement"]
        row["ocr_confidence"] = 0.55
    report = check_quality(rows)
    observers = report.check("observer_disagreement")
    assert observers.verdict == "suspect" and "bot-b on 100" in observers.detail
    ocr = report.check("ocr_confidence")
    assert ocr.verdict == "suspect" and "flagged rounds: median 0.55 (100)" in ocr.detail


def test_values_below_one() -> None:
    rows = fair_rows(6, n=500) + [{"multiplier": D("0.50")}]
    below = check_quality(rows).check("below_one")
    assert below.verdict == "suspect" and below.figure.startswith("1 of 501")


# -- the command --------------------------------------------------------------------------


def test_the_quality_command_refuses_a_bad_time(capsys: pytest.CaptureFixture[str]) -> None:
    from crashlog.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["quality", "--game", "g", "--platform", "p", "--since", "yesterday"])
    assert exit.value.code == 2 and "--since" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main(["quality", "--help"])
    assert exit.value.code == 0 and "--dsn" in capsys.readouterr().out


def test_exact_values_cover_whole_and_half_values() -> None:
    assert EXACT_VALUES[0] == D("1.5") and EXACT_VALUES[-1] == D("10")
    assert all((v * 2) % 1 == 0 and v == v.quantize(CENT) for v in EXACT_VALUES)


def test_mostly_refused_values_imply_no_rtp() -> None:
    # Stake-like raw floats: most values off the cent grid. The bust check still reports, but
    # an RTP from the few on-grid values would describe them, not the game (issue 17, item 5).
    values = [D("2.00"), D("1.00")] * 10 + [D("2.3456789")] * 200
    detail = check_quality(values).check("instant_busts").detail
    assert "no RTP is implied: only 20 of 220 values are usable" in detail
    assert "implies r =" not in detail
    fair = check_quality(list(CrashGame(0.97, 8).crashes(3000))).check("instant_busts").detail
    assert "the share implies r =" in fair
