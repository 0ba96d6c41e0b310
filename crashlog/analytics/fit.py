"""Do these multipliers follow the law of crash games, and if not, is it the data or the game?

The law: the displayed crash point ``X`` has ``P(X >= x) = r / x`` for every two-decimal
``x >= 1.01`` and ``P(X = 1.00) = 1 - r / 1.01`` (``r`` the RTP; see crashlog.law).
``fit`` checks a sequence of displayed multipliers, in round order, against it:

Estimates (reported, whatever the verdict):

- ``rtp_estimate``: the maximum-likelihood RTP. Above 1.00 the law's shape does not depend
  on ``r`` (``P(X >= x | X >= 1.01) = 1.01 / x``), so the whole likelihood of ``r`` is in the
  share ``s`` of 1.00 busts: ``r = 1.01 (1 - s)``, standard error ``1.01 sqrt(s (1 - s) / n)``,
  and ``rtp_interval`` from Wilson's interval for ``s``.
- ``rtp_tail_estimate``: ``r`` from the rounds that reach 2.00, ``2 K / n`` (``K ~
  Binomial(n, r / 2)``): what a bot cashing out at 2.00 earns, a check on the first.

Checks, each with its statistic and p-value. Value checks (the law gives them probability 0,
so one offending value is proof): ``null_values`` (None or NaN), ``off_grid`` (not a whole
number of cents, e.g. three decimals), ``below_one``, ``above_cap``. Statistical checks, on the
usable values (on the grid, 1.00 to the cap):

- ``instant_busts``: the count of 1.00 busts, exact binomial. With a claimed ``rtp``, two-sided:
  too few busts is flagged ``missing_instant_busts`` (a collection problem), too many
  ``rtp_below_claim`` (the game keeps more than it says). Without one, one-sided against the
  most generous law ``r = 1`` (an estimate above 1.00 is impossible for a house game).
- ``chi_square``: Pearson's test on bins with the law's exact probabilities
  (``bin_probabilities``), adjacent bins merged until each expects at least 5 rounds.
- ``ks``: Kolmogorov–Smirnov on randomized probability-integral transforms
  (``randomized_pit`` with a seeded generator): exactly uniform under the law. A plain KS
  test of the discrete values is not, and rejects fair data once n is large.
- ``runs``: the Wald–Wolfowitz runs test on ``X >= 2``: are rounds independent?
- ``whole_value_spikes``: each of ``ROUND_VALUES`` (1.50, 2.00, 3.00, ...) against its exact
  probability (screen readers that return 2.00 far too often), the smallest p-value times
  their number (Bonferroni within the check).
- ``repeated_rows``: back-to-back equal values above 1.00 against their Poisson expectation
  (a scraper that stores a round twice). Rows repeated apart are found by round id, not here.

The spike and repeat checks use only the rounds above 1.00, whose law does not depend on ``r``.

Overall false-alarm rate: each of the six statistical checks is run at ``alpha / 6``
(Bonferroni), so on data that follow the law the chance that any of them fires, and the
verdict is not ``consistent``, is at most ``alpha`` (a little less: the checks are close to
independent and the discrete ones are conservative). The value checks cannot fire on such data.

With ``rtp=None`` the RTP is estimated and only the shape is tested: ``chi_square`` and ``ks``
test the rounds above 1.00 against ``1.01 / x``, which holds for every ``r``. Then dropping some
1.00 busts is indistinguishable from a more generous game; only an estimate above 1.00 shows it.

Verdict: ``insufficient data`` under ``MIN_ROUNDS`` usable values, or with ``rtp=None`` under
half as many above 1.00 (unless a value check proves a collection problem); else
``data-quality suspect`` when any collection flag is raised (they explain deviations too: a
spike at 2.00 also upsets the chi-square); else ``distribution deviation`` when a check of the
game fires; else ``consistent``.
"""

from __future__ import annotations

import bisect
import functools
import math
import random
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

import attrs

