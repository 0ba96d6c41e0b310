"""The data-quality checks behind ``analytics.quality``: one function per thing that goes wrong.

Each turns the rounds (one ``_Round`` per row, whatever its shape) into a ``Check``. The
statistical ones are kept as ``_Test`` until ``run_checks`` adjusts their p-values together
(Holm) and gives each its verdict; the others count what the law says never happens.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import attrs

from crashlog.analytics.fit import multiplier_decimal, squared_masses, value_probability
from crashlog.analytics.inference import binomial_mid_p, holm_adjust
from crashlog.analytics.rtp import rtp_from_busts
from crashlog.law import CENT, DEFAULT_RTP, MAX_CRASH, instant_bust_probability
from crashlog.quality_flags import LOW_OCR_CONFIDENCE

Verdict = Literal["ok", "suspect", "insufficient data"]
OK: Verdict = "ok"
SUSPECT: Verdict = "suspect"
INSUFFICIENT: Verdict = "insufficient data"

#: A test whose expected count is below this cannot see a deviation: ``insufficient data``.
MIN_EXPECTED = 5.0
#: A time gap is a gap when it is this many times the median interval between rounds.
GAP_FACTOR = 10
#: The whole and half values a screen reader is likeliest to return by mistake.
EXACT_VALUES: tuple[Decimal, ...] = tuple(Decimal(h) / 2 for h in range(3, 21))  # 1.5 .. 10
_ONE = Decimal("1.00")

#: The checks that test a share against the law (the others count what must not be there).
STATISTICAL_CHECKS = ("instant_busts", "whole_half_values", "repeats")


@attrs.frozen
class Check:
    """One check: its figure, what the law expects, the verdict and a sentence on it.

    ``p_value`` is the Holm-adjusted p-value of a statistical check (None for counts the
    law says must be zero): the verdict is ``suspect`` when it is below the significance.
    """

    name: str
    figure: str
    expected: str
    verdict: Verdict
    detail: str
    p_value: float | None = None


# -- the statistics -----------------------------------------------------------------------


@lru_cache(maxsize=64)
def repeat_probability(rtp: float = DEFAULT_RTP) -> float:
    """``P(X_1 = X_2)`` for two independent rounds: the sum of ``p_k^2`` over the whole grid.

    In hundredths ``h``, ``p_100 = 1 - r/1.01``, ``p_h = (r / 1.01) q_h`` below the cap (``q_h``
    the law above 1.00, whatever ``r``: fit's ``squared_masses`` sums its squares) and
    ``p_cap = r / cap``; the error is below 1e-12.
    """
    below_cap = squared_masses(101, int(MAX_CRASH * 100))
    return instant_bust_probability(rtp) ** 2 + (rtp / 1.01) ** 2 * below_cap + (rtp / float(MAX_CRASH)) ** 2


# -- rows ---------------------------------------------------------------------------------


@attrs.frozen
class _Round:
    value: Decimal
    round_id: str | None
    seen_at: datetime | None
    observers: int | None
    disagreement: bool
    dissenters: tuple[str, ...]
    ocr_confidence: float | None
    flags: tuple[str, ...]

    @property
    def on_grid(self) -> bool:
        return self.value == self.value.quantize(CENT)

    @property
    def lawful(self) -> bool:
        """On the two-decimal grid and at least 1.00: a value the law gives a probability."""
        return self.value >= _ONE and self.on_grid


def _decimal(value: Any) -> Decimal:
    number = multiplier_decimal(value)
    if number is None:
        raise ValueError(f"invalid multiplier={value!r}: not a number")
    return number


def _round_of(row: Any) -> _Round:
    if not isinstance(row, Mapping) and not hasattr(row, "get"):
        return _Round(_decimal(row), None, None, None, False, (), None, ())
    value = row.get("multiplier")
    if value is None:
        value = row.get("crash_multiplier")
    if value is None:
        raise ValueError(f"a row has no multiplier (nor crash_multiplier): {dict(row)!r}")
    seen_at = row.get("first_seen_at") or row.get("occurred_at")
    if isinstance(seen_at, str):
        seen_at = datetime.fromisoformat(seen_at)
    if seen_at is not None and seen_at.tzinfo is None:
        seen_at = seen_at.replace(tzinfo=UTC)  # naive times are UTC, as crashlog writes them
    round_id = row.get("game_round_id")
    observers = row.get("observers")
    confidence = row.get("ocr_confidence")
    return _Round(
        value=_decimal(value),
        round_id=None if round_id is None else str(round_id),
        seen_at=seen_at,
        observers=None if observers is None else int(observers),
        disagreement=bool(row.get("disagreement") or False),
        dissenters=tuple(row.get("dissenters") or ()),
        ocr_confidence=None if confidence is None else float(confidence),
        flags=tuple(row.get("quality_flags") or ()),
    )


def _integer_ids(rounds: Sequence[_Round]) -> list[int] | None:
    """The rounds' ids as integers, or None when some round has none or one is not an integer."""
    ids = []
    for r in rounds:
        if r.round_id is None:
            return None
        text = r.round_id.strip()
        if not (text.isascii() and text.lstrip("-").isdecimal()):
            return None
        ids.append(int(text))
    return ids


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


def _share(count: int, total: int) -> str:
    return f"{count:,} of {total:,}" + (f" ({count / total:.2%})" if total else "")


def _off_grid(rounds: Sequence[_Round]) -> Check:
    n = len(rounds)
    off = [r for r in rounds if not r.on_grid]
    if not n:
        return Check("off_grid", "no rounds", "0", INSUFFICIENT, "no rounds to check")
    if not off:
        return Check("off_grid", _share(0, n), "0", OK, "every value is on the two-decimal grid")
    examples = ", ".join(str(r.value) for r in off[:3])
    return Check(
        "off_grid",
        _share(len(off), n),
        "0",
        SUSPECT,
        f"the game shows two decimals, so these are misreads or conversions (e.g. {examples}); "
        "the checks against the law leave them out",
    )


def _below_one(rounds: Sequence[_Round], from_log: bool) -> Check:
    below = sum(1 for r in rounds if r.value < _ONE)
    if from_log:
        note = "crashlog refuses multipliers below 1.00 at emit, so the log holds none"
    else:
        note = "no crash point is below 1.00"
    if below:
        return Check(
            "below_one",
            _share(below, len(rounds)),
            "0",
            SUSPECT,
            "a crash point is at least 1.00: these are misreads (or stakes, or profits, "
            "stored as multipliers); the checks against the law leave them out",
        )
    return Check("below_one", _share(0, len(rounds)), "0", OK if rounds else INSUFFICIENT, note)


def _implied_rtp(busts: int, n: int) -> str:
    # fit's maximum-likelihood RTP from the bust share alone, r = 1.01 (1 - share).
    estimate, error, _ = rtp_from_busts(busts, n)
    return f"the share implies r = {estimate:.3f} ± {error:.3f}"


# Not fit's instant_busts check: this one always has an RTP (given, configured or default) and
# a mid-p p-value for Holm's step-down; fit's also works without one (against r = 1).
def _instant_busts(lawful: Sequence[_Round], rtp: float) -> tuple[_Test, bool] | None:
    n = len(lawful)
    if not n:
        return None
    busts = sum(1 for r in lawful if r.value == _ONE)
    p = instant_bust_probability(rtp)
    implied = _implied_rtp(busts, n)
    test = _Test(
        "instant_busts",
        _share(busts, n),
        f"{p:.2%} (1 - r/1.01)",
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
def _exact_values(lawful: Sequence[_Round], rtp: float) -> list[tuple[_Test, bool]]:
    n = len(lawful)
    if not n:
        return []
    counts = Counter(r.value for r in lawful)
    tests: list[tuple[_Test, bool]] = []
    total_seen, total_p = 0, 0.0
    for value in EXACT_VALUES:
        p = value_probability(value, rtp)
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
                f"{total_p:.2%} (P(X = x) = r/x - r/(x + 0.01))",
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


def _neighbour_pairs(rounds: Sequence[_Round]) -> list[tuple[Decimal, Decimal]]:
    """Pairs of rounds that followed each other: consecutive integer ids, else consecutive rows."""
    ids = _integer_ids(rounds)
    if ids is None:
        return [(a.value, b.value) for a, b in zip(rounds, rounds[1:]) if a.lawful and b.lawful]
    by_id = sorted(zip(ids, rounds, strict=True), key=lambda item: item[0])
    return [(a.value, b.value) for (i, a), (j, b) in zip(by_id, by_id[1:]) if j == i + 1 and a.lawful and b.lawful]


# Not fit's repeated_rows: neighbours by game_round_id when there are ids (not row order), busts
# included and too few repeats flagged too (a collector that drops equal values); fit sees
# bare values and tests only too many.
def _repeats(rounds: Sequence[_Round], rtp: float) -> tuple[_Test, bool] | None:
    pairs = _neighbour_pairs(rounds)
    if not pairs:
        return None
    m = len(pairs)
    repeats = sum(1 for a, b in pairs if a == b)
    q = repeat_probability(rtp)
    test = _Test(
        "repeats",
        _share(repeats, m) + " pairs",
        f"{q:.3%} (sum of p_k^2)",
        m * q,
        binomial_mid_p(repeats, m, q),
        (
            "back-to-back repeats as often as chance gives them",
            "too few back-to-back repeats: a collector that drops a value equal to the previous one as a duplicate",
            "too many back-to-back repeats: duplicated rows, or a reader that repeats its "
            "last value when it misses a round",
        ),
    )
    return test, repeats > m * q


def _round_ids(rounds: Sequence[_Round]) -> Check:
    name = "round_id_gaps"
    keyed = [r for r in rounds if r.round_id is not None]
    if not keyed:
        return Check(name, "no ids", "0 missing", INSUFFICIENT, "no round has a game_round_id")
    ids = _integer_ids(keyed)
    if ids is None:
        return Check(
            name,
            "ids not integers",
            "0 missing",
            INSUFFICIENT,
            "game_round_id values are not all integers: a gap cannot be told",
        )
    distinct = sorted(set(ids))
    duplicates = len(ids) - len(distinct)
    gaps = [b - a - 1 for a, b in zip(distinct, distinct[1:]) if b - a > 1]
    missing = sum(gaps)
    figure = f"{missing:,} missing in {len(gaps):,} gaps, {duplicates:,} repeated"
    if not missing and not duplicates:
        return Check(name, figure, "0 missing", OK, f"ids {distinct[0]} to {distinct[-1]}, complete")
    parts = []
    if gaps:
        single = sum(1 for g in gaps if g == 1)
        parts.append(
            f"{missing:,} of {distinct[-1] - distinct[0] + 1:,} ids missing, the longest gap "
            f"{max(gaps):,} rounds; {single:,} single missed rounds (a collector that misses "
            "rounds, e.g. instant busts) vs longer outages"
        )
    if duplicates:
        parts.append(f"{duplicates:,} rows repeat an id already seen (duplicated rows)")
    return Check(name, figure, "0 missing", SUSPECT, "; ".join(parts))


def _time_gaps(rounds: Sequence[_Round]) -> Check:
    name = "time_gaps"
    expected = f"none over {GAP_FACTOR}x the median interval"
    times = sorted(r.seen_at for r in rounds if r.seen_at is not None)
    intervals = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    if len(intervals) < 10:
        return Check(name, "too few times", expected, INSUFFICIENT, "fewer than 11 rounds with a time")
    typical = statistics.median(intervals)
    if typical <= 0:
        return Check(
            name,
            "no spacing",
            expected,
            INSUFFICIENT,
            "most rounds share a time: the times do not separate rounds",
        )
    gaps = [(times[i], gap) for i, gap in enumerate(intervals) if gap > GAP_FACTOR * typical]
    figure = f"{len(gaps):,} gaps (median interval {typical:.1f} s)"
    if not gaps:
        return Check(name, figure, expected, OK, f"{len(times):,} rounds without a break")
    start, longest = max(gaps, key=lambda g: g[1])
    missed = sum(gap / typical - 1 for _, gap in gaps)
    return Check(
        name,
        figure,
        expected,
        SUSPECT,
        f"the collection stopped: longest gap {timedelta(seconds=round(longest))} from "
        f"{start:%Y-%m-%d %H:%M:%S}; about {missed:,.0f} rounds missed in all (rounds on "
        "either side of a gap are not neighbours)",
    )


def _observers(rounds: Sequence[_Round]) -> Check:
    name = "observer_disagreement"
    shared = [r for r in rounds if (r.observers or 0) >= 2]
    if not shared:
        return Check(
            name,
            "no shared rounds",
            "0",
            INSUFFICIENT,
            "no round was seen by two or more bots: nothing to compare",
        )
    disagreeing = [r for r in shared if r.disagreement]
    figure = _share(len(disagreeing), len(shared)) + " shared rounds"
    if not disagreeing:
        return Check(name, figure, "0", OK, "every bot read every shared round alike")
    dissent = Counter(bot for r in disagreeing for bot in r.dissenters)
    who = ", ".join(f"{bot} on {count:,}" for bot, count in dissent.most_common(3))
    return Check(
        name,
        figure,
        "0",
        SUSPECT,
        "bots read different values for the same round" + (f"; off the majority: {who}" if who else ""),
    )


def _flagged(r: _Round) -> bool:
    return bool(r.flags) or not r.lawful or r.disagreement


def _ocr(rounds: Sequence[_Round]) -> Check:
    name = "ocr_confidence"
    expected = f"none below {LOW_OCR_CONFIDENCE}"
    read = [r for r in rounds if r.ocr_confidence is not None]
    if not read:
        return Check(name, "none recorded", expected, INSUFFICIENT, "no OCR confidence recorded")
    low = sum(1 for r in read if r.ocr_confidence is not None and r.ocr_confidence < LOW_OCR_CONFIDENCE)
    flagged = [r.ocr_confidence for r in read if _flagged(r) and r.ocr_confidence is not None]
    others = [r.ocr_confidence for r in read if not _flagged(r) and r.ocr_confidence is not None]
    parts = []
    if flagged:
        parts.append(f"flagged rounds: median {statistics.median(flagged):.2f} ({len(flagged):,})")
    if others:
        parts.append(f"other rounds: median {statistics.median(others):.2f} ({len(others):,})")
    comparison = "; ".join(parts)
    if low:
        return Check(
            name,
            _share(low, len(read)) + " low",
            expected,
            SUSPECT,
            f"readings the OCR itself doubted; {comparison}",
        )
    return Check(name, _share(0, len(read)) + " low", expected, OK, comparison)


# -- every check at once ------------------------------------------------------------------


def run_checks(
    rows: Iterable[Any], *, rtp: float, significance: float, from_log: bool
) -> tuple[int, tuple[Check, ...], tuple[Check, ...]]:
    """``(rounds, checks, exact value checks)`` of ``rows`` (see ``quality.check_quality``):
    the statistical checks' p-values adjusted together by Holm's method."""
    rounds = [_round_of(row) for row in rows]
    lawful = [r for r in rounds if r.lawful]

    tests: list[tuple[_Test, bool]] = []
    busts = _instant_busts(lawful, rtp)
    if busts:
        tests.append(busts)
    exact = _exact_values(lawful, rtp)
    tests.extend(exact)
    repeats = _repeats(rounds, rtp)
    if repeats:
        tests.append(repeats)
    adjusted = holm_adjust([test.p_value for test, _ in tests])
    finished = {
        test.name: test.finish(p, significance, above) for (test, above), p in zip(tests, adjusted, strict=True)
    }

    def statistical(name: str, what: str) -> Check:
        return finished.get(name) or Check(name, "no rounds", what, INSUFFICIENT, "no values to test")

    checks = (
        _off_grid(rounds),
        _below_one(rounds, from_log),
        statistical("instant_busts", "1 - r/1.01"),
        statistical("whole_half_values", "P(X = x) = r/x - r/(x + 0.01)"),
        statistical("repeats", "sum of p_k^2"),
        _round_ids(rounds),
        _time_gaps(rounds),
        _observers(rounds),
        _ocr(rounds),
    )
    exact_checks = tuple(finished[f"exact_{v:.2f}"] for v in EXACT_VALUES if f"exact_{v:.2f}" in finished)
    return len(rounds), checks, exact_checks
