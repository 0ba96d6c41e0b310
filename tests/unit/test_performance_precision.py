"""Bot statistics keep their intervals where one-pass sums of squares cancel to nothing.

Stakes and profits that are large and nearly alike (a whale staking 1,000,000.00 with profits a
cent apart) leave a tiny spread on top of huge squares: expanded one-pass formulas lose it all
and report an interval of width zero. The reference here is the two-pass formula in exact
decimals.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from crashlog.analytics.performance import summarize

Z = 1.959963984540054


def rows(n: int) -> list[dict[str, object]]:
    out = []
    for i in range(n):
        stake = Decimal("1000000.00") + Decimal(i % 3) / 100
        profit = Decimal("1000000.00") + Decimal(i % 2) / 100
        out.append({
            "outcome": "WIN", "profit_loss": profit, "stake": stake, "bot_id": "whale",
            "target_multiplier": Decimal("2.00"), "cashout_multiplier": Decimal("2.00"),
        })
    return out


def exact_halves(data: list[dict[str, object]]) -> tuple[float, float]:
    profits = [r["profit_loss"] for r in data]
    stakes = [r["stake"] for r in data]
    n = len(data)
    mean = sum(profits, Decimal(0)) / n
    ev_var = sum(((p - mean) ** 2 for p in profits), Decimal(0)) / (n - 1)
    roi = sum(profits, Decimal(0)) / sum(stakes, Decimal(0))
    residuals = sum(((p - roi * s) ** 2 for p, s in zip(profits, stakes, strict=True)), Decimal(0))
    roi_var = residuals * n / (n - 1) / sum(stakes, Decimal(0)) ** 2
    return Z * math.sqrt(ev_var / n), Z * math.sqrt(roi_var)


def test_ev_and_roi_intervals_survive_large_alike_values() -> None:
    data = rows(1_000)
    stats = summarize(data, bot_id="whale")
    ev_half, roi_half = exact_halves(data)
    assert stats.expected_value_interval is not None and stats.roi_interval is not None
    ev = stats.expected_value_interval
    roi = stats.roi_interval
    assert (ev.high - ev.low) / 2 == pytest.approx(ev_half, rel=1e-6)
    assert (roi.high - roi.low) / 2 == pytest.approx(roi_half, rel=1e-6)
