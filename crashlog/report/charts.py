"""The report's charts: each a ``Figure`` (title, the sentence saying what to look for, the
SVG and its legend), built from ``report.data`` values with ``report.svg``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from crashlog.analytics import SignalReport
from crashlog.report.data import FLAGS, BotReport, GameReport, ReportData
from crashlog.report.svg import Axis, Band, Chart, Series, colour, thin, time_tick

#: Points of a survival curve drawn at most (log-spaced over the values).
SURVIVAL_POINTS = 300
Z95 = 1.959963984540054


@attrs.frozen
class Figure:
    """One chart as the page shows it."""

    kind: str  # bankroll, survival, quality, reliability, log
    title: str
    look_for: str
    chart: Chart


def bankroll(bot: BotReport) -> Figure:
    """Cumulative profit over the bot's rounds, its worst drawdown shaded."""
    money = bot.statistics.total_profit
    chart = Chart(Axis("round (n-th of the bot's rounds)"),
                  Axis("profit (money units)", fmt=lambda v: f"{v:,.6g}"),
                  label=f"bankroll of {bot.bot_id}")
    chart.add(Series("cumulative profit", thin(bot.curve), colour(0)))
    chart.add(Series("break-even", [(0.0, 0.0), (bot.curve[-1][0], 0.0)], "#777777", dash="4 4", width=1))
    if bot.drawdown:
        peak, trough = bot.drawdown
        chart.shade(peak, trough, f"worst drawdown: {bot.statistics.max_drawdown:,} from round {peak} to {trough}")
    return Figure(
        "bankroll", f"Bankroll: {bot.bot_id} ({bot.strategy or 'no strategy'})",
        f"Ends at {money:+,} after {bot.statistics.rounds:,} rounds. The shaded stretch is the worst "
        f"drawdown ({bot.statistics.max_drawdown:,}); a steady slope down is the house edge at work, "
        "a climb that beats it over many rounds would need luck or an edge.",
        chart,
    )


def survival(game: GameReport) -> Figure:
    """Empirical P(X >= x) against the law's line and its pointwise 95% band, log–log."""
    n = len(game.values)
    grid = _log_grid(max(game.values[-1], 1.02))
    empirical = [(x, _share_at_least(game.values, x)) for x in grid]
    law = [(x, game.law.survival(round(x, 2))) for x in grid]
    half = [Z95 * math.sqrt(p * (1 - p) / n) for _, p in law]
    floor = 0.5 / n
    chart = Chart(Axis("crash multiplier x (×, log scale)", log=True, fmt=lambda v: f"{v:g}×"),
                  Axis("P(X ≥ x) (share, log scale)", log=True, low=floor, high=1.0,
                       fmt=_share),
                  label=f"multipliers of {game.game} on {game.platform}")
    chart.band(Band("95% band for this many rounds",
                    [(x, max(p - h, floor)) for (x, p), h in zip(law, half)],
                    [(x, min(p + h, 1.0)) for (x, p), h in zip(law, half)]))
    chart.add(Series(f"the law: {game.law.describe()}", law, "#000000", dash="6 4"))
    chart.add(Series(f"recorded ({n:,} rounds)", [p for p in empirical if p[1] > 0], colour(0)))
    return Figure(
        "survival", f"Multipliers against the law: {game.game} on {game.platform}",
        "The recorded curve should stay inside the grey band around the dashed line. Falling "
        "below it at high x means big multipliers are missing (a scraper cut them, or a stingier "
        "game); a step at 1.00× off the line means the instant busts are too many or too few.",
        chart,
    )