from crashlog.analytics.inference import (
    Interval,
    binomial_cdf,
    binomial_sf,
    binomial_two_sided,
    chi_square,
    chi_square_sf,
    ks_uniform,
    poisson_sf,
    runs_test,
)
from crashlog.analytics.rtp import check_rtp, rtp_from_busts
from crashlog.law import (
    MAX_CRASH,
    bin_probabilities,
    instant_bust_probability,
    randomized_pit,
    value_probability,
)

CONSISTENT = "consistent"
DATA_QUALITY = "data-quality suspect"
DEVIATION = "distribution deviation"
INSUFFICIENT = "insufficient data"

#: Below this many usable rounds the checks say too little: at ``r = 1`` the instant-bust
#: check would expect fewer than 5 busts.
MIN_ROUNDS = 500
#: The cash-out of the tail estimate of the RTP.
TAIL_THRESHOLD = Decimal("2.00")
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

#: Flags of a collection problem, and of a game that deviates from its law.
QUALITY_FLAGS = frozenset(
    {"null_values", "off_grid", "below_one", "above_cap", "missing_instant_busts", "whole_value_spikes",
     "repeated_rows"}
)
DEVIATION_FLAGS = frozenset({"rtp_below_claim", "shape_chi_square", "shape_ks", "serial_dependence"})

#: How many statistical checks share ``alpha`` (Bonferroni).
STATISTICAL_CHECKS = ("instant_busts", "chi_square", "ks", "runs", "whole_value_spikes", "repeated_rows")

_ONE = 100  # 1.00 in hundredths
_ONE_DECIMAL = Decimal("1.00")
_CAP = int(MAX_CRASH * 100)
# Under the law, P(X = h/100 | X >= 1.01) = 1.01 (100/h - 100/(h+1)) = 101 / (h (h + 1)).


def _conditional_mass(hundredths: int) -> float:
    return 101 / (hundredths * (hundredths + 1))


_EDGES = tuple(int(e * 100) for e in BIN_EDGES)  # in hundredths


#: Classes of the repeat check (hundredths): two neighbours in the same class are compared
#: with the chance that two values of that class are equal. Wide enough that the chance is
#: small (at most 2%, so the Poisson tail fits), split at 2.00 like the runs check.
_REPEAT_CLASSES = (101, 150, 200, 300, 500, 1000, _CAP + 1)


def squared_masses(lo: int, hi: int) -> float:
    """``sum q_h^2`` for ``lo <= h < hi`` (hundredths, ``lo > 100``), ``q_h = P(X = h/100 | X >= 1.01)``:
    exact below 100.00, by its integral above (rel. error < 1e-4)."""
    split = min(max(lo, 10_000), hi)
    exact = sum(_conditional_mass(h) ** 2 for h in range(lo, split))
    return exact + 101**2 / 3 * (1 / split**3 - 1 / hi**3)


@functools.cache
def _equal_in_class() -> tuple[float, ...]:
    """Per repeat class: ``P(two independent values are equal | both fall in the class)``.

    ``sum q_h^2 / (sum q_h)^2`` over the class's values, with ``sum q_h = 101 (1/lo - 1/hi)``.
    """
    bounds = _REPEAT_CLASSES
    return tuple(squared_masses(lo, hi) / (101 * (1 / lo - 1 / hi)) ** 2 for lo, hi in zip(bounds, bounds[1:]))


@attrs.frozen
class FitCheck:
    """One check of the law: its statistic, p-value and whether it fired at the report's level."""

    name: str
    statistic: float
    p_value: float
    #: True when ``p_value`` is below the level of this check (``alpha / 6`` for statistical
    #: checks; a value check fires on any offending value).
    rejected: bool
    #: The flag it raises when rejected.
    flag: str | None
    #: What was observed, against what the law expects.
    detail: str


