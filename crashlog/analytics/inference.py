"""Intervals and tests shared by every analysis: Wilson, normal means, chi-square, runs.

Also the exact tails the tests need (incomplete gamma and beta, so chi-square, Poisson and
binomial tails, and the binomial mid-p), the Kolmogorov distribution for a KS test, the
Wald–Wolfowitz runs test, and the adjustments for many tests at once (Holm's for a
family-wise level, Benjamini–Hochberg's for a false discovery rate).

Each function says which published method it follows, so a reader can check it against
the source. Inputs are plain counts and floats; nothing here touches the database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist

import attrs

CONFIDENCE = 0.95
_EULER_GAMMA = 0.5772156649015329


@attrs.frozen
class Interval:
    """A two-sided confidence interval ``[low, high]``."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


def z_value(confidence: float = CONFIDENCE) -> float:
    """The two-sided standard normal quantile: 1.959964 for 95%."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson's score interval for a proportion (Wilson 1927; Newcombe 1998, method 3).

    Unlike the textbook ``p +- z sqrt(p(1-p)/n)`` it stays inside [0, 1] and behaves for
    0 or n successes, which is where small samples live.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"invalid successes={successes}, trials={trials}")
    if trials == 0:
        return Interval(0.0, 1.0)
    z = z_value(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, no rounding dust
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(low, high)


def mean_interval(
    count: int, mean: float, variance: float, confidence: float = CONFIDENCE
) -> Interval | None:
    """Normal-approximation interval of a mean from ``count`` values (sample variance).

    None for fewer than two values: one round says nothing about the spread.
    """
    if count < 2:
        return None
    half = z_value(confidence) * math.sqrt(variance / count)
    return Interval(mean - half, mean + half)


def chi_square_sf(statistic: float, df: int) -> float:
    """``P(chi2_df >= statistic)``, exact: the regularized upper gamma ``Q(df/2, statistic/2)``.

    (It used to be the Wilson–Hilferty cube-root approximation; the exact tail costs no
    more and is right for small df too.)
    """
    if df < 1:
        raise ValueError(f"invalid df={df}: must be at least 1")
    if statistic <= 0:
        return 1.0
    return regularized_gamma_q(df / 2, statistic / 2)


def chi_square(observed: Iterable[int], probabilities: Iterable[float]) -> tuple[float, int]:
    """Pearson's statistic of ``observed`` counts against bin ``probabilities``, and its df."""
    counts = list(observed)
    probs = list(probabilities)
    if len(counts) != len(probs) or len(counts) < 2:
        raise ValueError("observed and probabilities must have the same length, at least 2")
    total = sum(counts)
    statistic = sum((o - total * p) ** 2 / (total * p) for o, p in zip(counts, probs, strict=True))
    return statistic, len(counts) - 1


def expected_longest_run(trials: int, probability: float) -> float:
    """Expected longest run of an event of ``probability`` in ``trials`` independent trials.

    Schilling (1990), "The longest run of heads", College Math. J. 21(3): for a run of
    events of probability q among n trials, ``E ~ log_{1/q}(n (1 - q)) + gamma / ln(1/q) - 1/2``
    (it leaves out a small periodic term: within 0.1 of the exact expectation from about
    100 trials on, as tests/unit/test_performance.py checks). Returns 0 for no trials.
    """
    if trials <= 0 or probability <= 0:
        return 0.0
    if probability >= 1:
        return float(trials)
    base = math.log(1 / probability)
    expected = math.log(trials * (1 - probability)) / base + _EULER_GAMMA / base - 0.5
    return min(float(trials), max(0.0, expected))


# -- exact tails ---------------------------------------------------------------------------
# Numerical Recipes (Press et al., 3rd ed., sections 6.2 and 6.4): the series where it
# converges fast, else the continued fraction by the modified Lentz method.

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITERATIONS = 100_000


