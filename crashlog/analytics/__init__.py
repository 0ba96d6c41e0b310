"""What the collected rounds say, and how sure one can be of it.

- ``performance``: a bot's or a strategy's results (win rate, ROI, drawdown) with intervals.
- ``inference``: the intervals, tests and multiple-test adjustments the other modules share.
- ``signals``: each signal type's hits against the law's baseline r/c (``signal_report``);
  ``signal_scoring``: the per-type tallies, tests and verdicts behind it.
- ``quality``: which collected multipliers can be trusted (``quality_report``, ``check_quality``);
  ``quality_checks``: one function per fault it looks for.
- ``fit``: do multipliers follow the law, and if not, is it the data or the game (``fit``).
- ``monitor``: a sequential alarm for a live feed with a false-alarm bound (``Monitor``).
- ``rtp``: which RTP a report assumes and where it came from; the RTP the 1.00x busts imply.
- ``connections``: the reports take a connection or a pool (``borrows_from_pool``).

The law they compare with is ``crashlog.law``; long reads stream through ``crashlog.streaming``.
"""

from crashlog.analytics.fit import FitCheck, FitReport, fit
from crashlog.analytics.inference import (
    CONFIDENCE,
    Interval,
    benjamini_hochberg,
    chi_square,
    chi_square_sf,
    expected_longest_run,
    holm_adjust,
    mean_interval,
    wilson_interval,
    z_value,
)
from crashlog.analytics.monitor import Alarm, Monitor
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
    score_signals,
    signal_report,
)
from crashlog.law import DEFAULT_RTP

__all__ = [
    "Alarm",
    "CONFIDENCE",
    "Check",
    "DEFAULT_RTP",
    "FitCheck",
    "FitReport",
    "MIN_BETS",
    "Interval",
    "Monitor",
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
    "fit",
    "holm_adjust",
    "mean_interval",
    "quality_report",
    "score_signals",
    "signal_report",
    "strategy_statistics",
    "summarize",
    "wilson_interval",
    "z_value",
]