@attrs.frozen
class FitReport:
    """What ``fit`` found: estimates of the RTP, every check, the flags and one verdict."""

    n: int
    n_used: int
    rtp_claimed: float | None
    rtp_estimate: float
    rtp_stderr: float
    rtp_interval: Interval
    rtp_tail_estimate: float
    rtp_tail_stderr: float
    verdict: str
    flags: tuple[str, ...]
    checks: tuple[FitCheck, ...]
    alpha: float
    #: The level each statistical check runs at: ``alpha / len(STATISTICAL_CHECKS)``.
    check_level: float
    #: True when no RTP was claimed: the shape is tested, the RTP only estimated.
    shape_only: bool

    def check(self, name: str) -> FitCheck:
        """The check called ``name`` (KeyError naming it when it did not run)."""
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(f"no check named {name!r} in this report (ran: {[c.name for c in self.checks]})")


def fit(
    multipliers: Iterable[Decimal | float | str | int | None],
    rtp: float | None = None,
    *,
    alpha: float = 0.01,
    seed: int = 0,
) -> FitReport:
    """Check ``multipliers`` (displayed crash points, in round order) against the law.

    ``rtp``: the RTP the game claims (0.97 for 97%), or None to estimate it and test the
    shape only. ``alpha``: the overall false-alarm rate on data that follow the law.
    ``seed``: of the randomization in the KS test (its p-value depends on it; its
    calibration does not). Raises ValueError for a value that is not a number.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"invalid alpha={alpha!r}: must be in (0, 1), e.g. 0.01")
    if rtp is not None:
        check_rtp(rtp)
    values, problems, n = _usable(multipliers)
    level = alpha / len(STATISTICAL_CHECKS)
    checks = [_value_check(kind, count, n) for kind, count in problems.items()]
    used = len(values)
    enough = used >= MIN_ROUNDS
    if rtp is None:  # the shape checks see only the rounds above 1.00
        enough = enough and sum(1 for h in values if h > _ONE) >= MIN_ROUNDS // 2
    if enough:
        checks += [
            _instant_busts(values, rtp, level),
            _chi_square(values, rtp, level),
            _ks(values, rtp, level, seed),
            _runs(values, level),
            _spikes(values, level),
            _repeats(values, level),
        ]
    flags = tuple(c.flag for c in checks if c.rejected and c.flag)
    if any(f in QUALITY_FLAGS for f in flags):
        verdict = DATA_QUALITY
    elif not enough:
        verdict = INSUFFICIENT
    elif flags:
        verdict = DEVIATION
    else:
        verdict = CONSISTENT
    busts = sum(1 for h in values if h == _ONE)
    reaching = sum(1 for h in values if h >= 200)
    estimate, stderr, interval = rtp_from_busts(busts, used)
    tail = float(TAIL_THRESHOLD)
    share = reaching / used if used else math.nan
    return FitReport(
        n=n,
        n_used=used,
        rtp_claimed=rtp,
        rtp_estimate=estimate,
        rtp_stderr=stderr,
        rtp_interval=interval,
        rtp_tail_estimate=tail * share,
        rtp_tail_stderr=tail * math.sqrt(share * (1 - share) / used) if used else math.nan,
        verdict=verdict,
        flags=flags,
        checks=tuple(checks),
        alpha=alpha,
        check_level=level,
        shape_only=rtp is None,
    )


# -- values ------------------------------------------------------------------------------


def multiplier_decimal(value: object, name: str = "multiplier") -> Decimal | None:
    """A multiplier as a Decimal, None for a null (None, NaN); ValueError naming ``name`` when
    ``value`` is not a number. A float is read by its shortest repr, so 2.03 stays 2.03."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool):
        raise ValueError(f"invalid {name}={value!r}: not a number")
    elif isinstance(value, float):
        number = Decimal(repr(value))
    else:
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"invalid {name}={value!r}: not a number") from None
    return None if number.is_nan() else number