def _gamma_series(a: float, x: float) -> float:
    """The lower regularized gamma ``P(a, x)`` by its series; for ``x < a + 1``."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(_MAX_ITERATIONS):
        denominator += 1
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_fraction(a: float, x: float) -> float:
    """The upper regularized gamma ``Q(a, x)`` by its continued fraction; for ``x >= a + 1``."""
    b = x + 1 - a
    c = 1 / _TINY
    d = 1 / b
    h = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def regularized_gamma_p(a: float, x: float) -> float:
    """The lower regularized incomplete gamma ``P(a, x) = gamma(a, x) / Gamma(a)``."""
    if a <= 0 or x < 0:
        raise ValueError(f"invalid a={a}, x={x}: need a > 0 and x >= 0")
    if x == 0:
        return 0.0
    return _gamma_series(a, x) if x < a + 1 else 1.0 - _gamma_fraction(a, x)


def regularized_gamma_q(a: float, x: float) -> float:
    """The upper regularized incomplete gamma ``Q(a, x) = 1 - P(a, x)``, accurate in the tail."""
    if a <= 0 or x < 0:
        raise ValueError(f"invalid a={a}, x={x}: need a > 0 and x >= 0")
    if x == 0:
        return 1.0
    return 1.0 - _gamma_series(a, x) if x < a + 1 else _gamma_fraction(a, x)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (Numerical Recipes betacf)."""
    qab, qap, qam = a + b, a + 1, a - 1
    c = 1.0
    d = 1 - qab * x / qap
    d = 1 / (_TINY if abs(d) < _TINY else d)
    h = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 + aa * d
            d = 1 / (_TINY if abs(d) < _TINY else d)
            c = 1 + aa / c
            c = _TINY if abs(c) < _TINY else c
            h *= d * c
        if abs(d * c - 1) < _EPS:
            break
    return h


def regularized_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta ``I_x(a, b)``."""
    if a <= 0 or b <= 0 or not 0 <= x <= 1:
        raise ValueError(f"invalid x={x}, a={a}, b={b}: need 0 <= x <= 1, a > 0, b > 0")
    if x in (0, 1):
        return float(x)
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1 - x) / b


def binomial_sf(successes: int, trials: int, probability: float) -> float:
    """``P(S >= successes)`` for ``S ~ Binomial(trials, probability)``: ``I_p(k, n - k + 1)``."""
    if trials < 0 or not 0 <= probability <= 1:
        raise ValueError(f"invalid trials={trials}, probability={probability}")
    if successes <= 0:
        return 1.0
    if successes > trials:
        return 0.0
    return regularized_beta(probability, successes, trials - successes + 1)


def binomial_cdf(successes: int, trials: int, probability: float) -> float:
    """``P(S <= successes)`` for ``S ~ Binomial(trials, probability)``."""
    if successes >= trials:
        return 1.0
    if successes < 0:
        return 0.0
    return regularized_beta(1 - probability, trials - successes, successes + 1)


def binomial_two_sided(successes: int, trials: int, probability: float) -> float:
    """Two-sided p-value of a binomial count: twice the smaller tail, at most 1."""
    lower = binomial_cdf(successes, trials, probability)
    upper = binomial_sf(successes, trials, probability)
    return min(1.0, 2 * min(lower, upper))


def binomial_pmf(successes: int, trials: int, probability: float) -> float:
    """``P(S = successes)`` for ``S ~ Binomial(trials, probability)``, with 0 < probability < 1."""
    k, n, p = successes, trials, probability
    return math.exp(
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)
    )


def binomial_mid_p(successes: int, trials: int, probability: float, *, alternative: str = "two-sided") -> float:
    """Exact binomial mid-p-value of ``successes`` in ``trials`` at ``probability``.

    ``alternative``: ``two-sided`` (twice the smaller tail, at most 1) or ``greater`` (the
    upper tail: a count too high). Lancaster's mid-p counts half the probability of the
    observed count in the tail: a plain exact p-value of a count (``binomial_two_sided``) is
    conservative, the more so the smaller the expected count (Agresti, Categorical Data
    Analysis, 3rd ed., 1.4.5).
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"invalid successes={successes}, trials={trials}")
    if not 0 <= probability <= 1:
        raise ValueError(f"invalid probability={probability}: must be in [0, 1]")
    if alternative not in ("two-sided", "greater"):
        raise ValueError(f"invalid alternative={alternative!r}: must be 'two-sided' or 'greater'")
    if probability in (0.0, 1.0):
        return 1.0 if successes == round(trials * probability) else 0.0
    half = 0.5 * binomial_pmf(successes, trials, probability)
    upper = binomial_sf(successes, trials, probability) - half
    if alternative == "greater":
        return min(1.0, max(0.0, upper))
    lower = binomial_cdf(successes, trials, probability) - half
    return min(1.0, max(0.0, 2 * min(lower, upper)))


