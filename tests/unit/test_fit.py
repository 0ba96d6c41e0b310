"""fit() calls fair data consistent at its stated rate, names collection problems apart from a
deviating game, and the sequential Monitor keeps its false-alarm bound where naive re-testing
does not.

``CRASHLOG_FIT_SEEDS`` sets how many seeds the calibration runs use (default 200; e.g. 2000
for a tighter check, about ten times as long).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import random
from decimal import Decimal

import pytest

from crashlog.analytics import FitReport, Monitor, fit
from crashlog.analytics.fit import (
    CONSISTENT,
    DATA_QUALITY,
    DEVIATION,
    INSUFFICIENT,
    MIN_ROUNDS,
    STATISTICAL_CHECKS,
)
from crashlog.analytics.inference import (
    binomial_cdf,
    binomial_sf,
    chi_square_sf,
    kolmogorov_sf,
    ks_uniform,
    poisson_sf,
    runs_test,
)
from crashlog.law import instant_bust_probability, survival
from crashlog.simulator import CrashGame, crash_point

D = Decimal
SEEDS = int(os.environ.get("CRASHLOG_FIT_SEEDS", "200"))
ROUNDS = 5_000


# -- bounds on a count of events, computed here independently of the library ------------------


def binomial_pmf(k: int, n: int, p: float) -> float:
    return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                    + k * math.log(p) + (n - k) * math.log1p(-p))


def highest_plausible(trials: int, p: float, tail: float = 0.001) -> int:
    """The smallest k with P(Binomial(trials, p) > k) < tail."""
    above = 1.0
    for k in range(trials + 1):
        above -= binomial_pmf(k, trials, p)
        if above < tail:
            return k
    return trials


def lowest_plausible(trials: int, p: float, tail: float = 0.001) -> int:
    """The largest k with P(Binomial(trials, p) < k) < tail."""
    below = 0.0
    for k in range(trials + 1):
        if below + binomial_pmf(k, trials, p) >= tail:
            return k
        below += binomial_pmf(k, trials, p)
    return trials


# -- data ---------------------------------------------------------------------------------


@functools.cache
def fair(seed: int, rounds: int = ROUNDS, rtp: float = 0.97) -> tuple[Decimal, ...]:
    return tuple(CrashGame(rtp, seed).crashes(rounds))


def corruption_rng(seed: int) -> random.Random:
    # Not the game's seed: the same generator would pick exactly the rounds with small draws.
    return random.Random(f"corrupt-{seed}")


def with_spikes(values: tuple[Decimal, ...], seed: int) -> list[Decimal]:
    """A screen reader that returns 2.00 or 4.00 for 2% of the rounds."""
    rng, out = corruption_rng(seed), list(values)
    for i in rng.sample(range(len(out)), len(out) // 50):
        out[i] = rng.choice([D("2.00"), D("4.00")])
    return out


def without_busts(values: tuple[Decimal, ...], seed: int) -> list[Decimal]:
    """A scraper that drops every 1.00 bust."""
    return [x for x in values if x != 1]


def busts_as_null(values: tuple[Decimal, ...], seed: int) -> list[Decimal | None]:
    """A scraper that stores every 1.00 bust as null."""
    return [None if x == 1 else x for x in values]


def three_decimals(values: tuple[Decimal, ...], seed: int) -> list[Decimal]:
    """A reader that returns a third decimal for 1% of the rounds."""
    rng = corruption_rng(seed)
    return [x + D("0.005") if rng.random() < 0.01 else x for x in values]


def repeated_rows(values: tuple[Decimal, ...], seed: int) -> list[Decimal]:
    """A collector that stores 2% of the rounds twice."""
    rng, out = corruption_rng(seed), []
    for x in values:
        out += [x, x] if rng.random() < 0.02 else [x]
    return out


def streaky_game(seed: int, rounds: int = ROUNDS, rtp: float = 0.97, stay: float = 0.3) -> list[Decimal]:
    """Each round has the law's distribution, but 30% of the time stays on the side of 2.00 it was."""
    rng, out, low = random.Random(seed), [], None
    cut = 1 - rtp / 2  # u below it crashes under 2.00
    for _ in range(rounds):
        if low is not None and rng.random() < stay:
            u = rng.random() * cut if low else cut + rng.random() * (1 - cut)
        else:
            u = rng.random()
        x = crash_point(u, rtp)
        out.append(x)
        low = x < 2
    return out


