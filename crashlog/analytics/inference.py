"""Intervals and tests shared by every analysis: Wilson, normal means, chi-square, runs.

Also the exact tails the tests need (incomplete gamma and beta, so chi-square, Poisson and
binomial tails, and the binomial mid-p), the Kolmogorov distribution for a KS test, the
Wald–Wolfowitz runs test, and the adjustments for many tests at once (Holm's for a
family-wise level, Benjamini–Hochberg's for a false discovery rate).

Each function says which published method it follows, so a reader can check it against
the source. Inputs are plain counts and floats; nothing here touches the database.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist

import attrs

CONFIDENCE = 0.95


def _finite(name: str, value: float) -> float:
    """``value`` if it is a finite number, else a ValueError naming the argument."""
    if not math.isfinite(value):
        raise ValueError(f"invalid {name}={value!r}: must be a finite number")
    return value


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

    Promises: the exact expectation ``sum_k P(L >= k)`` to a relative 1e-11 or better, for
    any ``trials`` and ``probability`` (0 for no trials, ``trials`` when the event is certain;
    ValueError for a NaN or infinite ``probability``). ``P(L >= k)`` comes from Uspensky's
    closed sums (Muselli 1996, "Simple expressions for success run distributions in
    Bernoulli trials", Stat. Probab. Lett. 31) where they do not cancel, else from the
    run-length recurrence ``b_m = b_(m-1) + p q^k (1 - b_(m-k-1))``; ``k`` where a run is
    certain to double precision (``floor(n/k) q^k >= 40``) or impossible (a union bound) are
    not computed. Cost: a few milliseconds at 10,000 trials, ``O(trials)`` per run length
    near the smallest likely maximum for larger ``trials``.

    (It used to be Schilling's (1990) asymptotic ``log_{1/q}(n p) + gamma / ln(1/q) - 1/2``,
    which goes negative and was clamped to 0 once ``n p`` falls below about 0.56: 50 losses
    at a 100x target showed "0.0 by chance" where the expectation is 44.3.)
    """
    _finite("probability", probability)
    if trials <= 0 or probability <= 0:
        return 0.0
    if probability >= 1:
        return float(trials)
    q, p, n = probability, 1.0 - probability, int(trials)
    k = 1
    while k <= n and (n // k) * q**k >= 40:  # P(L < k) <= (1 - q^k)^floor(n/k) < 5e-18
        k += 1
    parts = [float(k - 1)]
    while k <= n:
        if q**k * (1 + (n - k) * p) / p < 1e-13:  # every longer run: less than this in all
            break
        tail = _run_tail_closed(n, k, q, p)
        if tail is None:
            tail = _run_tail_feller(n, k, q, p) if n >= 20 * (k + 1) else _run_tail_recurrence(n, k, q, p)
        parts.append(tail)
        k += 1
    return min(float(n), math.fsum(parts))


def _run_tail_closed(n: int, k: int, q: float, p: float) -> float | None:
    """``P(longest run >= k)`` by Uspensky's two alternating sums; None where their terms are
    so large that rounding would cost more than about 1e-13 (then use the recurrence)."""
    x, qk = p * q**k, q**k
    sums = []
    for top in (n, n - k):  # P(L < k) = S(n) - q^k S(n - k), S(m) = sum (-1)^j C(m - jk, j) x^j
        terms, j, expected = [], 0, top * x
        while top - j * k >= j:
            try:
                term = float(math.comb(top - j * k, j)) * x**j
            except OverflowError:
                return None
            terms.append(-term if j % 2 else term)
            if j > expected and term < 1e-22:
                break
            j += 1
        sums.append((math.fsum(terms), math.fsum(map(abs, terms))))
    (first, size_first), (second, size_second) = sums
    if size_first + qk * size_second > 1e3:
        return None
    return min(1.0, max(0.0, 1.0 - first + qk * second))


def _run_tail_feller(n: int, k: int, q: float, p: float) -> float:
    """``P(longest run >= k)`` from the dominant root of the run-length recurrence (Feller,
    An Introduction to Probability Theory, vol. 1, XIII.7, eq. 7.11): ``P(L < k) =
    (1 - q x) / ((k + 1 - k x) p) x^-(n+1)`` with ``x = 1 + d``, ``d = p q^k x^(k+1)``. The
    other roots are larger by a factor near ``1/q``, so at ``n >= 20 (k + 1)`` the error is
    far below rounding (within 2e-13 of the recurrence on the grid the tests check)."""
    c = p * q**k
    d = c
    for _ in range(1000):  # a contraction: the step's slope (k + 1) d stays below 1 here
        step = c * math.exp((k + 1) * math.log1p(d))
        if abs(step - d) <= 1e-16 * step:
            d = step
            break
        d = step
    x = 1 + d
    below = (1 - q * x) / ((k + 1 - k * x) * p) * math.exp(-(n + 1) * math.log1p(d))
    return min(1.0, max(0.0, 1.0 - below))


def _run_tail_recurrence(n: int, k: int, q: float, p: float) -> float:
    """``P(longest run >= k)``: ``b_m`` = P(a run of k within m trials) = ``b_(m-1)`` plus the
    chance the first such run ends at trial m (a miss, k hits, no earlier run)."""
    step = p * q**k
    b = [0.0] * k + [q**k]
    for m in range(k + 1, n + 1):
        b.append(b[-1] + step * (1.0 - b[m - k - 1]))
    return min(1.0, b[n])


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
    """``P(S = successes)`` for ``S ~ Binomial(trials, probability)``.

    Promises: a relative error of a few 1e-15 (Loader 2000, "Fast and accurate computation
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


#: Above this much work (multiply-adds of the windowed convolution) the Poisson-binomial
#: tails come from the saddlepoint approximation: by then the expected count is in the
#: thousands, where its error is below 1e-4 of the tail (tests/test_inference_reference.py).
_EXACT_POISSON_BINOMIAL_WORK = 1_500_000
#: A group's counts more than Bernstein's bound for this log-probability below its mean are
#: left out of the exact convolution: their mass is below 1e-25.
_NEGLIGIBLE_LOG = math.log(1e25)


def poisson_binomial_two_sided(successes: int, chances: Mapping[float, int]) -> float:
    """Two-sided p-value (twice the smaller tail, at most 1) of ``successes`` among independent
    trials with ``chances`` (success probability -> number of trials).

    Promises: exact (a convolution of the binomials, ``binomial_two_sided`` when there is
    one chance) to a relative 1e-12 whenever that takes at most a few million steps, which
    covers every expected count below about a thousand; beyond, the saddlepoint
    approximation (Lugannani–Rice with Daniels' continuity correction), within 1e-4 of the
    exact tail there. Far tails are relative too (no ``1 - cdf``). Trials with the same
    chance form one binomial, so a million trials at a few chances cost little. (It used to
    switch to a normal approximation by the number of trials: at 30-150 expected hits that
    moved p across 0.05, e.g. 133 hits in {100x: 55, 1000x: 114,668}: 0.0497, exact 0.0547.)
    """
    lower, upper = poisson_binomial_tails(successes, chances)
    return min(1.0, 2 * min(lower, upper))


def poisson_binomial_tails(successes: int, chances: Mapping[float, int]) -> tuple[float, float]:
    """``(P(S <= successes), P(S >= successes))`` for ``S`` the number of successes among
    independent trials with ``chances`` (success probability -> number of trials); each with
    the accuracy ``poisson_binomial_two_sided`` promises."""
    for p, n in chances.items():
        if not (math.isfinite(p) and 0 <= p <= 1) or n < 0:
            raise ValueError(f"invalid chances={dict(chances)!r}: probabilities in [0, 1], counts >= 0")
    certain = sum(n for p, n in chances.items() if p == 1)
    uncertain = {p: n for p, n in chances.items() if 0 < p < 1 and n}
    k = successes - certain  # the certain trials always succeed
    trials = sum(uncertain.values())
    if k < 0 or k > trials:
        return (0.0, 1.0) if k < 0 else (1.0, 0.0)
    if not uncertain:
        return 1.0, 1.0
    if len(uncertain) == 1:
        ((p, n),) = uncertain.items()
        return binomial_cdf(k, n, p), binomial_sf(k, n, p)
    if k < sum(p * n for p, n in uncertain.items()):  # below the mean: count the failures
        failures: dict[float, int] = {}
        for p, n in uncertain.items():
            failures[1 - p] = failures.get(1 - p, 0) + n
        lower, upper = _poisson_binomial_upper_side(trials - k, failures)
        return upper, lower
    return _poisson_binomial_upper_side(k, uncertain)


def _poisson_binomial_upper_side(k: int, chances: Mapping[float, int]) -> tuple[float, float]:
    """``(P(S <= k), P(S >= k))`` for ``k`` at or above the mean: exact by the cheaper of two
    pooled convolutions (the successes from just below the mean up, or the failures from 0
    up, which is short in the far upper tail), else by the saddlepoint."""
    exact = _pooled_convolution(k, chances, cut_below=True)
    if exact is not None:
        return exact
    failures = _complements(chances)
    exact = _pooled_convolution(sum(chances.values()) - k, failures, cut_below=False)
    if exact is not None:
        return exact[1], exact[0]
    return _saddlepoint_upper(sum(failures.values()) - k, failures), _saddlepoint_upper(k, chances)


def _complements(chances: Mapping[float, int]) -> dict[float, int]:
    """The chances of failure: ``1 - p`` -> the number of trials."""
    failures: dict[float, int] = {}
    for p, n in chances.items():
        failures[1 - p] = failures.get(1 - p, 0) + n
    return failures


def _pooled_convolution(k: int, chances: Mapping[float, int], *, cut_below: bool) -> tuple[float, float] | None:
    """``(P(S <= k), P(S >= k))`` by convolving the binomials with every count above ``k`` in one
    bucket (they all land in the upper tail). With ``cut_below`` (only for ``k`` at or above the
    mean) each binomial starts Bernstein's bound below its mean, leaving out less than 1e-25.
    None when that would take more than ``_EXACT_POISSON_BINOMIAL_WORK`` steps."""
    groups = []
    work, width, base = 0, 1, 0
    for p, n in chances.items():
        reach = _NEGLIGIBLE_LOG / 3 + math.sqrt(_NEGLIGIBLE_LOG**2 / 9 + 2 * _NEGLIGIBLE_LOG * n * p * (1 - p))
        low = max(0, math.floor(n * p - reach)) if cut_below else 0
        high = min(n, k + 1)
        groups.append((p, n, low, high))
        base += low
        work += width * (high - low + 1)
        width = min(width + high - low, k + 2)
    if work > _EXACT_POISSON_BINOMIAL_WORK:
        return None
    last = k + 1 - base  # the bucket of every count above k
    pmf = [1.0]
    for p, n, low, high in groups:
        group = [binomial_pmf(j, n, p) for j in range(low, high + 1)]
        if high < n:
            group[-1] = binomial_sf(high, n, p)  # everything from `high` up
        pmf = _convolve_pooled(pmf, group, last)
    at = k - base
    lower = math.fsum(pmf[: at + 1])
    upper = math.fsum(pmf[at:]) if at < len(pmf) else 0.0
    return min(1.0, lower), min(1.0, upper)


def _convolve_pooled(pmf: list[float], group: list[float], last: int) -> list[float]:
    """``pmf * group`` with every index from ``last`` up added into index ``last``."""
    suffix = list(itertools.accumulate(reversed(group)))[::-1] + [0.0]
    merged = [0.0] * min(len(pmf) + len(group) - 1, last + 1)
    top = len(merged) - 1
    for i, a in enumerate(pmf):
        if not a:
            continue
        if i >= top:
            merged[top] += a * suffix[0]
            continue
        m = min(len(group), top - i) if top == last else len(group)
        merged[i : i + m] = map(operator.add, merged[i : i + m], map(a.__mul__, group[:m]))
        if m < len(group):
            merged[top] += a * suffix[m]
    return merged


def _saddlepoint_upper(k: int, chances: Mapping[float, int]) -> float:
    """``P(S >= k)`` by Lugannani–Rice at ``k - 1/2``, ``S`` a sum of binomials."""
    trials = sum(chances.values())
    if k <= 0:
        return 1.0
    if k > trials:
        return 0.0
    if k == trials:
        return math.exp(sum(n * math.log(p) for p, n in chances.items()))
    x = k - 0.5
    mean = sum(n * p for p, n in chances.items())
    variance = sum(n * p * (1 - p) for p, n in chances.items())

    def moments(s: float) -> tuple[float, float, float]:
        cgf = slope = curvature = 0.0  # the cumulant generating function K less s * mean
        for p, n in chances.items():
            # logistic form of p e^s / (1 - p + p e^s), stable for any s
            t = math.log(p) - math.log1p(-p) + s
            share, rest = _logistic(t), _logistic(-t)
            if abs(s) < 1:  # K(s) - s mean, without the cancellation near the mean
                cgf += n * (math.log1p(p * math.expm1(s)) - p * s)
            else:
                softplus = t + math.log1p(math.exp(-t)) if t > 0 else math.log1p(math.exp(t))
                cgf += n * (math.log1p(-p) + softplus - p * s)
            slope += n * share
            curvature += n * share * rest
        return cgf, slope, curvature

    s = 0.0 if abs(x - mean) < 1e-300 else (x - mean) / variance
    for _ in range(200):  # Newton on K'(s) = x; K' is increasing
        _, slope, curvature = moments(s)
        step = (slope - x) / curvature
        s -= max(-2.0, min(2.0, step))
        if abs(step) < 1e-14 * max(1.0, abs(s)):
            break
    cgf, _, curvature = moments(s)
    if abs(s) < 1e-6:  # at the mean: the limit of the formula, 1/2 minus the skewness term
        third = sum(n * p * (1 - p) * (1 - 2 * p) for p, n in chances.items())
        return 0.5 - third / (6 * math.sqrt(2 * math.pi) * variance**1.5)
    w = math.copysign(math.sqrt(max(0.0, 2 * (s * (x - mean) - cgf))), s)
    u = 2 * math.sinh(s / 2) * math.sqrt(curvature)
    density = math.exp(-w * w / 2) / math.sqrt(2 * math.pi)
    return min(1.0, max(0.0, _normal_upper(w) + density * (1 / u - 1 / w)))


def _logistic(t: float) -> float:
    """``1 / (1 + e^-t)`` without overflow, to full relative precision on both sides."""
    return 1 / (1 + math.exp(-t)) if t >= 0 else math.exp(t) / (1 + math.exp(t))


def _normal_upper(z: float) -> float:
    """``P(Z >= z)`` for a standard normal, directly (``1 - cdf`` is 0 below 1e-16)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


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

    Promises, measured against scipy's ``kstwo`` (tests/test_inference_reference.py): where it
    decides a test (p <= 0.2) and ``count`` is at most 100,000, twice the exact one-sided tail
    (Birnbaum and Tingey 1951), within 0.1% of the exact two-sided tail (the two one-sided
    events rarely meet there). Elsewhere the Kolmogorov distribution at Stephens' (1970)
    corrected ``z = (sqrt(n) + 0.12 + 0.11 / sqrt(n)) D`` (Numerical Recipes 6.14): within
    0.025 of the exact tail from n = 10 on, 0.005 from n = 1000, and above 100,000 values
    within 5e-4, and 1.5% of tails down to 1e-12. (It once claimed 0.005 from n = 35, where
    it is off by 0.017.) Cost: up to a quarter of a second at 100,000 values.
    """
    _finite("statistic", statistic)
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