def classify(value: object, index: int = 0) -> int | str:
    """A multiplier in hundredths when the law allows it, else the kind of problem.

    The kinds are the value checks: ``null_values``, ``off_grid``, ``below_one``,
    ``above_cap``. ValueError (naming ``multipliers[index]``) when ``value`` is not a number.
    """
    if type(value) is Decimal and value.as_tuple().exponent == -2 and _ONE_DECIMAL <= value <= MAX_CRASH:
        return int(value.scaleb(2))  # the common case, as a game displays it
    number = multiplier_decimal(value, f"multipliers[{index}]")
    if number is None:
        return "null_values"
    if not number.is_finite():
        return "off_grid"
    hundredths = number.scaleb(2)
    if hundredths != hundredths.to_integral_value():
        return "off_grid"
    if hundredths < _ONE:
        return "below_one"
    if hundredths > _CAP:
        return "above_cap"
    return int(hundredths)


def _usable(multipliers: Iterable[object]) -> tuple[list[int], dict[str, int], int]:
    """The usable values in hundredths (in order), counts of the others by kind, and n."""
    values: list[int] = []
    problems = {"null_values": 0, "off_grid": 0, "below_one": 0, "above_cap": 0}
    n = 0
    for index, value in enumerate(multipliers):
        n += 1
        kind = classify(value, index)
        if isinstance(kind, int):
            values.append(kind)
        else:
            problems[kind] += 1
    return values, problems, n


_VALUE_RULES = {
    "null_values": "null (None or NaN)",
    "off_grid": "not a whole number of cents",
    "below_one": "below 1.00",
    "above_cap": f"above the cap {MAX_CRASH}",
}


def _value_check(kind: str, count: int, n: int) -> FitCheck:
    # The law gives any such value probability 0: the exact p-value is 0 or 1.
    return FitCheck(
        name=kind,
        statistic=float(count),
        p_value=0.0 if count else 1.0,
        rejected=count > 0,
        flag=kind,
        detail=f"{count:,} of {n:,} values {_VALUE_RULES[kind]}; the law has none",
    )


# -- the statistical checks ---------------------------------------------------------------


def _tested(name: str, flag: str, statistic: float, p_value: float, level: float, detail: str) -> FitCheck:
    """A statistical check, rejected when its p-value is below its level."""
    return FitCheck(name, statistic, p_value, p_value < level, flag, detail)


# quality.py has its own instant_busts, spikes and repeats checks: they differ on purpose
# (an RTP always known, Holm's mid-p, round ids); see the comments there.
def _instant_busts(values: list[int], rtp: float | None, level: float) -> FitCheck:
    n = len(values)
    busts = sum(1 for h in values if h == _ONE)
    if rtp is None:
        # The most generous game, r = 1, busts least often; fewer than that is a collection fault.
        expected = instant_bust_probability(1.0)
        p_value = binomial_cdf(busts, n, expected)
        flag = "missing_instant_busts"
        law = "the most generous law, r = 1,"
    else:
        expected = instant_bust_probability(rtp)
        p_value = binomial_two_sided(busts, n, expected)
        flag = "missing_instant_busts" if busts < n * expected else "rtp_below_claim"
        law = f"r = {rtp:g}"
    z = (busts - n * expected) / math.sqrt(n * expected * (1 - expected))
    detail = f"{busts:,} of {n:,} rounds at 1.00 ({busts / n:.2%}); {law} expects {expected:.2%}"
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


def _chi_square(values: list[int], rtp: float | None, level: float) -> FitCheck:
    edges = _EDGES
    probabilities = bin_probabilities(list(BIN_EDGES), 1.0 if rtp is None else rtp)
    counts = [0] * len(edges)
    for h in values:
        counts[bisect.bisect_right(edges, h) - 1] += 1
    if rtp is None:
        # The shape above 1.00, whatever r: drop the 1.00 bin, renormalise the rest.
        counts, probabilities = counts[1:], [p * 1.01 for p in probabilities[1:]]
    rounds = sum(counts)
    counts, probabilities = _merged(counts, probabilities, rounds)
    if len(counts) < 2:
        return FitCheck("chi_square", 0.0, 1.0, False, "shape_chi_square", "too few rounds for two bins")
    statistic, df = chi_square(counts, probabilities)
    p_value = chi_square_sf(statistic, df)
    scope = "rounds above 1.00 against 1.01 / x" if rtp is None else f"rounds against r = {rtp:g}"
    worst = max(range(len(counts)), key=lambda i: abs(counts[i] - rounds * probabilities[i]))
    detail = (
        f"{rounds:,} {scope}, {df + 1} bins (df {df}); the largest gap: {counts[worst]:,} observed, "
        f"{rounds * probabilities[worst]:,.1f} expected"
    )
    return _tested("chi_square", "shape_chi_square", statistic, p_value, level, detail)


