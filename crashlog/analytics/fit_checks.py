"""The statistical checks behind ``analytics.fit``, each against a ``crashlog.law.Law``.

Each takes the usable values in hundredths (in round order), the law (at the claimed RTP, or
at ``rtp = 1`` when only the shape is tested: ``claimed`` False) and the level it runs at,
and returns a ``FitCheck``. See ``analytics.fit`` for what each promises.
"""

from __future__ import annotations

import bisect
import functools
import math
import random
from collections import Counter
from decimal import Decimal

import attrs

from crashlog.analytics.inference import (
    binomial_cdf,
    binomial_sf,
    binomial_two_sided,
    chi_square,
    chi_square_sf,
    ks_uniform,
    poisson_sf,
    runs_test,
)
from crashlog.analytics.strips import RUN_LENGTH, WINDOW, repeated_runs, squared_masses
from crashlog.law import MAX_CRASH, Law

_ONE = 100  # 1.00 in hundredths
_CAP = int(MAX_CRASH * 100)

#: Values a screen reader or a lazy scraper returns too often.
ROUND_VALUES = tuple(
    Decimal(v) for v in ("1.50", "2.00", "2.50", "3.00", "4.00", "5.00", "6.00", "7.00", "8.00", "9.00",
                         "10.00", "20.00", "50.00", "100.00")
)
#: Lower edges of the chi-square bins, before merging bins that expect fewer than 5 rounds.
BIN_EDGES = tuple(
    Decimal(v)
    for v in ("1.00", "1.01", "1.02", "1.03", "1.05", "1.07", "1.10", "1.15", "1.20", "1.25", "1.30", "1.40",
              "1.50", "1.60", "1.75", "2.00", "2.25", "2.50", "3.00", "3.50", "4.00", "5.00", "6.00", "7.50",
              "10.00", "15.00", "20.00", "30.00", "50.00", "100.00", "200.00", "500.00", "1000.00", "10000.00")
)
MIN_EXPECTED = 5.0
_EDGES = tuple(int(e * 100) for e in BIN_EDGES)  # in hundredths

#: Classes of the repeat check (hundredths): two neighbours in the same class are compared
#: with the chance that two values of that class are equal. Wide enough that the chance is
#: small (at most 2%, so the Poisson tail fits), split at 2.00 like the runs check.
_REPEAT_CLASSES = (101, 150, 200, 300, 500, 1000, _CAP + 1)


@attrs.frozen
class FitCheck:
    """One check of the law: its statistic, p-value and whether it fired at the report's level."""

    name: str
    statistic: float
    p_value: float
    #: True when ``p_value`` is below the level of this check (``alpha / 7`` for statistical
    #: checks; a value check fires on any offending value).
    rejected: bool
    #: The flag it raises when rejected.
    flag: str | None
    #: What was observed, against what the law expects.
    detail: str


@functools.cache
def _equal_in_class(shift: int) -> tuple[float, ...]:
    """Per repeat class: ``P(two independent values are equal | both fall in the class)``."""
    bounds = _REPEAT_CLASSES
    c = 101 - shift
    return tuple(
        squared_masses(lo, hi, shift) / (c * (1 / (lo - shift) - 1 / (hi - shift))) ** 2
        for lo, hi in zip(bounds, bounds[1:])
    )


@functools.cache
def _whole_mass(shift: int) -> float:
    """``P(X is a whole number >= 2.00 | X >= 1.01)`` below the cap."""
    c = 101 - shift
    return sum(c / ((h - shift) * (h + 1 - shift)) for h in range(200, _CAP, 100))


def _tested(name: str, flag: str, statistic: float, p_value: float, level: float, detail: str) -> FitCheck:
    """A statistical check, rejected when its p-value is below its level."""
    return FitCheck(name, statistic, p_value, p_value < level, flag, detail)


def _law_words(law: Law, claimed: bool) -> str:
    return f"{law.name} at r = {law.rtp:g}" if claimed else f"the shape of {law.name} above 1.00"


