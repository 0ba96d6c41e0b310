"""Intervals and tests shared by every analysis: Wilson, normal means, chi-square, runs.

Also the exact tails the tests need (incomplete gamma and beta, so chi-square, Poisson and
binomial tails, and the binomial mid-p; the Poisson-binomial law of hits at unequal chances),
the Kolmogorov distribution for a KS test, the expected longest run, the Wald–Wolfowitz runs
test, and the adjustments for many tests at once (Holm's for a family-wise level,
Benjamini–Hochberg's for a false discovery rate). The tails live in ``_tails`` and
``_counts``; import every name from here.

Each function says which published method it follows, so a reader can check it against
the source; tests/unit/test_inference.py checks each against scipy and mpmath. Inputs
are plain counts and floats (a NaN is a ValueError naming the argument); nothing here
touches the database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from statistics import NormalDist

import attrs

from crashlog.analytics._counts import expected_longest_run, poisson_binomial_tails, poisson_binomial_two_sided
from crashlog.analytics._tails import (
    _normal_upper,
    _number,
    _probabilities,
    binomial_cdf,
    binomial_mid_p,
    binomial_pmf,
    binomial_sf,
    binomial_two_sided,
    kolmogorov_sf,
    poisson_sf,
    regularized_beta,
    regularized_gamma_p,
    regularized_gamma_q,
)

__all__ = [
    "CONFIDENCE",
    "Interval",
    "benjamini_hochberg",
    "binomial_cdf",
    "binomial_mid_p",
    "binomial_pmf",
    "binomial_sf",
    "binomial_two_sided",
    "chi_square",
    "chi_square_sf",
    "expected_longest_run",
    "holm_adjust",
    "kolmogorov_sf",
    "ks_uniform",
    "mean_interval",
    "poisson_binomial_tails",
    "poisson_binomial_two_sided",
    "poisson_sf",
    "regularized_beta",
    "regularized_gamma_p",
    "regularized_gamma_q",
    "runs_test",
    "wilson_interval",
    "z_value",
]

CONFIDENCE = 0.95


@attrs.frozen
class Interval:
    """A two-sided confidence interval ``[low, high]``."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __iter__(self) -> Iterator[float]:
        """``low, high = interval`` unpacks it."""
        yield self.low
        yield self.high


def z_value(confidence: float = CONFIDENCE) -> float:
    """The two-sided standard normal quantile: 1.959964 for 95%."""
    if not 0 < confidence < 1:
        raise ValueError(f"invalid confidence={confidence!r}: must be in (0, 1), e.g. 0.95")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson's score interval for a proportion (Wilson 1927; Newcombe 1998, method 3).

    Unlike the textbook ``p +- z sqrt(p(1-p)/n)`` it stays inside [0, 1] and behaves for
    0 or n successes, which is where small samples live.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"invalid successes={successes}, trials={trials}")
    z = z_value(confidence)
    if trials == 0:
        return Interval(0.0, 1.0)
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
    _number("mean", mean)
    if not variance >= 0:
        raise ValueError(f"invalid variance={variance!r}: must be a number >= 0")
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
    if _number("statistic", statistic) <= 0:
        return 1.0
    return regularized_gamma_q(df / 2, statistic / 2)


def chi_square(observed: Iterable[int], probabilities: Iterable[float]) -> tuple[float, int]:
    """Pearson's statistic of ``observed`` counts against bin ``probabilities``, and its df."""
    counts = list(observed)
    probs = _probabilities("probabilities", probabilities)
    if len(counts) != len(probs) or len(counts) < 2:
        raise ValueError("observed and probabilities must have the same length, at least 2")
    total = sum(counts)
    statistic = sum((o - total * p) ** 2 / (total * p) for o, p in zip(counts, probs, strict=True))
    return statistic, len(counts) - 1


# -- Kolmogorov–Smirnov and runs --------------------------------------------------------------


def ks_uniform(values: Iterable[float]) -> tuple[float, float]:
    """The KS statistic of ``values`` against the uniform law on [0, 1], and its p-value."""
    ordered = sorted(_probabilities("values", values))
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
    return z, min(1.0, 2 * _normal_upper(abs(z)))  # the tail itself: 1 - cdf is 0 below 1e-16


# -- many tests at once ------------------------------------------------------------------------


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the given order.

    Rejecting every hypothesis whose adjusted p-value is below ``alpha`` keeps the chance of
    any false rejection at most ``alpha``, whatever the dependence between the tests.
    """
    p_values = _probabilities("p_values", p_values)
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
    p_values = _probabilities("p_values", p_values)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    # In exact fractions: in floats, k q / m rounds, and a p one ulp above the line passed.
    line = Fraction(q)
    adjusted = [1.0] * m
    rejected = [False] * m
    running = Fraction(1)
    for rank in range(m, 0, -1):  # from the largest p-value down
        index = order[rank - 1]
        running = min(running, Fraction(p_values[index]) * m / rank)
        adjusted[index] = _round_up(running)  # so adjusted <= q exactly when rejected
        rejected[index] = running <= line
    return rejected, adjusted


def _round_up(value: Fraction) -> float:
    """The smallest float at or above ``value``."""
    nearest = float(value)
    return math.nextafter(nearest, math.inf) if Fraction(nearest) < value else nearest