#: Above this many steps (signals x pmf entries) the Poisson-binomial tails use the normal
#: approximation instead: by then the expected count is large and the law close to normal.
_EXACT_POISSON_BINOMIAL_STEPS = 4_000_000


def poisson_binomial_two_sided(successes: int, chances: Mapping[float, int]) -> float:
    """Two-sided p-value (twice the smaller tail, at most 1) of ``successes`` among independent
    trials with ``chances`` (success probability -> number of trials).

    Exact (a convolution of the binomials, ``binomial_two_sided`` when there is one chance)
    unless that would take more than a few million steps, when the expected count is large
    enough for the normal approximation with a continuity correction. A normal approximation
    at a small expected count (a few signals at 100x) calls luck significant far too often.
    """
    chances = {p: n for p, n in chances.items() if n}
    if any(not 0 <= p <= 1 or n < 0 for p, n in chances.items()):
        raise ValueError(f"invalid chances={chances!r}: probabilities in [0, 1], counts >= 0")
    certain = sum(n for p, n in chances.items() if p == 1)
    uncertain = {p: n for p, n in chances.items() if 0 < p < 1}
    k = successes - certain  # the certain trials always succeed
    trials = sum(uncertain.values())
    if k < 0 or k > trials:
        return 0.0
    if not uncertain:
        return 1.0
    if len(uncertain) == 1:
        ((p, n),) = uncertain.items()
        return binomial_two_sided(k, n, p)
    mean = sum(p * n for p, n in uncertain.items())
    sd = math.sqrt(sum(p * (1 - p) * n for p, n in uncertain.items()))
    length = min(trials, max(k, math.ceil(mean + 15 * sd + 15))) + 1
    if length * trials > _EXACT_POISSON_BINOMIAL_STEPS:
        lower = NormalDist(mean, sd).cdf(k + 0.5)
        upper = 1 - NormalDist(mean, sd).cdf(k - 0.5)
        return min(1.0, 2 * min(lower, upper))
    pmf = [1.0]
    for p, n in uncertain.items():
        group = [binomial_pmf(j, n, p) for j in range(min(n, length - 1) + 1)]
        merged = [0.0] * min(len(pmf) + len(group) - 1, length)
        for i, a in enumerate(pmf):
            if a:
                for j, b in enumerate(group[: len(merged) - i]):
                    merged[i + j] += a * b
        pmf = merged
    lower, upper = sum(pmf[: k + 1]), sum(pmf[k:])
    return min(1.0, 2 * min(lower, upper))


def poisson_sf(count: int, mean: float) -> float:
    """``P(N >= count)`` for ``N ~ Poisson(mean)``: the lower regularized gamma ``P(count, mean)``."""
    if mean < 0:
        raise ValueError(f"invalid mean={mean}: must be >= 0")
    if count <= 0:
        return 1.0
    if mean == 0:
        return 0.0
    return regularized_gamma_p(count, mean)


# -- Kolmogorov–Smirnov and runs --------------------------------------------------------------