def _ks(values: list[int], rtp: float | None, level: float, seed: int) -> FitCheck:
    # A stream of its own: random.Random(seed) would replay the draws of a CrashGame with the
    # same seed, and a v equal to the draw that made x is not independent of x.
    generator = random.Random(f"crashlog.fit.ks-{seed}")
    law = 1.0 if rtp is None else rtp
    floor = instant_bust_probability(1.0) if rtp is None else 0.0
    scale = 1.0 - floor
    pieces: dict[int, tuple[float, float]] = {}  # hundredths -> (P(X < x), P(X = x)): values repeat
    transforms = []
    for h in values:
        if rtp is None and h == _ONE:
            continue  # the shape above 1.00 only
        piece = pieces.get(h)
        if piece is None:
            x = Decimal(h) / 100
            piece = pieces[h] = (randomized_pit(x, 0.0, law), value_probability(x, law))
        transforms.append((piece[0] + generator.random() * piece[1] - floor) / scale)
    if not transforms:
        return FitCheck("ks", 0.0, 1.0, False, "shape_ks", "no rounds to transform")
    statistic, p_value = ks_uniform(transforms)
    scope = "rounds above 1.00 against 1.01 / x" if rtp is None else f"rounds against r = {rtp:g}"
    detail = f"randomized PIT of {len(transforms):,} {scope}: largest gap to uniform {statistic:.4f}"
    return _tested("ks", "shape_ks", statistic, p_value, level, detail)


def _runs(values: list[int], level: float) -> FitCheck:
    z, p_value = runs_test(h >= 200 for h in values)
    detail = f"runs of X >= 2.00 against independent rounds: z = {z:+.2f}"
    return _tested("runs", "serial_dependence", z, p_value, level, detail)


def _spikes(values: list[int], level: float) -> FitCheck:
    above = [h for h in values if h > _ONE]
    counts = Counter(above)
    rounds = len(above)
    if not rounds:
        return FitCheck("whole_value_spikes", 0.0, 1.0, False, "whole_value_spikes", "no rounds above 1.00")
    worst, worst_p, worst_ratio = ROUND_VALUES[0], 1.0, 0.0
    for value in ROUND_VALUES:
        h = int(value * 100)
        mass = _conditional_mass(h)
        p = binomial_sf(counts[h], rounds, mass)
        if p < worst_p or (p == worst_p and counts[h] / (rounds * mass) > worst_ratio):
            worst, worst_p, worst_ratio = value, p, counts[h] / (rounds * mass)
    p_value = min(1.0, len(ROUND_VALUES) * worst_p)
    h = int(worst * 100)
    detail = (
        f"{worst}: {counts[h]:,} of {rounds:,} rounds above 1.00, the law expects "
        f"{rounds * _conditional_mass(h):,.1f} ({worst_ratio:.1f}x)"
    )
    return _tested("whole_value_spikes", "whole_value_spikes", worst_ratio, p_value, level, detail)


def _repeats(values: list[int], level: float) -> FitCheck:
    # Two neighbours can only be equal when they share a class; given their classes, equality
    # has a known chance under the law. Conditioning on the classes keeps the check about
    # repeated rows: a game whose rounds cluster by size (the runs check's business) does not
    # raise it.
    equal_in_class = _equal_in_class()
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