def quality(data: ReportData) -> Figure:
    """The share of rounds carrying each quality flag, per time bucket."""
    moments = list(data.flags)
    span = moments[-1].timestamp() - moments[0].timestamp()
    chart = Chart(Axis(f"time first seen (UTC, per {data.flag_bucket})", fmt=time_tick(span)),
                  Axis("rounds flagged (%)", low=0.0, fmt=lambda v: f"{v:g}%"),
                  label="quality flags over time")
    step = 3600 if data.flag_bucket == "hour" else 86400
    for i, flag in enumerate(("any", *FLAGS)):
        points: list[tuple[float, float]] = []
        for m in moments:
            if points and m.timestamp() - points[-1][0] > step:  # no rounds seen in between: a gap
                points.append((m.timestamp() - step, math.nan))
            points.append((m.timestamp(), 100 * data.flags[m][flag] / data.flags[m]["rounds"]))
        if flag == "any":  # a wide pale line under the others: each flag's share of it shows on top
            chart.add(Series("any flag", points, "#b8b8b8", width=7))
        else:
            chart.add(Series(flag, points, colour(i), markers=len(moments) < 40))
    return Figure(
        "quality", f"Data quality: flagged rounds per {data.flag_bucket}",
        "Flat near zero is healthy; a gap is a time no round was seen. A jump points at that "
        "time's collection: "
        "off_grid (a value with more than two decimals), disagreement (bots read the round "
        "differently), low_ocr_confidence (the screen reader was unsure).",
        chart,
    )


def reliability(report: SignalReport) -> Figure | None:
    """Predicted probability (confidence) against the hit rate, per signal type, with the
    law's r/c for the same signals; None when no signal carried a confidence."""
    chart = Chart(Axis("predicted probability of a hit (confidence, %)", low=0.0, high=100.0,
                       fmt=lambda v: f"{v:g}%"),
                  Axis("observed hit rate (%)", low=0.0, high=100.0, fmt=lambda v: f"{v:g}%"),
                  label="signal reliability")
    chart.add(Series("perfectly calibrated", [(0.0, 0.0), (100.0, 100.0)], "#777777", dash="2 4", width=1))
    drawn = 0
    for i, score in enumerate(t for t in report.types if t.reliability):
        bins = score.reliability
        chart.add(Series(f"{score.signal_type}: hit rate", [(100 * b.mean_forecast, 100 * b.observed_rate)
                                                            for b in bins], colour(i), markers=True))
        chart.add(Series(f"{score.signal_type}: chance (r/c)", [(100 * b.mean_forecast, 100 * b.mean_baseline)
                                                               for b in bins], colour(i), dash="5 4", width=1.5))
        drawn += 1
    if not drawn:
        return None
    return Figure(
        "reliability", "Signal reliability: predicted against what happened",
        "Each solid line should follow the diagonal (a confidence of 70% should come true 70% of "
        "the time) and stand above its dashed line: the dashed line is what chance alone gives "
        "those signals under the law (r/c for a target c). Solid on dashed means no skill.",
        chart,
    )


def log_growth(data: ReportData) -> Figure:
    """The log's size over time: events committed, cumulative."""
    total, points = 0, []
    for moment, events in data.log_growth:
        total += events
        points.append((moment.timestamp(), float(total)))
    span = points[-1][0] - points[0][0]
    chart = Chart(Axis("time committed (UTC)", fmt=time_tick(span)),
                  Axis("events in the log (count)", low=0.0, fmt=lambda v: f"{v:,.0f}"),
                  label="the log's size")
    chart.add(Series("events", points, colour(2), markers=len(points) < 40))
    return Figure(
        "log", "The log's size over time",
        "The log only grows: a flat stretch is a time nothing was recorded (a bot down?), a "
        "jump a busy time or a replayed spool.",
        chart,
    )


def _log_grid(top: float) -> list[float]:
    """Log-spaced multipliers from 1.00 to ``top``, on the cent grid, without repeats."""
    steps = SURVIVAL_POINTS
    raw = (math.exp(math.log(top) * i / steps) for i in range(steps + 1))
    return sorted({math.floor(x * 100) / 100 for x in raw})


def _share_at_least(values: Sequence[float], x: float) -> float:
    from bisect import bisect_left

    return (len(values) - bisect_left(values, x - 1e-9)) / len(values)


def _share(value: float) -> str:
    return f"{value * 100:.3g}%"
