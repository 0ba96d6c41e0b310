"""Signals scored against what happened, without a database (analytics/signals.py and
analytics/signal_scoring.py): chance is r/c, not 50%, and luck is not skill.

``score_signals`` is fed simulated signals on simulated rounds. (Signals emitted through a
logger and read back with ``signal_report`` and ``crashlog signals``:
tests/integration/test_signal_report.py.)
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from helpers.signals import START, TWO

from crashlog.analytics import benjamini_hochberg, score_signals
from crashlog.analytics.inference import binomial_two_sided
from crashlog.analytics.signals import BETTER, NO_EVIDENCE, WORSE, chance_of_hit, holdout_split
from crashlog.simulator import CrashGame

D = Decimal


def signal(
    kind: str,
    target: Decimal | str | None,
    hit: bool | None,
    confidence: float | None = None,
    at: int = 0,
) -> dict[str, Any]:
    """One resolved signal as ``score_signals`` takes it."""
    return {
        "signal_type": kind,
        "predicted_multiplier": None if target is None else D(target),
        "confidence_score": confidence,
        "hit": hit,
        "occurred_at": START + timedelta(seconds=at),
    }


def random_signals(seed: int, rounds: int = 600) -> Iterator[dict[str, Any]]:
    """Signals that know nothing: 'random' predicts 2.00 on a random half of the rounds,
    'mixed' a random target of 1.50, 2.00 or 5.00 on every round."""
    pick = random.Random(seed + 10_000)
    for i, crash in enumerate(CrashGame(seed=seed).crashes(rounds)):
        if pick.random() < 0.5:
            yield signal("random", TWO, crash >= TWO, pick.random(), at=i)
        target = pick.choice([D("1.50"), TWO, D("5.00")])
        yield signal("mixed", target, crash >= target, at=i)


# -- the verdicts -------------------------------------------------------------------------


def test_signals_that_know_nothing_show_no_evidence_of_skill_in_most_seeds() -> None:
    seeds = range(60)
    false_alarms = [
        seed
        for seed in seeds
        if any(t.verdict != NO_EVIDENCE for t in score_signals(random_signals(seed)).types)
    ]
    # Under chance alone BH keeps the chance of any false call per report at most q = 5%:
    # about 3 of 60 reports; 8 or more would happen by luck with probability under 1%.
    assert len(false_alarms) < 8, false_alarms
    report = score_signals(random_signals(0))
    assert report.type("random").baseline == pytest.approx(0.97 / 2)
    assert report.type("mixed").targets == (D("1.50"), TWO, D("5.00"))


def test_long_shots_that_hit_by_luck_are_not_called_skill() -> None:
    """Few signals at 100x and 20x expect under one hit: a normal approximation there called
    three lucky hits in fifty 'better than chance' (p = 0.0003); the exact law says p = 0.025,
    and over many reports of pure chance the false calls stay within the 5% BH allows."""
    lucky = [signal("moonshot", D("100.00"), i < 3, at=i) for i in range(50)]
    moonshot = score_signals(lucky, rtp=0.97).type("moonshot")
    assert moonshot.p_value == pytest.approx(binomial_two_sided(3, 50, 0.97 / 100))
    false_calls = 0
    for seed in range(400):
        pick = random.Random(seed)
        rows = [signal(kind, D(target), pick.random() < 0.97 / float(target), at=i)
                for i in range(25) for kind, target in (("moonshot", "100.00"), ("long", "20.00"))]
        report = score_signals(rows, rtp=0.97)
        false_calls += any(t.verdict != NO_EVIDENCE for t in report.types)
    # At most 5% of 400 reports by chance: 20 expected at worst; 33 or more has p < 0.5%.
    assert false_calls < 33, false_calls


@pytest.mark.parametrize("seed", range(5))
def test_a_signal_that_peeks_at_the_crash_is_better_than_chance(seed: int) -> None:
    """'cheat' knows the crash point but is right only part of the time: it predicts 2.00 on
    the rounds that reach it, and on a quarter of the others; 'contrarian' predicts 2.00 on
    rounds that bust below it (worse than chance); 'random' knows nothing."""
    pick = random.Random(seed)
    rows = []
    for i, crash in enumerate(CrashGame(seed=seed).crashes(400)):
        reaches = crash >= TWO
        if reaches or pick.random() < 0.25:
            rows.append(signal("cheat", TWO, reaches, 0.8 if reaches else 0.3, at=i))
        if not reaches and pick.random() < 0.2:
            rows.append(signal("contrarian", TWO, False, 0.9, at=i))
        if pick.random() < 0.5:
            rows.append(signal("random", TWO, reaches, 0.485, at=i))
    report = score_signals(rows)
    cheat = report.type("cheat")
    assert cheat.verdict == BETTER and cheat.survives_bh
    assert cheat.baseline not in cheat.interval
    assert cheat.brier_skill is not None and cheat.brier_skill > 0  # its confidences help
    contrarian = report.type("contrarian")
    assert contrarian.verdict == WORSE and contrarian.hits == 0
    assert contrarian.brier_skill is not None and contrarian.brier_skill < 0
    # Forecasting the baseline itself has no skill, and no penalty.
    assert report.type("random").brier_skill == pytest.approx(0.0, abs=1e-9)


def test_an_interval_that_excludes_the_baseline_is_not_enough_without_bh() -> None:
    """59 hits in 100 at 2.00 (baseline 48.5): exact p = 0.045 alone; one of ten types, BH
    needs p <= 0.005 for the smallest, so the verdict falls back to no evidence of skill."""
    lucky = [signal("lucky", TWO, i < 59) for i in range(100)]
    alone = score_signals(lucky).type("lucky")
    assert alone.baseline not in alone.interval
    assert alone.p_value == pytest.approx(binomial_two_sided(59, 100, 0.485))
    assert alone.p_value == pytest.approx(0.0452, abs=0.0005)
    assert alone.verdict == BETTER

    others = [signal(f"null{k}", TWO, i < 49) for k in range(9) for i in range(100)]
    among = score_signals(lucky + others).type("lucky")
    assert among.baseline not in among.interval and not among.survives_bh
    assert among.adjusted_p == pytest.approx(min(1.0, 10 * alone.p_value))
    assert among.verdict == NO_EVIDENCE


def test_with_one_target_the_test_and_the_wilson_interval_agree() -> None:
    """The z test against the baseline is the score test the Wilson interval inverts."""
    baseline = chance_of_hit(TWO)
    for hits in range(30, 70):
        score = score_signals([signal("t", TWO, i < hits) for i in range(100)]).type("t")
        assert (score.p_value < 0.05) == (baseline not in score.interval), hits


# -- the pieces against published or hand-computed values ---------------------------------


def test_benjamini_hochberg_on_the_papers_worked_example() -> None:
    """Benjamini & Hochberg (1995), JRSS B 57(1):289-300, section 4: the 15 p-values of
    Neuhaus et al. (1992); at q = 0.05 the procedure rejects the four smallest (Bonferroni
    only three). Adjusted values by hand: m p_(k) / k, made monotone from the top."""
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
         0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000]  # fmt: skip
    shuffled = [p[i] for i in (9, 3, 0, 14, 5, 1, 12, 7, 2, 10, 4, 13, 6, 11, 8)]
    rejected, adjusted = benjamini_hochberg(shuffled, 0.05)
    assert sorted(v for v, r in zip(shuffled, rejected, strict=True) if r) == p[:4]
    by_value = dict(zip(shuffled, adjusted, strict=True))
    assert by_value[0.0001] == pytest.approx(15 * 0.0001 / 1)
    assert by_value[0.0019] == pytest.approx(15 * 0.0019 / 3)
    assert by_value[0.0095] == pytest.approx(15 * 0.0095 / 4)  # 0.035625 <= 0.05
    assert by_value[0.0201] == pytest.approx(15 * 0.0201 / 5)  # 0.0603 > 0.05
    assert by_value[0.0278] == by_value[0.0298] == pytest.approx(15 * 0.0298 / 7)
    assert by_value[1.0] == 1.0
    assert benjamini_hochberg([], 0.05) == ([], [])
    with pytest.raises(ValueError, match="q=1.5"):
        benjamini_hochberg([0.1], 1.5)


@pytest.mark.parametrize(
    ("hits", "n", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, table I, method 3 (Wilson score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
    ],
)
def test_a_types_interval_is_wilsons(hits: int, n: int, low: float, high: float) -> None:
    score = score_signals([signal("t", "3.00", i < hits) for i in range(n)]).type("t")
    assert (score.n, score.hits) == (n, hits)
    assert score.interval.low == pytest.approx(low, abs=0.00006)
    assert score.interval.high == pytest.approx(high, abs=0.00006)


def test_brier_score_skill_and_reliability_by_hand() -> None:
    # Forecasts 0.9, 0.6, 0.2, 0.5 of outcomes 1, 0, 0, 1 at target 2.00 (chance 0.485):
    # BS = (0.01 + 0.36 + 0.04 + 0.25) / 4 = 0.165;
    # BS_ref = (0.515^2 + 0.485^2 + 0.485^2 + 0.515^2) / 4 = 0.250225;
    # skill = 1 - 0.165 / 0.250225 = 0.340593...
    rows = [
        signal("s", TWO, True, 0.9),
        signal("s", TWO, False, 0.6),
        signal("s", TWO, False, 0.2),
        signal("s", TWO, True, 0.5),
        signal("s", TWO, True, None),  # counted in the hit rate, not in the Brier score
    ]
    score = score_signals(rows).type("s")
    assert (score.n, score.hits, score.forecasts) == (5, 3, 4)
    assert score.brier == pytest.approx(0.165)
    assert score.brier_baseline == pytest.approx(0.250225)
    assert score.brier_skill == pytest.approx(1 - 0.165 / 0.250225)
    assert score.brier_skill == pytest.approx(0.340593, abs=1e-6)
    bins = [(b.low, b.high, b.count, b.mean_forecast, b.observed_rate) for b in score.reliability]
    assert bins == [
        (0.2, 0.3, 1, pytest.approx(0.2), 0.0),
        (0.5, 0.6, 1, pytest.approx(0.5), 1.0),
        (0.6, 0.7, 1, pytest.approx(0.6), 0.0),
        (0.9, 1.0, 1, pytest.approx(0.9), 1.0),
    ]
    assert all(b.mean_baseline == pytest.approx(0.485) for b in score.reliability)
    # A confidence of exactly 1.0 falls in the last bin.
    certain = score_signals([signal("c", TWO, True, 1.0)]).type("c")
    assert [(b.low, b.high, b.count) for b in certain.reliability] == [(0.9, 1.0, 1)]


def test_mixed_targets_are_tested_against_the_mean_of_r_over_c() -> None:
    # 40 signals at 2.00 (chance 0.485), 60 at 4.00 (chance 0.2425), 40 hits in all:
    # expected 19.4 + 14.55 = 33.95, variance 40 (0.485)(0.515) + 60 (0.2425)(0.7575).
    rows = [signal("m", TWO, i < 25) for i in range(40)]
    rows += [signal("m", "4.00", i < 15) for i in range(60)]
    score = score_signals(rows).type("m")
    expected = 40 * 0.485 + 60 * 0.2425
    variance = 40 * 0.485 * 0.515 + 60 * 0.2425 * 0.7575
    assert score.baseline == pytest.approx(expected / 100)
    assert score.expected_hits == pytest.approx(33.95)
    assert score.z == pytest.approx((40 - expected) / math.sqrt(variance))
    # The exact law of the hits, one signal at a time: twice its smaller tail at 40.
    law = [1.0]
    for chance in [0.485] * 40 + [0.2425] * 60:
        law = [a * (1 - chance) + b * chance for a, b in zip(law + [0.0], [0.0] + law)]
    assert score.p_value == pytest.approx(2 * min(sum(law[:41]), sum(law[40:])))


def test_chance_follows_the_law_on_the_two_decimal_grid() -> None:
    assert chance_of_hit("2.00") == pytest.approx(0.485)
    assert chance_of_hit("2.005") == chance_of_hit("2.01") == pytest.approx(0.97 / 2.01)
    assert chance_of_hit("1.00") == 1.0  # every round reaches 1.00
    assert chance_of_hit("4.00", rtp=0.99) == pytest.approx(0.2475)
    # A type that always predicts 1.00 is always right, and shows no skill for it.
    sure = score_signals([signal("sure", "1.00", True) for _ in range(50)]).type("sure")
    assert (sure.hit_rate, sure.baseline, sure.p_value, sure.verdict) == (1.0, 1.0, 1.0, NO_EVIDENCE)


def test_the_holdout_scores_only_the_last_part_in_time() -> None:
    """A signal that was 'fitted' on the first 70% (it hits every time there) and knows
    nothing after: the holdout judges it on the later 30% only."""
    crashes = list(CrashGame(seed=3).crashes(1000))
    rows = [
        signal("fitted", TWO, True if i < 700 else crash >= TWO, at=i)
        for i, crash in enumerate(crashes)
    ]
    rows.append(signal("fitted", None, None))  # no target: unscored, never in either part
    random.Random(1).shuffle(rows)  # the holdout orders by time, not by arrival
    whole = score_signals(rows)
    assert whole.type("fitted").verdict == BETTER
    held = score_signals(rows, holdout=0.3)
    fitted = held.type("fitted")
    assert (held.train, fitted.n, held.unscored) == (700, 300, 1)
    assert fitted.hits == sum(c >= TWO for c in crashes[700:])
    assert fitted.verdict == NO_EVIDENCE
    assert held.scored_from == START + timedelta(seconds=700)
    # The test part is the last `holdout` share, without float dust: 10 x (1 - 0.9) is 0.999...
    assert [holdout_split(n, h) for n, h in ((10, 0.9), (1000, 0.3), (7, 0.5))] == [1, 700, 3]
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match=f"holdout={bad}"):
            score_signals(rows, holdout=bad)


def test_signals_without_a_target_or_an_outcome_are_counted_not_scored() -> None:
    report = score_signals([signal("x", None, None), signal("x", TWO, None)], unresolved=4)
    assert (report.signals, report.unscored, report.unresolved, report.types) == (0, 2, 4, ())
    with pytest.raises(ValueError, match="q=0"):
        score_signals([], q=0)


def test_a_report_as_plain_values() -> None:
    plain = score_signals([signal("s", TWO, True, 0.7), signal("s", TWO, False, 0.2)]).as_dict()
    json.dumps(plain, default=str)
    (only,) = plain["types"]
    assert only["interval"] == [pytest.approx(0.0945, abs=1e-4), pytest.approx(0.9055, abs=1e-4)]
    assert only["reliability"][0]["count"] == 1 and plain["rtp_source"] == "given"


# -- the command ------------------------------------------------------------------------


def test_crashlog_signals_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from crashlog.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["signals", "--help"])
    assert exit.value.code == 0
    shown = capsys.readouterr().out
    assert all(option in shown for option in ("--game", "--platform", "--bot", "--holdout", "--rtp"))
