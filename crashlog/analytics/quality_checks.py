"""The data-quality checks behind ``analytics.quality``: one function per thing that goes wrong.

Each turns the rounds (one ``_Round`` per row, whatever its shape; ``quality_rows``) into a
``Check``. The statistical ones (``quality_tests``) are kept as ``_Test`` until ``run_checks``
adjusts their p-values together (Holm) and gives each its verdict; the others count what the
law says never happens.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from crashlog.analytics.inference import holm_adjust
from crashlog.analytics.quality_rows import (
    GAP_FACTOR,
    INSUFFICIENT,
    MIN_EXPECTED,
    OK,
    STATISTICAL_CHECKS,
    SUSPECT,
    Check,
    Verdict,
    _integer_ids,
    _Round,
    _round_of,
)
from crashlog.analytics.quality_tests import (
    EXACT_VALUES,
    _share,
    _Test,
    exact_values,
    instant_busts,
    repeat_probability,
    repeats,
    strips,
    value_formula,
)
from crashlog.law import R_OVER_X, Law
from crashlog.quality_flags import LOW_OCR_CONFIDENCE

__all__ = [
    "EXACT_VALUES",
    "GAP_FACTOR",
    "INSUFFICIENT",
    "MIN_EXPECTED",
    "OK",
    "STATISTICAL_CHECKS",
    "SUSPECT",
    "Check",
    "Verdict",
    "repeat_probability",
    "run_checks",
]

_ONE = Decimal("1.00")


def _unparseable(rounds: Sequence[_Round]) -> Check:
    bad = [r for r in rounds if r.value is None]
    if not bad:
        return Check("unparseable_values", _share(0, len(rounds)), "0", OK if rounds else INSUFFICIENT,
                     "every value is a number")
    examples = ", ".join(str(r.raw) for r in bad[:3])
    return Check(
        "unparseable_values",
        _share(len(bad), len(rounds)),
        "0",
        SUSPECT,
        f"empty cells, nulls or text (e.g. {examples}): counted and left out, the rest is checked",
    )


def _off_grid(rounds: Sequence[_Round]) -> Check:
    n = len(rounds)
    off = [r for r in rounds if r.value is not None and not r.on_grid]
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
    below = sum(1 for r in rounds if r.value is not None and r.value < _ONE)
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
    rows: Iterable[Any],
    *,
    rtp: float,
    significance: float,
    from_log: bool,
    law: Law = R_OVER_X,
    instant_bust_code: Decimal | None = None,
    floor_to_cent: bool = False,
) -> tuple[int, tuple[Check, ...], tuple[Check, ...]]:
    """``(rounds, checks, exact value checks)`` of ``rows`` (see ``quality.check_quality``)
    against ``law`` at ``rtp``: the statistical checks' p-values adjusted together by Holm's
    method."""
    at = law.with_rtp(rtp)
    rounds = [_round_of(row, instant_bust_code, floor_to_cent) for row in rows]
    lawful = [r for r in rounds if r.lawful]

    tests: list[tuple[_Test, bool]] = []
    busts = instant_busts(lawful, at, len(rounds))
    if busts:
        tests.append(busts)
    tests.extend(exact_values(lawful, at))
    repeated = repeats(rounds, at)
    if repeated:
        tests.append(repeated)
    if lawful:
        tests.append(strips(rounds, at))
    adjusted = holm_adjust([test.p_value for test, _ in tests])
    finished = {
        test.name: test.finish(p, significance, above) for (test, above), p in zip(tests, adjusted, strict=True)
    }

    def statistical(name: str, what: str) -> Check:
        return finished.get(name) or Check(name, "no rounds", what, INSUFFICIENT, "no values to test")

    checks = (
        _unparseable(rounds),
        _off_grid(rounds),
        _below_one(rounds, from_log),
        statistical("instant_busts", f"1 - r/{1 / at.bust_scale:.2f}"),
        statistical("whole_half_values", value_formula(at)),
        statistical("repeats", "sum of p_k^2"),
        statistical("repeated_runs", "Q^3 per pair of runs"),
        _round_ids(rounds),
        _time_gaps(rounds),
        _observers(rounds),
        _ocr(rounds),
    )
    exact_checks = tuple(finished[f"exact_{v:.2f}"] for v in EXACT_VALUES if f"exact_{v:.2f}" in finished)
    return len(rounds), checks, exact_checks
