"""Scoring signals one by one: each signal type's tally, its test and its verdict.

``Scorer`` takes resolved signals in time order, keeps one tally per signal type (hits,
the chances ``r / c_i`` the law gives them, Brier sums, the reliability bins) and, at the
end, tests every type's hits against the Poisson-binomial law of its chances and adjusts
the p-values across types (Benjamini–Hochberg). ``analytics.signals`` builds the report
around it and reads the table.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

import attrs

from crashlog.analytics.inference import (
    Interval,
    benjamini_hochberg,
    poisson_binomial_two_sided,
    wilson_interval,
)
from crashlog.law import CENT, DEFAULT_RTP, survival

__all__ = [
    "BETTER",
    "NO_EVIDENCE",
    "WORSE",
    "ReliabilityBin",
    "Scorer",
    "SignalTypeScore",
    "chance_of_hit",
    "is_scored",
]

#: Verdicts of a signal type.
NO_EVIDENCE = "no evidence of skill"
BETTER = "better than chance"
WORSE = "worse than chance"


def chance_of_hit(predicted: Decimal | float | str, rtp: float = DEFAULT_RTP) -> float:
    """``P(X >= c)`` under the law: the chance a signal predicting ``c`` comes true by luck.

    A crash point is shown on the two-decimal grid, so reaching an off-grid ``c`` (2.005)
    means reaching the next cent up (2.01).
    """
    value = Decimal(str(predicted)).quantize(CENT, rounding=ROUND_CEILING)
    return survival(value, rtp)


@attrs.frozen(kw_only=True)
class ReliabilityBin:
    """Signals whose confidence fell in ``[low, high)`` (the last bin includes 1.0)."""

    low: float
    high: float
    count: int
    mean_forecast: float
    observed_rate: float
    mean_baseline: float  # what chance alone gives these signals


@attrs.frozen(kw_only=True)
class SignalTypeScore:
    """One signal type against the law's baseline. Rates are fractions (0.5 = 50%)."""

    signal_type: str
    n: int
    hits: int
    hit_rate: float | None
    interval: Interval  # Wilson, at the report's confidence
    baseline: float | None  # mean of r / c_i over the type's signals
    expected_hits: float
    targets: tuple[Decimal, ...]  # the distinct predicted multipliers
    z: float | None
    p_value: float | None  # two-sided, hits against the baseline
    adjusted_p: float | None  # Benjamini–Hochberg
    survives_bh: bool
    verdict: str
    forecasts: int  # signals with a confidence_score, which the Brier figures use
    brier: float | None
    brier_baseline: float | None  # forecasting r / c_i for every signal
    brier_skill: float | None  # 1 - brier / brier_baseline
    reliability: tuple[ReliabilityBin, ...]



class _TypeTally:
    """One pass over a signal type's scored signals."""

    def __init__(self, bins: int) -> None:
        self.n = 0
        self.hits = 0
        self.expected = 0.0
        self.variance = 0.0
        self.targets: set[Decimal] = set()
        self.chances: Counter[float] = Counter()
        self.forecasts = 0
        self.brier_sum = 0.0
        self.brier_baseline_sum = 0.0
        # per confidence bin: signals, hits, and the sums of their forecasts and chances
        self.bin_count = [0] * bins
        self.bin_hits = [0] * bins
        self.bin_forecast = [0.0] * bins
        self.bin_chance = [0.0] * bins

    def add(self, predicted: Decimal, hit: bool, confidence: float | None, rtp: float) -> None:
        chance = chance_of_hit(predicted, rtp)
        outcome = 1.0 if hit else 0.0
        self.n += 1
        self.hits += hit
        self.expected += chance
        self.variance += chance * (1 - chance)
        self.targets.add(predicted)
        self.chances[chance] += 1
        if confidence is None:
            return
        self.forecasts += 1
        self.brier_sum += (confidence - outcome) ** 2
        self.brier_baseline_sum += (chance - outcome) ** 2
        bins = len(self.bin_count)
        cell = min(int(confidence * bins), bins - 1)
        self.bin_count[cell] += 1
        self.bin_hits[cell] += hit
        self.bin_forecast[cell] += confidence
        self.bin_chance[cell] += chance

    def test(self) -> tuple[float | None, float | None]:
        """z (how many standard deviations the hits are from chance) and the exact two-sided
        p-value of the hits under the Poisson-binomial law of the signals' chances."""
        if self.n == 0:
            return None, None
        if self.variance <= 0:  # every signal certain (c <= 1.00) or impossible
            return None, 1.0 if math.isclose(self.hits, self.expected, abs_tol=1e-9) else 0.0
        z = (self.hits - self.expected) / math.sqrt(self.variance)
        return z, poisson_binomial_two_sided(self.hits, self.chances)

    def reliability(self) -> tuple[ReliabilityBin, ...]:
        width = 1 / len(self.bin_count)
        return tuple(
            ReliabilityBin(
                low=round(i * width, 12),
                high=round((i + 1) * width, 12),
                count=count,
                mean_forecast=self.bin_forecast[i] / count,
                observed_rate=self.bin_hits[i] / count,
                mean_baseline=self.bin_chance[i] / count,
            )
            for i, count in enumerate(self.bin_count)
            if count
        )


