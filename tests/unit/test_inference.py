"""Each public function of analytics.inference against scipy (and mpmath where scipy is inexact).

Grids run wide, tails included: a relative bound holds down to 1e-300. Each test states its
bound; they are what the functions' docstrings promise (or, for the tails inherited from
Numerical Recipes, what they measure: rounding of ``a log x - lgamma(a)`` grows with ``a``).
No database.
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from fractions import Fraction

import pytest

np = pytest.importorskip("numpy", reason="the reference tests need the test extra (numpy, scipy, mpmath)")
mpmath = pytest.importorskip("mpmath", reason="the reference tests need the test extra (mpmath)")
stats = pytest.importorskip("scipy.stats", reason="the reference tests need the test extra (scipy)")
special = pytest.importorskip("scipy.special", reason="the reference tests need the test extra (scipy)")

from crashlog.analytics import inference as inf  # noqa: E402
from crashlog.analytics import summarize  # noqa: E402

RTP = 0.97
TARGETS = (1.01, 1.1, 1.5, 2, 3, 5, 10, 30, 50, 100, 300, 1000)
TINY = 1e-300  # below this a reference itself underflows


def relative(ours: float, reference: float) -> float:
    return abs(ours - reference) / abs(reference) if reference else abs(ours)


def assert_close(ours: float, reference: float, bound: float, what: object) -> None:
    if reference > TINY:
        assert relative(ours, reference) <= bound, (what, ours, reference)
    else:
        assert ours <= 1e-290, (what, ours, reference)


def counts_around(n: int, p: float) -> list[int]:
    """0, 1, n, and counts from 10 sds below the mean to 10 above: both far tails."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    points = (0, 1, mean - 10 * sd - 5, mean - 3 * sd, mean, mean + 3 * sd, mean + 10 * sd + 5, n - 1, n)
    return sorted({int(v) for v in points if 0 <= v <= n})


# -- normal quantile and intervals ----------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1 - 1e-9])
def test_z_value_is_scipys_normal_quantile(confidence: float) -> None:
    # Bound: 1e-12 relative.
    assert_close(inf.z_value(confidence), stats.norm.ppf(0.5 + confidence / 2), 1e-12, confidence)


