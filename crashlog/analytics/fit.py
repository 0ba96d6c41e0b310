"""Do these multipliers follow the law of crash games, and if not, is it the data or the game?

The law (``law=``, a ``crashlog.law.Law`` or its name; r/x by default): the displayed crash
point ``X`` has ``P(X >= x) = r / x`` for every two-decimal ``x >= 1.01`` and ``P(X = 1.00) =
1 - r / 1.01`` (``r`` the RTP); the instant-bust family (Roobet, bustabit v1, ethercrash) has
``r / (x - 0.01)`` instead. Every formula below is r/x's; the other laws' are alike (their
``bust_scale``). ``fit`` checks a sequence of displayed multipliers, in round order, against
it, and names the law in the report (``law``):

Estimates (reported, whatever the verdict):

- ``rtp_estimate``: the maximum-likelihood RTP. Above 1.00 the law's shape does not depend
  on ``r`` (``P(X >= x | X >= 1.01) = 1.01 / x``), so the whole likelihood of ``r`` is in the
  share ``s`` of 1.00 busts: ``r = 1.01 (1 - s)``, standard error ``1.01 sqrt(s (1 - s) / n)``,
  and ``rtp_interval`` from Wilson's interval for ``s``.
  Withheld (NaN, with ``rtp_note`` saying why) when most values were refused or unusable.
- ``rtp_tail_estimate``: ``r`` from the rounds that reach 2.00, ``2 K / n`` (``K ~
  Binomial(n, r / 2)``): what a bot cashing out at 2.00 earns, a check on the first.

Checks, each with its statistic and p-value. Value checks (the law gives them probability 0,
so one offending value is proof): ``null_values`` (None, NaN or an empty cell),
``unparseable_values`` (text, two values pasted into one cell: counted, quoted, never an
abort; see ``analytics.parsing``), ``off_grid`` (not a whole number of cents, e.g. three
decimals; ``floor_to_cent`` reads raw floats as the game shows them), ``below_one``,
``above_cap``. ``instant_bust_code`` (e.g. 0) says which number the source writes for 1.00. Statistical checks, on the
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
  probability (screen readers that return 2.00 far too often), and the whole values 2.00,
  3.00, ... together against their share (too few: a scraper whose pattern wanted a decimal
  point dropped them, flag ``whole_value_deficit``); the smallest p-value times their number
  (Bonferroni within the check).
- ``repeated_rows``: back-to-back equal values above 1.00 against their Poisson expectation
  (a scraper that stores a round twice).
- ``repeated_runs``: runs of 3 values above 1.00 equal to a run up to 64 rows before, against
  the law's exact chance (``analytics.strips``): a scraper that re-reads a history strip.

The spike and repeat checks use only the rounds above 1.00, whose law does not depend on ``r``.

Overall false-alarm rate: each of the seven statistical checks is run at ``alpha / 7``
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

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import attrs

from crashlog.analytics import fit_checks as checks_of
from crashlog.analytics.fit_checks import BIN_EDGES, MIN_EXPECTED, ROUND_VALUES, FitCheck
from crashlog.analytics.inference import Interval
from crashlog.analytics.parsing import multiplier_decimal, parse_multipliers
from crashlog.analytics.rtp import check_rtp, rtp_from_busts
from crashlog.analytics.strips import squared_masses
from crashlog.law import MAX_CRASH, Law, law_named, value_probability

__all__ = [
    "BIN_EDGES",
    "CONSISTENT",
    "DATA_QUALITY",
    "DEVIATION",
    "INSUFFICIENT",
    "MIN_EXPECTED",
    "MIN_ROUNDS",
    "QUALITY_FLAGS",
    "ROUND_VALUES",
    "STATISTICAL_CHECKS",
    "FitCheck",
    "FitReport",
    "classify",
    "fit",
    "multiplier_decimal",  # moved to analytics.parsing; kept here where it was first
    "squared_masses",  # moved to analytics.strips
    "value_probability",  # the law's
]

CONSISTENT = "consistent"
DATA_QUALITY = "data-quality suspect"
DEVIATION = "distribution deviation"
INSUFFICIENT = "insufficient data"

#: Below this many usable rounds the checks say too little: at ``r = 1`` the instant-bust
#: check would expect fewer than 5 busts.
MIN_ROUNDS = 500
#: The cash-out of the tail estimate of the RTP.
TAIL_THRESHOLD = Decimal("2.00")

#: Flags of a collection problem, and of a game that deviates from its law.
QUALITY_FLAGS = frozenset(
    {"null_values", "unparseable_values", "off_grid", "below_one", "above_cap", "missing_instant_busts",
     "whole_value_spikes", "whole_value_deficit", "repeated_rows", "repeated_runs"}
)
DEVIATION_FLAGS = frozenset({"rtp_below_claim", "shape_chi_square", "shape_ks", "serial_dependence"})

#: How many statistical checks share ``alpha`` (Bonferroni).
STATISTICAL_CHECKS = (
    "instant_busts", "chi_square", "ks", "runs", "whole_value_spikes", "repeated_rows", "repeated_runs"
)

_ONE = 100  # 1.00 in hundredths
_ONE_DECIMAL = Decimal("1.00")
_CAP = int(MAX_CRASH * 100)


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
    #: The law the values were checked against: its name and formula (``Law.describe``).
    law: str = "r_over_x"
    #: Why the RTP estimate is withheld (NaN), or None when it is given.
    rtp_note: str | None = None
    #: Cells that were not a number, and a few of them as written.
    unparseable: int = 0
    unparseable_examples: tuple[str, ...] = ()
    #: Cells read as 1.00 by ``instant_bust_code``, and floats floored to the cent.
    instant_bust_codes: int = 0
    floored: int = 0

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
    law: Law | str | None = None,
    instant_bust_code: object = None,
    floor_to_cent: bool | None = None,
) -> FitReport:
    """Check ``multipliers`` (displayed crash points, in round order) against the law.

    ``rtp``: the RTP the game claims (0.97 for 97%), or None to estimate it and test the
    shape only. ``law``: a ``Law`` or its name (``crashlog.law.LAWS``), r/x by default.
    ``alpha``: the overall false-alarm rate on data that follow the law. ``seed``: of the
    randomization in the KS test (its p-value depends on it; its calibration does not).
    ``instant_bust_code``: the number the source writes for a 1.00 bust (e.g. 0).
    ``floor_to_cent``: read off-grid floats rounded down to the cent (default: the law's
    ``floors``, True for ``stake_float``). A cell that is not a number is counted and
    flagged (``unparseable_values``), never raised.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"invalid alpha={alpha!r}: must be in (0, 1), e.g. 0.01")
    if rtp is not None:
        check_rtp(rtp)
    family = law_named(law)
    floors = family.floors if floor_to_cent is None else floor_to_cent
    parsed = parse_multipliers(multipliers, instant_bust_code=instant_bust_code, floor_to_cent=floors)
    values, problems = _usable(parsed.values)
    problems["unparseable_values"] = parsed.refused
    n = parsed.cells
    level = alpha / len(STATISTICAL_CHECKS)
    checks = [_value_check(kind, count, n, parsed.examples) for kind, count in problems.items()]
    used = len(values)
    enough = used >= MIN_ROUNDS
    if rtp is None:  # the shape checks see only the rounds above 1.00
        enough = enough and sum(1 for h in values if h > _ONE) >= MIN_ROUNDS // 2
    tested = family.with_rtp(1.0 if rtp is None else rtp)
    if enough:
        checks += _statistical_checks(values, tested, rtp is not None, level, seed)
    flags = tuple(c.flag for c in checks if c.rejected and c.flag)
    if any(f in QUALITY_FLAGS for f in flags):
        verdict = DATA_QUALITY
    elif not enough:
        verdict = INSUFFICIENT
    elif flags:
        verdict = DEVIATION
    else:
        verdict = CONSISTENT
    estimates = _estimates(values, n, problems, family)
    return FitReport(
        n=n,
        n_used=used,
        rtp_claimed=rtp,
        **estimates,
        verdict=verdict,
        flags=flags,
        checks=tuple(checks),
        alpha=alpha,
        check_level=level,
        shape_only=rtp is None,
        law=family.describe(with_rtp=False) if rtp is None else tested.describe(),
        unparseable=parsed.refused,
        unparseable_examples=parsed.examples,
        instant_bust_codes=parsed.instant_bust_codes,
        floored=parsed.floored,
    )


