"""Intervals and tests shared by every analysis: Wilson, normal means, chi-square, runs.

Each function says which published method it follows, so a reader can check it against
the source. Inputs are plain counts and floats; nothing here touches the database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
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
    """``P(chi2_df >= statistic)`` by the Wilson–Hilferty cube-root normal approximation.

    Wilson & Hilferty (1931): ``(X/df)^(1/3)`` is close to normal with mean
    ``1 - 2/(9 df)`` and variance ``2/(9 df)``; within 1% of the exact tail for df >= 10
    at the usual significance levels, which is all a goodness-of-fit test needs.
    """
    if df < 1:
        raise ValueError(f"invalid df={df}: must be at least 1")
    if statistic <= 0:
        return 1.0
    spread = 2 / (9 * df)
    z = ((statistic / df) ** (1 / 3) - (1 - spread)) / math.sqrt(spread)
    return 1 - NormalDist().cdf(z)


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
    100 trials on, as tests/test_statistics.py checks). Returns 0 for no trials.
    """
    if trials <= 0 or probability <= 0:
        return 0.0
    if probability >= 1:
        return float(trials)
    base = math.log(1 / probability)
    expected = math.log(trials * (1 - probability)) / base + _EULER_GAMMA / base - 0.5
    return min(float(trials), max(0.0, expected))
