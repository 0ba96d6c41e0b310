"""What the collected rounds say, and how sure one can be of it.

- ``performance``: a bot's or a strategy's results (win rate, ROI, drawdown) with intervals.
- ``inference``: the intervals and tests the other modules share.
- ``signals``: each signal type's hits against the law's baseline r/c (``signal_report``).
- ``quality``: which collected multipliers can be trusted (``quality_report``, ``check_quality``).
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
from crashlog.analytics.quality import (
    Check,
    QualityReport,
    check_quality,
    quality_report,
)
from crashlog.analytics.signals import (
    SignalReport,
    SignalTypeScore,
    benjamini_hochberg,
    score_signals,
    signal_report,
)
from crashlog.simulator import DEFAULT_RTP

__all__ = [
    "CONFIDENCE",
    "Check",
    "DEFAULT_RTP",
    "MIN_BETS",
    "Interval",
    "QualityReport",
    "SignalReport",
    "SignalTypeScore",
    "Statistics",
    "benjamini_hochberg",
    "bot_statistics",
    "bot_summaries",
    "check_quality",
    "chi_square",
    "chi_square_sf",
    "expected_longest_run",
    "mean_interval",
    "quality_report",
    "score_signals",
    "signal_report",
    "strategy_statistics",
    "summarize",
    "wilson_interval",
    "z_value",
]