def _statistical_checks(values: list[int], law: Law, claimed: bool, level: float, seed: int) -> list[FitCheck]:
    return [
        checks_of.instant_busts(values, law, claimed, level),
        checks_of.chi_square_check(values, law, claimed, level),
        checks_of.ks_check(values, law, claimed, level, seed),
        checks_of.runs_check(values, level),
        checks_of.spikes_check(values, law, level),
        checks_of.repeats_check(values, law, level),
        checks_of.strips_check(values, law, level),
    ]


def _estimates(values: list[int], n: int, problems: dict[str, int], law: Law) -> dict[str, Any]:
    """The RTP from the bust share and from the rounds reaching 2.00, or NaN with the reason
    when most values were refused: an estimate from the few left would describe them, not
    the game."""
    used = len(values)
    if n and used * 2 < n:
        worst = max(problems, key=lambda kind: problems[kind])
        hint = "; floor_to_cent reads raw floats as the game shows them" if worst == "off_grid" else ""
        note = (
            f"RTP withheld: only {used:,} of {n:,} values usable ({problems[worst]:,} {worst}){hint}"
        )
        nan = math.nan
        return {
            "rtp_estimate": nan, "rtp_stderr": nan, "rtp_interval": Interval(nan, nan),
            "rtp_tail_estimate": nan, "rtp_tail_stderr": nan, "rtp_note": note,
        }
    busts = sum(1 for h in values if h == _ONE)
    reaching = sum(1 for h in values if h >= 200)
    estimate, stderr, interval = rtp_from_busts(busts, used, law=law)
    # P(X >= 2.00) = r / (2.00 - shift): r from the share reaching 2.00.
    tail = float(TAIL_THRESHOLD) - law.shift / 100
    share = reaching / used if used else math.nan
    return {
        "rtp_estimate": estimate,
        "rtp_stderr": stderr,
        "rtp_interval": interval,
        "rtp_tail_estimate": tail * share,
        "rtp_tail_stderr": tail * math.sqrt(share * (1 - share) / used) if used else math.nan,
    }