def kolmogorov_sf(statistic: float, count: int) -> float:
    """``P(D_n >= statistic)`` for the one-sample KS statistic of ``count`` continuous values.

    The Kolmogorov distribution ``Q(z) = 2 sum (-1)^(j-1) exp(-2 j^2 z^2)`` (and its
    Jacobi-theta form for small ``z``), at Stephens' (1970) corrected
    ``z = (sqrt(n) + 0.12 + 0.11 / sqrt(n)) D``, as in Numerical Recipes 6.14: within about
    0.005 of the exact tail from n = 35 on, and closer in the tail that decides a test.
    """
    if count < 1:
        raise ValueError(f"invalid count={count}: must be at least 1")
    if statistic <= 0:
        return 1.0
    root = math.sqrt(count)
    z = (root + 0.12 + 0.11 / root) * statistic
    if z < 0.042:
        return 1.0
    if z < 1.18:
        y = math.exp(-math.pi**2 / (8 * z * z))
        cdf = math.sqrt(2 * math.pi) / z * (y + y**9 + y**25 + y**49)
        return min(1.0, max(0.0, 1.0 - cdf))
    x = math.exp(-2 * z * z)
    return max(0.0, 2 * (x - x**4 + x**9))


def ks_uniform(values: Iterable[float]) -> tuple[float, float]:
    """The KS statistic of ``values`` against the uniform law on [0, 1], and its p-value."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("ks_uniform needs at least one value")
    above = max((i + 1) / n - u for i, u in enumerate(ordered))
    below = max(u - i / n for i, u in enumerate(ordered))
    statistic = max(above, below)
    return statistic, kolmogorov_sf(statistic, n)


def runs_test(sequence: Iterable[bool]) -> tuple[float, float]:
    """The Wald–Wolfowitz (1940) runs test of a two-valued sequence: ``(z, two-sided p)``.

    Too few runs means like follows like (streaks), too many means alternation; either
    way the rounds are not independent. By the normal approximation to the number of runs,
    with mean ``2 n1 n2 / N + 1`` and variance ``2 n1 n2 (2 n1 n2 - N) / (N^2 (N - 1))``.
    A sequence of one value has no runs to test: ``(0.0, 1.0)``.
    """
    runs = n1 = n2 = 0
    previous: bool | None = None
    for item in sequence:
        item = bool(item)
        if item:
            n1 += 1
        else:
            n2 += 1
        if item is not previous:
            runs += 1
            previous = item
    total = n1 + n2
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    mean = 2 * n1 * n2 / total + 1
    variance = 2 * n1 * n2 * (2 * n1 * n2 - total) / (total * total * (total - 1))
    if variance <= 0:
        return 0.0, 1.0
    z = (runs - mean) / math.sqrt(variance)
    return z, 2 * NormalDist().cdf(-abs(z))


# -- many tests at once ------------------------------------------------------------------------


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the given order.

    Rejecting every hypothesis whose adjusted p-value is below ``alpha`` keeps the chance of
    any false rejection at most ``alpha``, whatever the dependence between the tests.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float], q: float = 0.05) -> tuple[list[bool], list[float]]:
    """Which hypotheses the Benjamini–Hochberg step-up procedure rejects at FDR ``q``.

    Benjamini & Hochberg (1995), JRSS B 57(1):289-300: with the ``m`` p-values sorted,
    reject the ``k`` smallest for the largest ``k`` with ``p_(k) <= k q / m``. Also returns
    the adjusted p-values (``min_{j >= i} m p_(j) / j``, capped at 1; R's
    ``p.adjust(method="BH")``), in the input order: a hypothesis is rejected exactly when
    its adjusted p-value is at most ``q``.
    """
    if not 0 < q < 1:
        raise ValueError(f"invalid q={q!r}: must be in (0, 1), e.g. 0.05")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):  # from the largest p-value down
        index = order[rank - 1]
        running = min(running, m * p_values[index] / rank)
        adjusted[index] = min(1.0, running)
    passing = [rank for rank in range(1, m + 1) if p_values[order[rank - 1]] <= rank * q / m]
    cutoff = max(passing, default=0)
    rejected = [False] * m
    for rank in range(1, cutoff + 1):
        rejected[order[rank - 1]] = True
    return rejected, adjusted
