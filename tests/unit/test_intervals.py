"""Every interval the analyses report unpacks as ``low, high``."""

from __future__ import annotations

from crashlog.analytics import fit
from crashlog.analytics.inference import Interval, wilson_interval
from crashlog.simulator import CrashGame


def test_an_interval_unpacks_in_order() -> None:
    low, high = wilson_interval(30, 100)
    assert low < 0.3 < high
    assert (low, high) == (wilson_interval(30, 100).low, wilson_interval(30, 100).high)
    assert list(Interval(1.0, 2.0)) == [1.0, 2.0]


def test_a_fit_reports_rtp_interval_unpacks() -> None:
    report = fit(list(CrashGame(rtp=0.97, seed=3).crashes(2_000)), rtp=0.97)
    lo, hi = report.rtp_interval
    assert lo <= report.rtp_estimate <= hi