# -- values ------------------------------------------------------------------------------


def classify(value: object, index: int = 0) -> int | str:
    """A multiplier in hundredths when the law allows it, else the kind of problem.

    The kinds are the value checks: ``null_values``, ``off_grid``, ``below_one``,
    ``above_cap``. ValueError (naming ``multipliers[index]``) when ``value`` is not a number.
    """
    if type(value) is Decimal and value.as_tuple().exponent == -2 and _ONE_DECIMAL <= value <= MAX_CRASH:
        return int(value.scaleb(2))  # the common case, as a game displays it
    number = value if type(value) is Decimal else multiplier_decimal(value, f"multipliers[{index}]")
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


def _usable(multipliers: Iterable[object]) -> tuple[list[int], dict[str, int]]:
    """The usable values in hundredths (in order), and counts of the others by kind."""
    values: list[int] = []
    problems = {"null_values": 0, "off_grid": 0, "below_one": 0, "above_cap": 0}
    for index, value in enumerate(multipliers):
        kind = classify(value, index)
        if isinstance(kind, int):
            values.append(kind)
        else:
            problems[kind] += 1
    return values, problems


_VALUE_RULES = {
    "null_values": "null (None, NaN or an empty cell)",
    "unparseable_values": "not a number (text, two values in one cell)",
    "off_grid": "not a whole number of cents",
    "below_one": "below 1.00",
    "above_cap": f"above the cap {MAX_CRASH}",
}


def _value_check(kind: str, count: int, n: int, examples: tuple[str, ...] = ()) -> FitCheck:
    # The law gives any such value probability 0: the exact p-value is 0 or 1.
    detail = f"{count:,} of {n:,} values {_VALUE_RULES[kind]}; the law has none"
    if kind == "unparseable_values" and examples:
        detail += f" (e.g. {', '.join(examples)})"
    return FitCheck(
        name=kind,
        statistic=float(count),
        p_value=0.0 if count else 1.0,
        rejected=count > 0,
        flag=kind,
        detail=detail,
    )