# quality_checks has its own instant_busts, spikes and repeats checks: they differ on purpose
# (an RTP always known, Holm's mid-p, round ids); see the comments there.
def instant_busts(values: list[int], law: Law, claimed: bool, level: float) -> FitCheck:
    n = len(values)
    busts = sum(1 for h in values if h == _ONE)
    expected = law.instant_bust_probability()
    if not claimed:
        # The most generous game, r = 1, busts least often; fewer than that is a collection fault.
        p_value = binomial_cdf(busts, n, expected) if expected > 0 else 1.0
        flag, words = "missing_instant_busts", f"the most generous {law.name} law, r = 1,"
    else:
        p_value = binomial_two_sided(busts, n, expected)
        flag = "missing_instant_busts" if busts < n * expected else "rtp_below_claim"
        words = _law_words(law, claimed)
    spread = math.sqrt(n * expected * (1 - expected))
    z = (busts - n * expected) / spread if spread else 0.0
    detail = f"{busts:,} of {n:,} rounds at 1.00 ({busts / n:.2%}); {words} expects {expected:.2%}"
    return _tested("instant_busts", flag, z, p_value, level, detail)


def _merged(counts: list[int], probabilities: list[float], n: int) -> tuple[list[int], list[float]]:
    """Adjacent bins merged from the left until each expects ``MIN_EXPECTED`` rounds."""
    merged_counts: list[int] = []
    merged_probs: list[float] = []
    count, probability = 0, 0.0
    for c, p in zip(counts, probabilities, strict=True):
        count, probability = count + c, probability + p
        if n * probability >= MIN_EXPECTED:
            merged_counts.append(count)
            merged_probs.append(probability)
            count, probability = 0, 0.0
    if probability > 0 or count:
        if merged_counts:  # a short last bin joins the one before it
            merged_counts[-1] += count
            merged_probs[-1] += probability
        else:
            merged_counts.append(count)
            merged_probs.append(probability)
    return merged_counts, merged_probs


def chi_square_check(values: list[int], law: Law, claimed: bool, level: float) -> FitCheck:
    probabilities = law.bin_probabilities(list(BIN_EDGES))
    counts = [0] * len(_EDGES)
    for h in values:
        counts[bisect.bisect_right(_EDGES, h) - 1] += 1
    if not claimed:
        # The shape above 1.00, whatever r: drop the 1.00 bin, renormalise the rest.
        scale = 1 - probabilities[0]
        counts, probabilities = counts[1:], [p / scale for p in probabilities[1:]]
    rounds = sum(counts)
    counts, probabilities = _merged(counts, probabilities, rounds)
    if len(counts) < 2:
        return FitCheck("chi_square", 0.0, 1.0, False, "shape_chi_square", "too few rounds for two bins")
    statistic, df = chi_square(counts, probabilities)
    p_value = chi_square_sf(statistic, df)
    worst = max(range(len(counts)), key=lambda i: abs(counts[i] - rounds * probabilities[i]))
    detail = (
        f"{rounds:,} rounds against {_law_words(law, claimed)}, {df + 1} bins (df {df}); the largest gap: "
        f"{counts[worst]:,} observed, {rounds * probabilities[worst]:,.1f} expected"
    )
    return _tested("chi_square", "shape_chi_square", statistic, p_value, level, detail)


def ks_check(values: list[int], law: Law, claimed: bool, level: float, seed: int) -> FitCheck:
    # A stream of its own: random.Random(seed) would replay the draws of a CrashGame with the
    # same seed, and a v equal to the draw that made x is not independent of x.
    generator = random.Random(f"crashlog.fit.ks-{seed}")
    floor = 0.0 if claimed else law.instant_bust_probability()
    scale = 1.0 - floor
    pieces: dict[int, tuple[float, float]] = {}  # hundredths -> (P(X < x), P(X = x)): values repeat
    transforms = []
    for h in values:
        if not claimed and h == _ONE:
            continue  # the shape above 1.00 only
        piece = pieces.get(h)
        if piece is None:
            at_least, above = law.survival_h(h), law.survival_h(h + 1)
            piece = pieces[h] = (1.0 - at_least, at_least - above)
        transforms.append((piece[0] + generator.random() * piece[1] - floor) / scale)
    if not transforms:
        return FitCheck("ks", 0.0, 1.0, False, "shape_ks", "no rounds to transform")
    statistic, p_value = ks_uniform(transforms)
    detail = (
        f"randomized PIT of {len(transforms):,} rounds against {_law_words(law, claimed)}: "
        f"largest gap to uniform {statistic:.4f}"
    )
    return _tested("ks", "shape_ks", statistic, p_value, level, detail)


