"""Laws of counts built from many trials: the longest run of an event (its exact expectation),
and the Poisson-binomial law of successes at unequal chances (exact tails, or a saddlepoint).

Private: ``crashlog.analytics.inference`` re-exports the public names (import them from there).
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Mapping

from crashlog.analytics._tails import _finite, _normal_upper, binomial_cdf, binomial_pmf, binomial_sf


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


#: Above this much work (multiply-adds of the windowed convolution) the Poisson-binomial
#: tails come from the saddlepoint approximation: by then the expected count is in the
#: hundreds, where its error is below 1e-5 of the tail (tests/unit/test_inference.py).
_EXACT_POISSON_BINOMIAL_WORK = 1_500_000
#: A group's counts more than Bernstein's bound for this log-probability below its mean are
#: left out of the exact convolution: their mass is below 1e-25.
_NEGLIGIBLE_LOG = math.log(1e25)


def poisson_binomial_two_sided(successes: int, chances: Mapping[float, int]) -> float:
    """Two-sided p-value (twice the smaller tail, at most 1) of ``successes`` among independent
    trials with ``chances`` (success probability -> number of trials).

    Promises: exact (a convolution of the binomials, ``binomial_two_sided`` when there is
    one chance) to a relative 1e-9 whenever that takes at most 1.5 million steps, which
    covers every expected count up to a few hundred; beyond, the saddlepoint approximation
    (Lugannani–Rice with Daniels' continuity correction), within 1e-5 of the exact tail
    there, so a verdict at 0.05 moves only for a p within 5e-7 of it. Far tails are relative
    too (no ``1 - cdf``); a ValueError for a NaN chance or a negative count. Trials with the same
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
