"""The statistical checks of ``analytics.quality``: shares the law gives exactly.

Instant busts, each whole or half value and their total, back-to-back repeats and re-read
strips, each against a ``crashlog.law.Law``. Each is kept as a ``_Test`` until
``quality_checks.run_checks`` adjusts their p-values together (Holm) and gives each its verdict.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache

import attrs

from crashlog.analytics.inference import binomial_mid_p
from crashlog.analytics.quality_rows import (
    INSUFFICIENT,
    MIN_EXPECTED,
    OK,
    SUSPECT,
    Check,
    Verdict,
    _integer_ids,
    _Round,
)
from crashlog.analytics.rtp import rtp_from_busts
from crashlog.analytics.strips import RUN_LENGTH, WINDOW, repeated_runs, squared_masses
from crashlog.law import DEFAULT_RTP, MAX_CRASH, R_OVER_X, Law

#: The whole and half values a screen reader is likeliest to return by mistake.
EXACT_VALUES: tuple[Decimal, ...] = tuple(Decimal(h) / 2 for h in range(3, 21))  # 1.5 .. 10
_ONE = Decimal("1.00")

# -- the statistics -----------------------------------------------------------------------


@lru_cache(maxsize=64)
def repeat_probability(rtp: float = DEFAULT_RTP, law: Law = R_OVER_X) -> float:
    """``P(X_1 = X_2)`` for two independent rounds: the sum of ``p_k^2`` over the whole grid.

    In hundredths ``h``, ``p_100 = 1 - r/1.01``, ``p_h = (r / 1.01) q_h`` below the cap (``q_h``
    the law above 1.00, whatever ``r``: ``strips.squared_masses`` sums its squares) and
    ``p_cap = r / cap``; the error is below 1e-12. ``law``: the family (r/x by default; 1.01
    is its ``1 / bust_scale``), at ``rtp``.
    """
    at = law.with_rtp(rtp)
    cap = int(MAX_CRASH * 100)
    below_cap = squared_masses(101, cap, law.shift)
    above = rtp * law.bust_scale
    return at.instant_bust_probability() ** 2 + above**2 * below_cap + at.survival_h(cap) ** 2


# -- the checks ---------------------------------------------------------------------------


@attrs.frozen
class _Test:
    """A statistical check before the Holm adjustment decides its verdict."""

    name: str
    figure: str
    expected: str
    expected_count: float
    p_value: float
    details: tuple[str, str, str]  # ok, too few, too many

    def finish(self, adjusted: float, significance: float, observed_above: bool) -> Check:
        if adjusted < significance:
            verdict: Verdict = SUSPECT
            detail = self.details[2] if observed_above else self.details[1]
        elif self.expected_count < MIN_EXPECTED:
            verdict = INSUFFICIENT
            detail = f"only {self.expected_count:.1f} expected: too few rounds to see a deviation here"
        else:
            verdict, detail = OK, self.details[0]
        return Check(self.name, self.figure, self.expected, verdict, detail, adjusted)


def value_formula(law: Law) -> str:
    """``P(X = x)`` of the law's family, as the report's ``expected`` column writes it."""
    if law.shift:
        shift = f"{law.shift / 100:.2f}"
        return f"P(X = x) = r/(x - {shift}) - r/(x + 0.01 - {shift})"
    return "P(X = x) = r/x - r/(x + 0.01)"


def _share(count: int, total: int) -> str:
    return f"{count:,} of {total:,}" + (f" ({count / total:.2%})" if total else "")


def _implied_rtp(busts: int, n: int, law: Law) -> str:
    # fit's maximum-likelihood RTP from the bust share alone, r = 1.01 (1 - share) for r/x.
    estimate, error, _ = rtp_from_busts(busts, n, law=law)
    return f"the share implies r = {estimate:.3f} ± {error:.3f}"


# Not fit's instant_busts check: this one always has an RTP (given, configured or default) and
# a mid-p p-value for Holm's step-down; fit's also works without one (against r = 1).
def instant_busts(
    lawful: Sequence[_Round], law: Law, recorded: int | None = None
) -> tuple[_Test, bool] | None:
    """The 1.00x busts among ``lawful`` against the law's share. The RTP they imply is
    withheld when most of the ``recorded`` values were refused (as ``fit`` withholds its
    estimate): a figure from the few left would describe them, not the game."""
    n = len(lawful)
    if not n:
        return None
    busts = sum(1 for r in lawful if r.value == _ONE)
    p, rtp = law.instant_bust_probability(), law.rtp
    recorded = n if recorded is None else recorded
    implied = (_implied_rtp(busts, n, law) if 2 * n > recorded else
               f"no RTP is implied: only {n:,} of {recorded:,} values are usable")
    test = _Test(
        "instant_busts",
        _share(busts, n),
        f"{p:.2%} (1 - r/{1 / law.bust_scale:.2f})",
        n * p,
        binomial_mid_p(busts, n, p),
        (
            f"consistent with r = {rtp:g}; {implied}",
            f"too few 1.00x busts for r = {rtp:g}: a collector that stores busts as null (or "
            f"misses them, they last an instant) removes the house edge from the data, unless "
            f"the game's RTP is higher; {implied}",
            f"too many 1.00x busts for r = {rtp:g}: the RTP may be lower, or misreads land on 1.00; {implied}",
        ),
    )
    return test, busts > n * p


# Not fit's whole_value_spikes: one check per value, so the report names the value a reader
# snaps to, against its unconditional share at the given RTP; fit keeps one Bonferroni check.
def exact_values(lawful: Sequence[_Round], law: Law) -> list[tuple[_Test, bool]]:
    n = len(lawful)
    if not n:
        return []
    counts = Counter(r.value for r in lawful)
    tests: list[tuple[_Test, bool]] = []
    total_seen, total_p = 0, 0.0
    for value in EXACT_VALUES:
        p = law.value_probability(value)
        seen = counts.get(value, 0)
        total_seen += seen
        total_p += p
        shown = f"{value:.2f}"
        tests.append(
            (
                _Test(
                    f"exact_{shown}",
                    _share(seen, n),
                    f"{p:.3%}",
                    n * p,
                    binomial_mid_p(seen, n, p, alternative="greater"),
                    (
                        f"{shown} as often as the law says",
                        f"{shown} too rare: values near it may be rounded away from it",
                        f"{shown} too often: a screen reader that returns {shown} (a misread, "
                        "or the value shown while the next round loads)",
                    ),
                ),
                seen > n * p,
            )
        )
    first, last = EXACT_VALUES[0], EXACT_VALUES[-1]
    tests.append(
        (
            _Test(
                "whole_half_values",
                _share(total_seen, n),
                f"{total_p:.2%} ({value_formula(law)})",
                n * total_p,
                binomial_mid_p(total_seen, n, total_p),
                (
                    f"whole and half values {first:.2f} to {last:.2f} as often as the law says",
                    "whole and half values too rare: readings rounded or nudged off them",
                    "whole and half values too often: a reader that snaps to round numbers (see the exact_ values)",
                ),
            ),
            total_seen > n * total_p,
        )
    )
    return tests


def _neighbour_pairs(rounds: Sequence[_Round]) -> list[tuple[Decimal | None, Decimal | None]]:
    """Pairs of rounds that followed each other: consecutive integer ids, else consecutive rows."""
    ids = _integer_ids(rounds)
    if ids is None:
        return [(a.value, b.value) for a, b in zip(rounds, rounds[1:]) if a.lawful and b.lawful]
    by_id = sorted(zip(ids, rounds, strict=True), key=lambda item: item[0])
    return [(a.value, b.value) for (i, a), (j, b) in zip(by_id, by_id[1:]) if j == i + 1 and a.lawful and b.lawful]


# Not fit's repeated_rows: neighbours by game_round_id when there are ids (not row order), busts
# included and too few repeats flagged too (a collector that drops equal values); fit sees
# bare values and tests only too many.
def repeats(rounds: Sequence[_Round], law: Law) -> tuple[_Test, bool] | None:
    pairs = _neighbour_pairs(rounds)
    if not pairs:
        return None
    m = len(pairs)
    repeated = sum(1 for a, b in pairs if a == b)
    q = repeat_probability(law.rtp, law.with_rtp(DEFAULT_RTP))
    test = _Test(
        "repeats",
        _share(repeated, m) + " pairs",
        f"{q:.3%} (sum of p_k^2)",
        m * q,
        binomial_mid_p(repeated, m, q),
        (
            "back-to-back repeats as often as chance gives them",
            "too few back-to-back repeats: a collector that drops a value equal to the previous one as a duplicate",
            "too many back-to-back repeats: duplicated rows, or a reader that repeats its "
            "last value when it misses a round",
        ),
    )
    return test, repeated > m * q


def strips(rounds: Sequence[_Round], law: Law) -> tuple[_Test, bool]:
    """Runs of values that come back a few rows later (a re-read history strip), in row
    order: round ids cannot show it when the scraper gave the re-read rows fresh ids."""
    values = [int(r.value * 100) if r.lawful and r.value is not None else None for r in rounds]
    found = repeated_runs(values, shift=law.shift)
    test = _Test(
        "repeated_runs",
        f"{found.clumps:,} runs, {found.rows:,} rows",
        f"{found.expected:.2g} (Q^{RUN_LENGTH} per pair of runs)",
        math.inf,  # one repeated run is already unlikely: never 'insufficient data'
        found.p_value,
        (
            f"no run of {RUN_LENGTH} values comes back within {WINDOW} rows more often than chance",
            "",
            "runs of values come back a few rows later: a scraper that re-reads the history strip; "
            + found.detail(),
        ),
    )
    return test, True