def is_scored(row: Mapping[str, Any]) -> bool:
    return row["predicted_multiplier"] is not None and row["hit"] is not None


class Scorer:
    """Signals in time order, tallied per type; ``finish`` adds the tests across types."""

    def __init__(self, *, rtp: float, bins: int) -> None:
        if bins < 1:
            raise ValueError(f"invalid bins={bins!r}: must be at least 1")
        self.rtp = rtp
        self.bins = bins
        self.tallies: dict[str, _TypeTally] = {}
        self.unscored = 0
        self.first: datetime | None = None
        self.last: datetime | None = None

    def add(self, row: Mapping[str, Any]) -> None:
        if not is_scored(row):
            self.unscored += 1
            return
        predicted, hit = row["predicted_multiplier"], row["hit"]
        tally = self.tallies.get(row["signal_type"])
        if tally is None:
            tally = self.tallies[row["signal_type"]] = _TypeTally(self.bins)
        rtp = row.get("rtp")
        confidence = row["confidence_score"]
        tally.add(
            Decimal(str(predicted)),
            bool(hit),
            None if confidence is None else float(confidence),
            self.rtp if rtp is None else float(rtp),
        )
        at = row.get("occurred_at")
        if at is not None:
            self.first = at if self.first is None else min(self.first, at)
            self.last = at if self.last is None else max(self.last, at)

    def finish(self, *, q: float, confidence: float) -> list[SignalTypeScore]:
        names = sorted(self.tallies)
        tests = [self.tallies[name].test() for name in names]
        p_values = [1.0 if p is None else p for _, p in tests]
        survives, adjusted = benjamini_hochberg(p_values, q)
        scores = []
        for i, name in enumerate(names):
            tally = self.tallies[name]
            z, p = tests[i]
            interval = wilson_interval(tally.hits, tally.n, confidence)
            baseline = tally.expected / tally.n if tally.n else None
            scores.append(
                SignalTypeScore(
                    signal_type=name,
                    n=tally.n,
                    hits=tally.hits,
                    hit_rate=tally.hits / tally.n if tally.n else None,
                    interval=interval,
                    baseline=baseline,
                    expected_hits=tally.expected,
                    targets=tuple(sorted(tally.targets)),
                    z=z,
                    p_value=p,
                    adjusted_p=None if p is None else adjusted[i],
                    survives_bh=survives[i] and p is not None,
                    verdict=_verdict(tally, interval, baseline, survives[i]),
                    forecasts=tally.forecasts,
                    **_brier(tally),
                    reliability=tally.reliability(),
                )
            )
        return scores


def _verdict(tally: _TypeTally, interval: Interval, baseline: float | None, survives: bool) -> str:
    if baseline is None or baseline in interval or not survives:
        return NO_EVIDENCE
    return BETTER if tally.hits > tally.expected else WORSE


def _brier(tally: _TypeTally) -> dict[str, float | None]:
    if not tally.forecasts:
        return {"brier": None, "brier_baseline": None, "brier_skill": None}
    brier = tally.brier_sum / tally.forecasts
    reference = tally.brier_baseline_sum / tally.forecasts
    skill = 1 - brier / reference if reference > 0 else None
    return {"brier": brier, "brier_baseline": reference, "brier_skill": skill}