def test_wilson_interval_is_scipys_wilson_interval() -> None:
    # Bound: 1e-9 relative on each end (scipy's binomtest(...).proportion_ci(method="wilson")).
    for trials in (1, 2, 10, 55, 1000, 10**6):
        for successes in sorted({0, 1, trials // 3, trials // 2, trials - 1, trials}):
            for confidence in (0.9, 0.95, 0.99):
                ours = inf.wilson_interval(successes, trials, confidence)
                ref = stats.binomtest(successes, trials).proportion_ci(confidence, method="wilson")
                for a, b in ((ours.low, ref.low), (ours.high, ref.high)):
                    assert abs(a - b) <= 1e-9 * max(abs(b), 1e-12), (successes, trials, a, b)


def test_mean_interval_is_scipys_normal_interval() -> None:
    # Bound: 1e-12 relative on the half-width.
    for count, mean, variance in ((2, 0.0, 1.0), (30, -0.03, 4.2), (10**6, 1e8, 1e-6)):
        ours = inf.mean_interval(count, mean, variance)
        low, high = stats.norm.interval(0.95, loc=mean, scale=math.sqrt(variance / count))
        assert ours is not None
        assert_close(ours.high - ours.low, high - low, 1e-12, (count, mean, variance))


# -- chi-square, gamma, beta, Poisson ---------------------------------------------------------


def test_chi_square_sf_is_scipys_to_1e_11() -> None:
    for df in (1, 2, 3, 10, 100, 1000):
        for x in (1e-4, 0.1, 1, df / 2, df, 2 * df, df + 10 * math.sqrt(2 * df), 10 * df + 100, 1500):
            assert_close(inf.chi_square_sf(x, df), stats.chi2.sf(x, df), 1e-11, (x, df))


def test_chi_square_statistic_is_scipys() -> None:
    observed, probabilities = [18, 22, 31, 29], [0.2, 0.25, 0.3, 0.25]
    statistic, df = inf.chi_square(observed, probabilities)
    reference = stats.chisquare(observed, [100 * p for p in probabilities])
    assert statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert df == 3


def test_regularized_gamma_is_scipys() -> None:
    # Bound: 1e-12 up to a = 100; 1e-8 up to a = 1e5 (rounding of a log x - lgamma(a)).
    for a in (0.5, 1, 1.5, 2, 5, 10, 30, 100, 1000, 1e4, 1e5):
        bound = 1e-12 if a <= 100 else 1e-8
        for x in sorted({a * f for f in (1e-3, 0.1, 0.5, 0.9, 1, 1.1, 2, 5, 20)} | {1e-5, 0.3, 3, 50, 700}):
            assert_close(inf.regularized_gamma_p(a, x), special.gammainc(a, x), bound, ("P", a, x))
            assert_close(inf.regularized_gamma_q(a, x), special.gammaincc(a, x), bound, ("Q", a, x))


def test_regularized_beta_is_scipys() -> None:
    # Bound: 1e-11 for a, b up to 1000; 1e-8 up to 1e5.
    for a, b in itertools.product((0.5, 1, 2, 5, 30, 300, 1e4), (0.5, 1, 3, 30, 1000, 1e5)):
        bound = 1e-11 if max(a, b) <= 1000 else 1e-8
        for x in (1e-6, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-6):
            assert_close(inf.regularized_beta(x, a, b), special.betainc(a, b, x), bound, (x, a, b))


def test_poisson_sf_is_scipys() -> None:
    # Bound: 1e-12 up to a mean of 300, 1e-8 up to 1e6.
    for mean in (1e-3, 0.5, 3, 30, 300, 1e4, 1e6):
        bound = 1e-12 if mean <= 300 else 1e-8
        sd = math.sqrt(mean)
        points = (0, 1, mean / 10, mean - 3 * sd, mean, mean + 3 * sd, mean + 30 * sd + 10)
        for count in sorted({int(v) for v in points}):
            assert_close(inf.poisson_sf(count, mean), stats.poisson.sf(count - 1, mean), bound, (count, mean))


# -- binomial ------------------------------------------------------------------------------------

BINOMIAL_N = (1, 2, 10, 55, 1000, 114_668, 10**6)
BINOMIAL_P = (1e-6, 0.00097, 0.0097, 0.1, 0.485, 0.9, 0.99)


def test_binomial_tails_are_scipys() -> None:
    # Bound: 1e-11 up to 1000 trials, 1e-8 up to a million (the incomplete beta's rounding).
    for n, p in itertools.product(BINOMIAL_N, BINOMIAL_P):
        bound = 1e-11 if n <= 1000 else 1e-8
        for k in counts_around(n, p):
            sf, cdf = stats.binom.sf(k - 1, n, p), stats.binom.cdf(k, n, p)
            assert_close(inf.binomial_sf(k, n, p), sf, bound, ("sf", k, n, p))
            assert_close(inf.binomial_cdf(k, n, p), cdf, bound, ("cdf", k, n, p))
            assert_close(inf.binomial_two_sided(k, n, p), min(1.0, 2 * min(sf, cdf)), bound, ("2s", k, n, p))


def test_binomial_pmf_is_exact_to_1e_12() -> None:
    # Against mpmath at 40 digits where scipy itself is off by 2e-13; against scipy elsewhere.
    mpmath.mp.dps = 40
    for n, p in itertools.product(BINOMIAL_N, BINOMIAL_P):
        for k in counts_around(n, p):
            exact = mpmath.binomial(n, k) * mpmath.mpf(p) ** k * (1 - mpmath.mpf(p)) ** (n - k)
            assert_close(inf.binomial_pmf(k, n, p), float(exact), 1e-12, (k, n, p))


def test_binomial_mid_p_is_the_definition_on_scipys_tails() -> None:
    # Bound: 1e-11 relative up to 1000 trials (mid-p: the tail less half the observed count).
    for n, p in itertools.product((1, 10, 55, 1000), BINOMIAL_P):
        for k in counts_around(n, p):
            half = 0.5 * stats.binom.pmf(k, n, p)
            upper = stats.binom.sf(k - 1, n, p) - half
            lower = stats.binom.cdf(k, n, p) - half
            assert_close(inf.binomial_mid_p(k, n, p, alternative="greater"), upper, 1e-11, (k, n, p))
            assert_close(inf.binomial_mid_p(k, n, p), min(1.0, 2 * min(lower, upper)), 1e-11, (k, n, p))


# -- Poisson-binomial ----------------------------------------------------------------------------


def exact_tails(k: int, chances: dict[float, int]) -> tuple[float, float]:
    """The reference: numpy's convolution of scipy's binomial pmfs, summed."""
    pmf = np.array([1.0])
    for p, n in chances.items():
        pmf = np.convolve(pmf, stats.binom.pmf(np.arange(n + 1), n, p))
    return float(pmf[: k + 1].sum()), float(pmf[k:].sum())


def test_poisson_binomial_the_issues_verdict_flip_is_exact() -> None:
    # 133 hits in {100x: 55, 1000x: 114,668}: the normal branch said 0.0497 ("better than
    # chance"); exact is 0.0547. Bound: 1e-9 relative.
    chances = {RTP / 100: 55, RTP / 1000: 114_668}
    lower, upper = exact_tails(133, chances)
    p = inf.poisson_binomial_two_sided(133, chances)
    assert_close(p, 2 * min(lower, upper), 1e-9, chances)
    assert p > 0.05


def test_poisson_binomial_is_exact_to_1e_9_below_300_expected_and_within_1e_5_beyond() -> None:
    # Random mixes of 2-4 targets (1.01x-1000x), 1-10,000 trials each, at counts from 0 to all
    # (far tails included). Bound: 1e-9 relative below 300 expected hits (always the exact
    # convolution); beyond, 1e-5 (the saddlepoint's, where the convolution would be long).
    rng = np.random.default_rng(17)
    for _ in range(40):
        chances: dict[float, int] = {}
        for _ in range(int(rng.integers(2, 5))):
            chances[RTP / 10 ** rng.uniform(0.005, 3)] = int(rng.choice([1, 3, 30, 300, 3000, 10_000]))
        mean = sum(p * n for p, n in chances.items())
        sd = math.sqrt(sum(p * (1 - p) * n for p, n in chances.items()))
        total = sum(chances.values())
        bound = 1e-9 if mean < 300 else 1e-5
        points = (0, 1, mean / 3, mean - 3 * sd, mean, mean + 3 * sd, mean + 10 * sd + 5, total - 1, total)
        for k in sorted({int(v) for v in points if 0 <= v <= total}):
            lower, upper = inf.poisson_binomial_tails(k, chances)
            ref_lower, ref_upper = exact_tails(k, chances)
            assert_close(lower, ref_lower, bound, (k, chances))
            assert_close(upper, ref_upper, bound, (k, chances))
            two_sided = min(1.0, 2 * min(ref_lower, ref_upper))
            assert_close(inf.poisson_binomial_two_sided(k, chances), two_sided, bound, k)


def test_poisson_binomial_far_tail_is_not_truncated() -> None:
    # All 400 trials at 1/3 succeed in a mix: p ~ 1e-190, summed to the end (it was the
    # probability of exactly k only).
    chances = {1 / 3: 300, 0.25: 100}
    for k in (250, 390, 400):
        assert_close(inf.poisson_binomial_tails(k, chances)[1], exact_tails(k, chances)[1], 1e-9, k)


# -- expected longest run ------------------------------------------------------------------------


def brute_longest_run(n: int, q: float) -> float:
    total = 0.0
    for bits in itertools.product((False, True), repeat=n):
        longest = run = 0
        for bit in bits:
            run = run + 1 if bit else 0
            longest = max(longest, run)
        total += q ** sum(bits) * (1 - q) ** (n - sum(bits)) * longest
    return total


def recurrence_longest_run(n: int, q: float) -> float:
    """E[L] = sum_k P(L >= k), every k at once in numpy: b[k, m] = P(a run of k in m trials)."""
    p, ks = 1 - q, np.arange(1, n + 1)
    b = np.zeros((n, n + 1))
    b[ks - 1, ks] = q**ks
    step = p * q**ks
    for m in range(2, n + 1):
        k = ks[ks < m]
        b[k - 1, m] = b[k - 1, m - 1] + step[k - 1] * (1 - b[k - 1, m - k - 1])
    return float(b[:, n].sum())


@pytest.mark.parametrize("q", [0.0396, 0.5, 0.9, 0.99903])
def test_expected_longest_run_is_brute_force(q: float) -> None:
    # Every sequence of up to 12 trials enumerated. Bound: 1e-12 relative.
    for n in range(1, 13):
        assert_close(inf.expected_longest_run(n, q), brute_longest_run(n, q), 1e-12, (n, q))


def test_expected_longest_run_is_exact_across_targets() -> None:
    # Targets 1.01x-1000x (loss chance q = 1 - 0.97 / target), n from 1 to 2,000, against the
    # full recurrence (every k). Bound: 1e-10 relative. Among them the issue's collapses:
    # 50 losses at 100x expected 0.0, now 44.3; 1000x at 1000: 801.1, not 562.9.
    for target in TARGETS:
        q = 1 - RTP / target
        for n in (1, 2, 3, 5, 10, 30, 50, 100, 300, 1000, 2000):
            assert_close(inf.expected_longest_run(n, q), recurrence_longest_run(n, q), 1e-10, (target, n))


@pytest.mark.parametrize("target", [1.01, 2, 100, 1000])
def test_expected_longest_run_matches_simulation_at_10000(target: float) -> None:
    # 400 simulated histories of 10,000 bets: the mean longest losing streak within 4.5
    # standard errors of the exact expectation.
    q, n, reps = 1 - RTP / target, 10_000, 400
    rng = np.random.default_rng(int(target * 100))
    longest = []
    for _ in range(reps):
        wins = np.flatnonzero(rng.random(n) >= q)
        edges = np.concatenate(([-1], wins, [n]))
        longest.append(int(np.diff(edges).max()) - 1)
    mean, error = np.mean(longest), np.std(longest, ddof=1) / math.sqrt(reps)
    assert abs(inf.expected_longest_run(n, q) - mean) <= 4.5 * error + 1e-9, (target, mean, error)


def test_expected_longest_run_is_never_more_than_the_trials_nor_below_the_old_collapse() -> None:
    for target in TARGETS:
        q = 1 - RTP / target
        values = [inf.expected_longest_run(n, q) for n in (1, 10, 100, 1000, 10_000)]
        assert all(0 < v <= n for v, n in zip(values, (1, 10, 100, 1000, 10_000), strict=True))
        assert values == sorted(values)  # more bets, a longer expected streak


# -- Kolmogorov–Smirnov, runs ----------------------------------------------------------------------


def test_kolmogorov_sf_is_within_its_promise_of_scipys_exact_law() -> None:
    # Where p <= 0.2 (a test's decision) and n <= 100,000: within 0.1% of scipy's kstwo.
    # Elsewhere, absolute: 0.025 from n = 10, 0.005 from 1000, 5e-4 from 100,000 on.
    # D = c / sqrt(n) from the centre (c = 0.3) to the far tail (c = 6, p ~ 1e-31); fewer
    # points at large n, where scipy's exact law costs up to a third of a second each.
    for n, points in ((1, 60), (2, 60), (5, 60), (10, 60), (35, 60), (100, 60), (1000, 40), (10_000, 20),
                      (100_000, 6), (1_000_000, 3)):
        for c in np.linspace(0.3, 6, points):
            d = min(1.0, c / math.sqrt(n))
            ours, exact = inf.kolmogorov_sf(float(d), n), stats.kstwo.sf(d, n)
            if exact <= 0.2 and n <= 100_000:
                assert_close(ours, exact, 1e-3, (n, d))
            elif n >= 10:
                limit = 0.025 if n < 1000 else 0.005 if n < 100_000 else 5e-4
                assert abs(ours - exact) <= limit, (n, d, ours, exact)


def test_ks_uniform_is_scipys_kstest() -> None:
    rng = np.random.default_rng(3)
    for n in (5, 50, 500, 5000):
        for values in (rng.random(n), rng.random(n) ** 1.3):
            statistic, p = inf.ks_uniform(values.tolist())
            reference = stats.kstest(values, "uniform", method="exact")
            assert statistic == pytest.approx(reference.statistic, rel=1e-12)
            if reference.pvalue <= 0.2:
                assert_close(p, reference.pvalue, 1e-3, n)


def test_runs_test_tail_is_the_normal_tail_even_below_1e_16() -> None:
    # A perfect alternation of 2,000 values: z ~ 44.7, p ~ 1e-435 underflows; 400 values:
    # z ~ 20, p ~ 1e-88 (1 - cdf said 0.0). Bound: 1e-12 relative to scipy's norm.sf.
    for n in (10, 40, 400):
        z, p = inf.runs_test([i % 2 == 0 for i in range(n)])
        assert_close(p, 2 * stats.norm.sf(abs(z)), 1e-12, n)
        assert p > 0


# -- many tests at once ---------------------------------------------------------------------------


def test_benjamini_hochberg_adjusted_is_scipys_false_discovery_control() -> None:
    rng = np.random.default_rng(5)
    for m in (1, 2, 10, 200):
        p_values = np.concatenate((rng.random(m) * 0.01, rng.random(m))).tolist()
        rejected, adjusted = inf.benjamini_hochberg(p_values, 0.05)
        reference = stats.false_discovery_control(p_values, method="bh")
        assert adjusted == pytest.approx(reference.tolist(), rel=1e-14)
        assert rejected == [a <= 0.05 for a in adjusted]


def test_benjamini_hochberg_does_not_reject_one_ulp_above_the_line() -> None:
    # 4 p-values at q = 0.05: the third smallest's line is 3q/4 = 0.0375 exactly, but in floats
    # 3 * 0.05 / 4 rounds to 0.037500000000000006, one ulp above, which used to be rejected.
    above = 3 * 0.05 / 4
    assert Fraction(above) * 4 > Fraction(0.05) * 3
    below = math.nextafter(above, 0)
    assert Fraction(below) * 4 <= Fraction(0.05) * 3
    rejected, adjusted = inf.benjamini_hochberg([0.001, 0.002, above, 0.9], 0.05)
    assert rejected == [True, True, False, False]
    assert adjusted[2] > 0.05
    rejected, adjusted = inf.benjamini_hochberg([0.001, 0.002, below, 0.9], 0.05)
    assert rejected == [True, True, True, False]
    assert adjusted[2] <= 0.05


def test_holm_adjust_is_the_step_down_definition() -> None:
    rng = np.random.default_rng(7)
    p_values = (rng.random(30) * 0.1).tolist()
    order = sorted(range(30), key=lambda i: p_values[i])
    running, expected = 0.0, [0.0] * 30
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (30 - rank) * p_values[i]))
        expected[i] = running
    assert inf.holm_adjust(p_values) == expected