def runs_check(values: list[int], level: float) -> FitCheck:
    z, p_value = runs_test(h >= 200 for h in values)
    detail = f"runs of X >= 2.00 against independent rounds: z = {z:+.2f}"
    return _tested("runs", "serial_dependence", z, p_value, level, detail)


def spikes_check(values: list[int], law: Law, level: float) -> FitCheck:
    """Each of ``ROUND_VALUES`` too often, or the whole values (2.00, 3.00, ...) as a group
    too rarely (a scraper whose pattern wanted a decimal point): Bonferroni over all."""
    above = [h for h in values if h > _ONE]
    counts = Counter(above)
    rounds = len(above)
    name = "whole_value_spikes"
    if not rounds:
        return FitCheck(name, 0.0, 1.0, False, name, "no rounds above 1.00")
    tests = len(ROUND_VALUES) + 1
    worst, worst_p, worst_ratio = ROUND_VALUES[0], 1.0, 0.0
    for value in ROUND_VALUES:
        h = int(value * 100)
        mass = law.conditional_mass(h)
        p = binomial_sf(counts[h], rounds, mass)
        if p < worst_p or (p == worst_p and counts[h] / (rounds * mass) > worst_ratio):
            worst, worst_p, worst_ratio = value, p, counts[h] / (rounds * mass)
    whole = sum(1 for h in above if h % 100 == 0)
    whole_mass = _whole_mass(law.shift)
    deficit_p = binomial_cdf(whole, rounds, whole_mass)
    if deficit_p < worst_p:
        ratio = whole / (rounds * whole_mass)
        detail = (
            f"whole values 2.00, 3.00, ...: {whole:,} of {rounds:,} rounds above 1.00, the law expects "
            f"{rounds * whole_mass:,.1f} ({ratio:.2f}x): whole values dropped (a pattern that wanted a decimal point)"
        )
        return _tested(name, "whole_value_deficit", ratio, min(1.0, tests * deficit_p), level, detail)
    h = int(worst * 100)
    detail = (
        f"{worst}: {counts[h]:,} of {rounds:,} rounds above 1.00, the law expects "
        f"{rounds * law.conditional_mass(h):,.1f} ({worst_ratio:.1f}x); whole values {whole:,}, "
        f"expected {rounds * whole_mass:,.1f}"
    )
    return _tested(name, name, worst_ratio, min(1.0, tests * worst_p), level, detail)


def repeats_check(values: list[int], law: Law, level: float) -> FitCheck:
    # Two neighbours can only be equal when they share a class; given their classes, equality
    # has a known chance under the law. Conditioning on the classes keeps the check about
    # repeated rows: a game whose rounds cluster by size (the runs check's business) does not
    # raise it.
    equal_in_class = _equal_in_class(law.shift)
    repeats, expected = 0, 0.0
    for a, b in zip(values, values[1:]):
        if a > _ONE and b > _ONE:
            first = bisect.bisect_right(_REPEAT_CLASSES, a) - 1
            if first == bisect.bisect_right(_REPEAT_CLASSES, b) - 1:
                expected += equal_in_class[first]
                repeats += a == b
    p_value = poisson_sf(repeats, expected)
    ratio = repeats / expected if expected else 0.0
    detail = f"{repeats:,} back-to-back equal values above 1.00, the law expects {expected:,.1f}"
    return _tested("repeated_rows", "repeated_rows", ratio, p_value, level, detail)


def strips_check(values: list[int], law: Law, level: float) -> FitCheck:
    """Runs of values that come back a few rows later: a re-read history strip."""
    found = repeated_runs(values, shift=law.shift)
    ratio = found.clumps / found.expected if found.expected else 0.0
    detail = found.detail(RUN_LENGTH, WINDOW)
    return _tested("repeated_runs", "repeated_runs", ratio, found.p_value, level, detail)
