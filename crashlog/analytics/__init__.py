"""What the collected rounds say, and how sure one can be of it.

- ``performance``: a bot's or a strategy's results (win rate, ROI, drawdown) with intervals.
- ``inference``: the intervals and tests the other modules share.
"""

from crashlog.analytics.inference import (
    CONFIDENCE,
    Interval,
    chi_square,
    chi_square_sf,
    expected_longest_run,
    mean_interval,
    wilson_interval,
    z_value,
)
from crashlog.analytics.performance import (
    MIN_BETS,
    Statistics,
    bot_statistics,
    bot_summaries,
    strategy_statistics,
    summarize,
)
from crashlog.simulator import DEFAULT_RTP

__all__ = [
    "CONFIDENCE",
    "DEFAULT_RTP",
    "MIN_BETS",
    "Interval",
    "Statistics",
    "bot_statistics",
    "bot_summaries",
    "chi_square",
    "chi_square_sf",
    "expected_longest_run",
    "mean_interval",
    "strategy_statistics",
    "summarize",
    "wilson_interval",
    "z_value",
]