# -- bad input -------------------------------------------------------------------------------------

NAN = math.nan


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: inf.wilson_interval(1, 10, NAN), "confidence"),
        (lambda: inf.mean_interval(10, NAN, 1.0), "mean"),
        (lambda: inf.mean_interval(10, 1.0, NAN), "variance"),
        (lambda: inf.chi_square_sf(NAN, 3), "statistic"),
        (lambda: inf.chi_square([1, 2], [NAN, 0.5]), "probabilities"),
        (lambda: inf.expected_longest_run(10, NAN), "probability"),
        (lambda: inf.regularized_gamma_p(NAN, 1.0), "a=nan"),
        (lambda: inf.regularized_gamma_q(1.0, NAN), "x=nan"),
        (lambda: inf.regularized_beta(0.5, NAN, 1), "a=nan"),
        (lambda: inf.binomial_pmf(1, 10, NAN), "probability"),
        (lambda: inf.binomial_cdf(1, 10, NAN), "probability"),
        (lambda: inf.poisson_sf(3, NAN), "mean"),
        (lambda: inf.poisson_binomial_two_sided(1, {NAN: 3, 0.5: 2}), "chances"),
        (lambda: inf.kolmogorov_sf(NAN, 10), "statistic"),
        (lambda: inf.ks_uniform([0.1, NAN, 0.3]), "values"),
        (lambda: inf.holm_adjust([0.01, NAN]), "p_values"),
        (lambda: inf.benjamini_hochberg([0.01, NAN]), "p_values"),
        (lambda: inf.z_value(NAN), "confidence"),
    ],
)
def test_nan_is_refused_by_name(call, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=field):
        call()


# -- the EV interval's variance (performance) --------------------------------------------------------


def test_expected_value_interval_survives_large_alike_profits() -> None:
    # A 1e8 stake at 1.01x winning 1,000,000.00 or 1,000,000.01: sum p^2 - n mean^2 cancelled
    # to nothing (a zero-width or missing interval). The half-width must match the sample's.
    rows = [
        {
            "outcome": "WIN",
            "stake": Decimal(10**8),
            "target_multiplier": Decimal("1.01"),
            "cashout_multiplier": None,
            "profit_loss": Decimal(10**6) + Decimal("0.01") * (i % 2),
        }
        for i in range(1000)
    ]
    interval = summarize(rows, rtp=RTP).expected_value_interval
    profits = [float(r["profit_loss"]) for r in rows]
    half = stats.norm.ppf(0.975) * np.std(profits, ddof=1) / math.sqrt(len(profits))
    assert interval is not None
    assert_close((interval.high - interval.low) / 2, half, 1e-6, "half-width")
