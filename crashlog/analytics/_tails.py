"""Exact tails for the tests: incomplete gamma and beta (so chi-square, Poisson and binomial
tails), the binomial pmf and mid-p, the normal tail, and the Kolmogorov distribution.

Private: ``crashlog.analytics.inference`` re-exports the public names (import them from
there). Each function says which published method it follows; tests/unit/test_inference.py
checks each against scipy and mpmath.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def _finite(name: str, value: float) -> float:
    """``value`` if it is a finite number, else a ValueError naming the argument."""
    if not math.isfinite(value):
        raise ValueError(f"invalid {name}={value!r}: must be a finite number")
    return value


def _number(name: str, value: float) -> float:
    """``value`` unless it is NaN (a NaN would pass every comparison-based check silently)."""
    if math.isnan(value):
        raise ValueError(f"invalid {name}={value!r}: not a number")
    return value


def _probabilities(name: str, values: Iterable[float]) -> list[float]:
    """``values`` as a list, each checked to be a probability in [0, 1] (no NaN)."""
    checked = list(values)
    for value in checked:
        if not 0 <= value <= 1:
            raise ValueError(f"invalid {name}: {value!r} is not a probability in [0, 1]")
    return checked


def _normal_upper(z: float) -> float:
    """``P(Z >= z)`` for a standard normal, directly (``1 - cdf`` is 0 below 1e-16)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


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
    if not (a > 0 and x >= 0):
        raise ValueError(f"invalid a={a}, x={x}: need a > 0 and x >= 0")
    if x == 0:
        return 0.0
    return _gamma_series(a, x) if x < a + 1 else 1.0 - _gamma_fraction(a, x)


def regularized_gamma_q(a: float, x: float) -> float:
    """The upper regularized incomplete gamma ``Q(a, x) = 1 - P(a, x)``, accurate in the tail."""
    if not (a > 0 and x >= 0):
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
    if not (a > 0 and b > 0 and 0 <= x <= 1):
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
    if trials < 0 or not 0 <= probability <= 1:
        raise ValueError(f"invalid trials={trials}, probability={probability}")
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
    """``P(S = successes)`` for ``S ~ Binomial(trials, probability)``.

    Promises: a relative error below 1e-12 (Loader 2000, "Fast and accurate computation
    of binomial probabilities", the method of R's and scipy's ``dbinom``: Stirling's
    remainders and the deviance ``bd0`` instead of ``lgamma``, whose rounding at a million
    trials costs 1e-9), down to the smallest double; 0 outside ``0..trials``.
    """
    k, n, p = successes, trials, _finite("probability", probability)
    if n < 0 or not 0 <= p <= 1:
        raise ValueError(f"invalid trials={n}, probability={p}")
    if not 0 <= k <= n:
        return 0.0
    if p in (0.0, 1.0):
        return 1.0 if k == round(n * p) else 0.0
    if k == 0:
        return math.exp(n * math.log1p(-p))
    if k == n:
        return math.exp(n * math.log(p))
    exponent = (
        _stirling_rest(n) - _stirling_rest(k) - _stirling_rest(n - k)
        - _deviance(k, n * p) - _deviance(n - k, n * (1.0 - p))
    )
    return math.exp(exponent) * math.sqrt(n / (2 * math.pi * k * (n - k)))


def _stirling_rest(n: int) -> float:
    """``ln n! - (n + 1/2) ln n + n - ln sqrt(2 pi)``, Stirling's remainder (Loader 2000)."""
    if n <= 15:
        return math.lgamma(n + 1) - (n + 0.5) * math.log(n) + n - 0.5 * math.log(2 * math.pi)
    nn = float(n) * n
    return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / (1188 * nn)) / nn) / nn) / nn) / n


def _deviance(x: float, mean: float) -> float:
    """``x ln(x / mean) + mean - x`` without the cancellation near ``x = mean`` (Loader's bd0)."""
    if abs(x - mean) < 0.1 * (x + mean):
        v = (x - mean) / (x + mean)
        total = (x - mean) * v
        term = 2 * x * v
        v2 = v * v
        for j in range(1, 1000):
            term *= v2
            following = total + term / (2 * j + 1)
            if following == total:
                break
            total = following
        return total
    return x * math.log(x / mean) + mean - x


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


def poisson_sf(count: int, mean: float) -> float:
    """``P(N >= count)`` for ``N ~ Poisson(mean)``: the lower regularized gamma ``P(count, mean)``."""
    if not mean >= 0:
        raise ValueError(f"invalid mean={mean}: must be a number >= 0")
    if count <= 0:
        return 1.0
    if mean == 0:
        return 0.0
    return regularized_gamma_p(count, mean)


# -- Kolmogorov–Smirnov and runs --------------------------------------------------------------


def kolmogorov_sf(statistic: float, count: int) -> float:
    """``P(D_n >= statistic)`` for the one-sample KS statistic of ``count`` continuous values.

    Promises, measured against scipy's ``kstwo`` (tests/unit/test_inference.py): where it
    decides a test (p <= 0.2) and ``count`` is at most 100,000, twice the exact one-sided tail
    (Birnbaum and Tingey 1951), within 0.1% of the exact two-sided tail (the two one-sided
    events rarely meet there). Elsewhere the Kolmogorov distribution at Stephens' (1970)
    corrected ``z = (sqrt(n) + 0.12 + 0.11 / sqrt(n)) D`` (Numerical Recipes 6.14): within
    0.025 of the exact tail from n = 10 on, 0.005 from n = 1000, and above 100,000 values
    within 5e-4, and 1.5% of tails down to 1e-12. (It once claimed 0.005 from n = 35, where
    it is off by 0.017.) Cost: up to a quarter of a second at 100,000 values.
    """
    _number("statistic", statistic)
    if count < 1:
        raise ValueError(f"invalid count={count}: must be at least 1")
    if statistic <= 0:
        return 1.0
    if statistic >= 1:
        return 0.0
    approximate = _kolmogorov_stephens(statistic, count)
    if approximate <= 0.3 and count <= _EXACT_KS_COUNT:  # within 0.03: the exact may be below 0.2
        tail = 2 * _smirnov_sf(statistic, count)
        if tail <= 0.2:
            return tail
    return approximate


#: Above this many values the KS tail is Stephens' approximation (the exact sum costs O(n)).
_EXACT_KS_COUNT = 100_000


def _kolmogorov_stephens(statistic: float, count: int) -> float:
    """The Kolmogorov distribution's tail at Stephens' corrected ``z`` (Numerical Recipes)."""
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


def _smirnov_sf(d: float, n: int) -> float:
    """``P(D_n+ >= d)``, exact: ``d sum_j C(n, j) (1 - d - j/n)^(n-j) (d + j/n)^(j-1)`` (Birnbaum
    and Tingey 1951), a sum of positive terms, summed in logs until they stop mattering."""
    terms: list[float] = []
    log_comb = largest = 0.0
    for j in range(0, math.floor(n * (1 - d)) + 1):
        if j:
            log_comb += math.log((n - j + 1) / j)
        rest = 1 - d - j / n
        if rest <= 0:
            break
        term = math.exp(log_comb + (n - j) * math.log(rest) + (j - 1) * math.log(d + j / n))
        terms.append(term)
        largest = max(largest, term)
        if j > 10 and term < 1e-20 * largest and term < terms[-2]:
            break
    return min(1.0, d * math.fsum(terms))