def steeper_game(seed: int, rounds: int = ROUNDS, rtp: float = 0.97) -> list[Decimal]:
    """A game whose tail falls like (r / x)^(1/1.1), not r / x: same data quality, other law."""
    rng = random.Random(seed)
    return [D(max(100, math.floor(100 * (rtp / (1 - rng.random())) ** 1.1))) / 100 for _ in range(rounds)]


# -- calibration on fair data -------------------------------------------------------------


@functools.cache
def fair_reports(rtp: float | None) -> tuple[FitReport, ...]:
    """fit() at the default alpha of every seed's fair data (shared by the calibration tests)."""
    return tuple(fit(fair(seed), rtp, seed=seed) for seed in range(SEEDS))


def smallest_p(report: FitReport) -> float:
    return min(report.check(name).p_value for name in STATISTICAL_CHECKS)


@pytest.mark.slow
@pytest.mark.parametrize("rtp", [0.97, None], ids=["claimed", "estimated"])
def test_fair_data_is_consistent_at_the_stated_rate(rtp: float | None) -> None:
    # The promise: on data that follow the law, the verdict is not 'consistent' with
    # probability at most alpha (Bonferroni over the statistical checks).
    reports = fair_reports(rtp)
    alpha = reports[0].alpha
    assert alpha == 0.01 and not any(r.flags and r.verdict == CONSISTENT for r in reports)
    alarms = sum(r.verdict != CONSISTENT for r in reports)
    assert alarms <= highest_plausible(SEEDS, alpha), alarms
    # The verdict follows the documented rule: some statistical check below alpha / k.
    assert all((r.verdict != CONSISTENT) == (smallest_p(r) < r.check_level) for r in reports)
    # At alpha = 0.1 the same rule alarms at close to alpha, not a vacuous 0: Bonferroni is
    # not much more cautious than it has to be.
    loose = sum(smallest_p(r) < 0.1 / len(STATISTICAL_CHECKS) for r in reports)
    assert lowest_plausible(SEEDS, 0.1 / 2) <= loose <= highest_plausible(SEEDS, 0.1), loose


@pytest.mark.slow
def test_the_rtp_interval_covers_the_truth_at_its_nominal_rate() -> None:
    reports = fair_reports(0.97)
    covered = sum(0.97 in r.rtp_interval for r in reports)
    assert lowest_plausible(SEEDS, 0.95) <= covered <= highest_plausible(SEEDS, 0.95)
    # The standard error is the spread of the estimate across seeds.
    estimates = [r.rtp_estimate for r in reports]
    mean = sum(estimates) / len(estimates)
    spread = math.sqrt(sum((e - mean) ** 2 for e in estimates) / (len(estimates) - 1))
    assert spread == pytest.approx(reports[0].rtp_stderr, rel=0.25)
    assert mean == pytest.approx(0.97, abs=4 * spread / math.sqrt(len(estimates)))


def test_plain_ks_rejects_fair_data_at_large_n_the_randomized_pit_does_not() -> None:
    values = list(CrashGame(0.97, seed=2024).crashes(200_000))
    # The textbook PIT F(x) = P(X <= x) of a discrete value is not uniform: its KS test
    # rejects data that follow the law exactly.
    cdf = {x: 1 - survival(x + D("0.01"), 0.97) for x in set(values)}
    _, plain_p = ks_uniform(cdf[x] for x in values)
    assert plain_p < 1e-12
    report = fit(values, 0.97)
    assert report.check("ks").p_value > report.check_level
    assert report.verdict == CONSISTENT


# -- collection problems and a deviating game ---------------------------------------------


@pytest.mark.parametrize(
    ("corrupt", "flag"),
    [
        (with_spikes, "whole_value_spikes"),
        (without_busts, "missing_instant_busts"),
        (busts_as_null, "null_values"),
        (three_decimals, "off_grid"),
        (repeated_rows, "repeated_rows"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
@pytest.mark.parametrize("rtp", [0.97, None], ids=["claimed", "estimated"])
def test_corrupted_data_is_data_quality_suspect(corrupt, flag: str, rtp: float | None) -> None:
    for seed in range(3):
        report = fit(corrupt(fair(seed), seed), rtp)
        assert report.verdict == DATA_QUALITY, (seed, report.flags)
        assert flag in report.flags, (seed, report.flags)


def test_a_game_that_keeps_more_than_it_claims_is_a_distribution_deviation() -> None:
    for seed in range(3):
        report = fit(fair(seed, rtp=0.90), 0.97)
        assert report.verdict == DEVIATION, report.flags
        assert "rtp_below_claim" in report.flags
        assert 0.90 in report.rtp_interval and 0.97 not in report.rtp_interval
        # Without a claim the same data are a fair game with a lower RTP: shape only.
        estimated = fit(fair(seed, rtp=0.90))
        assert estimated.shape_only and estimated.verdict == CONSISTENT
        assert 0.90 in estimated.rtp_interval


@pytest.mark.parametrize("rtp", [0.97, None], ids=["claimed", "estimated"])
def test_another_shape_or_dependent_rounds_are_a_distribution_deviation(rtp: float | None) -> None:
    for seed in range(3):
        steeper = fit(steeper_game(seed), rtp)
        assert steeper.verdict == DEVIATION, steeper.flags
        assert {"shape_chi_square", "shape_ks"} & set(steeper.flags)
        streaky = fit(streaky_game(seed), rtp)
        assert streaky.verdict == DEVIATION, streaky.flags
        assert "serial_dependence" in streaky.flags


def test_few_rounds_are_insufficient_data_unless_a_value_is_impossible() -> None:
    few = list(fair(1))[: MIN_ROUNDS - 1]
    report = fit(few, 0.97)
    assert report.verdict == INSUFFICIENT
    assert report.n == report.n_used == MIN_ROUNDS - 1
    assert {c.name for c in report.checks}.isdisjoint(STATISTICAL_CHECKS)
    assert report.rtp_estimate == pytest.approx(1.01 * (1 - few.count(D("1.00")) / len(few)))
    assert fit([*few[:10], "2.345"]).verdict == DATA_QUALITY
    assert fit([]).verdict == INSUFFICIENT
    # The shape checks without a claimed RTP see only rounds above 1.00: all busts is too few.
    assert fit(["1.00"] * 2 * MIN_ROUNDS).verdict == INSUFFICIENT
    assert fit(["1.00"] * 2 * MIN_ROUNDS, 0.97).flags[0] == "rtp_below_claim"


def test_the_report_shows_each_check_and_how_values_are_read() -> None:
    values = [*fair(3), None, float("nan"), "2.005", "0.99", "2000000", 2.5, "3", D("2.000")]
    report = fit(values, 0.97)
    assert isinstance(report, FitReport)
    assert report.n == ROUNDS + 8 and report.n_used == ROUNDS + 3
    assert report.check("null_values").statistic == 2
    assert report.check("off_grid").statistic == 1
    assert report.check("below_one").statistic == 1
    assert report.check("above_cap").statistic == 1
    assert report.flags == ("null_values", "off_grid", "below_one", "above_cap")
    assert report.check_level == pytest.approx(0.01 / len(STATISTICAL_CHECKS))
    for name in STATISTICAL_CHECKS:
        check = report.check(name)
        assert 0 <= check.p_value <= 1 and math.isfinite(check.statistic) and check.detail
    with pytest.raises(KeyError, match="nope"):
        report.check("nope")


def test_fit_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="alpha=0"):
        fit(fair(1), alpha=0)
    with pytest.raises(ValueError, match="rtp=1.5"):
        fit(fair(1), 1.5)
    # A cell that is not a number is counted, quoted and flagged, never an abort (issue 17).
    report = fit(["1.00", "abc"])
    assert report.unparseable == 1 and report.unparseable_examples == ("'abc'",)
    assert report.flags == ("unparseable_values",) and report.verdict == DATA_QUALITY


# -- the sequential monitor ---------------------------------------------------------------


@pytest.mark.slow
def test_repeated_naive_tests_raise_false_alarms_the_monitor_keeps_its_bound() -> None:
    alpha, rounds, look_every = 0.05, 2_000, 100
    expected = instant_bust_probability(0.97)
    monitor_alarms = naive_alarms = 0
    for seed in range(SEEDS):
        monitor = Monitor(0.97, alpha=alpha, target="2.00")
        busts, naive = 0, False
        for i, x in enumerate(CrashGame(0.97, 7_000 + seed).crashes(rounds), start=1):
            monitor.update(x)
            busts += x == 1
            if i % look_every == 0:  # "is the bust rate still fine?", at level alpha each time
                lower, upper = binomial_cdf(busts, i, expected), binomial_sf(busts, i, expected)
                naive = naive or 2 * min(lower, upper) < alpha
        monitor_alarms += monitor.alarm is not None
        naive_alarms += naive
    bound = highest_plausible(SEEDS, alpha)
    assert monitor_alarms <= bound
    assert naive_alarms > bound, naive_alarms


def test_the_monitor_finds_a_lower_rtp_and_dropped_busts() -> None:
    for seed in range(10):
        monitor = Monitor(0.97, alpha=0.01)
        alarm = next(filter(None, map(monitor.update, CrashGame(0.90, seed).crashes(2_000))), None)
        assert alarm is not None and alarm.stream == "instant_busts"
        assert alarm.observed_rate > alarm.expected_rate and alarm.implied_rtp < 0.95
        assert alarm.evidence >= alarm.threshold == 100
        assert "more than" in alarm.message

        monitor = Monitor(0.97, alpha=0.01)
        no_busts = (x for x in CrashGame(0.97, seed).crashes(2_000) if x != 1)
        alarm = next(filter(None, map(monitor.update, no_busts)), None)
        assert alarm is not None and alarm.observed_rate < alarm.expected_rate
        assert "fewer than" in alarm.message


def test_the_monitor_watches_the_hit_rate_at_a_target() -> None:
    # Busts are right, but a reader turns a third of the rounds that reached 2.00 into 1.50.
    rng = random.Random(5)
    feed = [D("1.50") if x >= 2 and rng.random() < 1 / 3 else x for x in CrashGame(0.97, 5).crashes(3_000)]
    monitor = Monitor(0.97, alpha=0.01, target="2.00")
    alarm = next(filter(None, map(monitor.update, feed)), None)
    assert alarm is not None and alarm.stream == "hits at 2.00"
    assert alarm.threshold == 200  # two streams share alpha
    assert alarm.implied_rtp < 0.9


def test_the_monitor_alarms_once_resets_and_refuses_bad_values() -> None:
    monitor = Monitor(0.97, alpha=0.01)
    alarms = [a for a in map(monitor.update, ["1.00"] * 200) if a]
    assert len(alarms) == 1 and monitor.alarm == alarms[0] and monitor.rounds == 200
    monitor.reset()
    assert monitor.alarm is None and monitor.rounds == 0
    assert set(monitor.evidence()) == {"instant_busts"}
    with pytest.raises(ValueError, match=r"multiplier='2.345': off grid"):
        monitor.update("2.345")
    with pytest.raises(ValueError, match="multiplier=None"):
        monitor.update(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target='1.00'"):
        Monitor(0.97, target="1.00")


# -- the tails the checks rest on, against published values and direct sums -------------------


def test_exact_tails_match_published_and_direct_values() -> None:
    # Upper 5% and 1% points of chi-square, NIST/SEMATECH e-Handbook table 1.3.6.7.4; df 1 and 2
    # are where the old Wilson-Hilferty approximation was off.
    for df, at5, at1 in ((1, 3.841, 6.635), (2, 5.991, 9.210), (10, 18.307, 23.209), (30, 43.773, 50.892)):
        assert chi_square_sf(at5, df) == pytest.approx(0.05, abs=2e-4)
        assert chi_square_sf(at1, df) == pytest.approx(0.01, abs=5e-5)
    for k, n, p in ((3, 10, 0.2), (40, 1000, 0.03), (230, 5000, 0.0396), (0, 5, 0.5), (6, 5, 0.5)):
        direct = sum(binomial_pmf(i, n, p) for i in range(k, n + 1))
        assert binomial_sf(k, n, p) == pytest.approx(direct, rel=1e-9, abs=1e-15)
        assert binomial_cdf(k - 1, n, p) == pytest.approx(1 - direct, rel=1e-9, abs=1e-15)
    for k, mean in ((1, 0.5), (5, 2.0), (30, 15.7), (100, 80.0)):
        direct = 1 - sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(k))
        assert poisson_sf(k, mean) == pytest.approx(direct, rel=1e-9)
    # Kolmogorov: asymptotic 5% and 1% points 1.358 and 1.628 / sqrt(n); Massey (1951), n = 20: 0.294.
    assert kolmogorov_sf(1.358 / 100, 10_000) == pytest.approx(0.05, abs=0.002)
    assert kolmogorov_sf(1.628 / 100, 10_000) == pytest.approx(0.01, abs=0.001)
    assert kolmogorov_sf(0.294, 20) == pytest.approx(0.05, abs=0.003)


def test_runs_test_uses_the_exact_mean_and_variance_of_the_runs() -> None:
    # Every arrangement of 5 ones and 6 zeros: the runs' mean and variance by enumeration.
    arrangements = [
        [i in ones for i in range(11)] for ones in itertools.combinations(range(11), 5)
    ]
    runs = [1 + sum(a != b for a, b in zip(s, s[1:])) for s in arrangements]
    mean = sum(runs) / len(runs)
    variance = sum((r - mean) ** 2 for r in runs) / len(runs)
    sample = arrangements[17]
    z, p = runs_test(sample)
    assert z == pytest.approx((runs[17] - mean) / math.sqrt(variance))
    assert 0 < p <= 1
    assert runs_test([True] * 10) == (0.0, 1.0)
