"""The report as one HTML page: styles inline, charts as inline SVG, no script, no link out.

``render(data)`` returns the whole document. Sections (each ``<section id=...>``): ``fleet``
(a table per bot), ``bankroll`` (a curve per bot), ``multipliers`` (each game against its
law), ``quality`` (flags over time, the quality report's verdicts), ``signals`` (reliability),
``operations`` (the projections' lag, the log's size). A section with nothing to show says so
in a sentence. Every text from the database is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal

from crashlog import __version__
from crashlog.analytics import FitReport, Interval, Statistics
from crashlog.analytics.rtp import RTP_SOURCES
from crashlog.printed import html_text as escape
from crashlog.report import charts
from crashlog.report.data import ReportData

_STYLE = """
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a; }
body { max-width: 1240px; margin: 0 auto; padding: 16px 24px 48px; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0.2em 0; } h2 { border-bottom: 2px solid #0072B2; padding-bottom: 2px; }
h3 { font-size: 1.05em; margin: 0 0 2px; } .meta, .look { color: #444; font-size: 0.92em; }
nav a { margin-right: 1em; } .note { background: #fff6db; border-left: 4px solid #E69F00; padding: 6px 10px; }
table { border-collapse: collapse; font-size: 0.84em; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.text { text-align: left; } th { white-space: normal; }
td small { color: #555; } td.warn { color: #9a3b00; white-space: normal; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 18px; }
figure.chart { margin: 0; padding: 8px; border: 1px solid #e3e3e3; border-radius: 6px; }
svg.plot { width: 100%; height: auto; font-size: 14px; }
svg.plot .grid { stroke: #e6e6e6; } svg.plot .axis-label { font-size: 15px; fill: #333; }
ul.legend { list-style: none; padding: 0; margin: 4px 0 0; font-size: 0.85em;
  display: flex; flex-wrap: wrap; gap: 4px 14px; }
.swatch { display: inline-block; width: 22px; height: 0; margin-right: 6px; vertical-align: middle; }
.swatch.band { height: 10px; opacity: 0.35; border: none; }
.verdict { font-weight: 600; } div.wide { overflow-x: auto; }
ol.warnings { font-size: 0.88em; color: #9a3b00; padding-left: 1.4em; }
ol.warnings li::marker { content: "⚠ " counter(list-item) "  "; }
"""


def render(data: ReportData) -> str:
    """The whole HTML document for ``data``."""
    if data.empty:
        body = _note("Nothing recorded yet: the log is empty. Run a bot (or `crashlog demo`) and "
                     "make the report again.")
    elif not data.matched:
        body = _note(f"Nothing matches the filters {escape(data.filters.describe())}: no round, "
                     "multiplier or signal. Widen them (or leave them out) and make the report again.")
        body += _operations(data)
    else:
        body = "".join((_fleet(data), _bankroll(data), _multipliers(data), _quality(data),
                        _signals(data), _operations(data)))
    scope = escape(data.filters.describe()) or "everything recorded"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>crashlog report</title><style>{_STYLE}</style></head><body>"
        f"<h1>crashlog report</h1><p class=\"meta\">Made {data.made_at:%Y-%m-%d %H:%M} UTC by crashlog "
        f"{escape(__version__)}; scope: {scope}; the log holds {data.log_events:,} events.</p>"
        f"{_nav(data)}{body}</body></html>\n"
    )


def _nav(data: ReportData) -> str:
    if data.empty or not data.matched:
        return ""
    links = [("fleet", "Fleet"), ("bankroll", "Bankroll"), ("multipliers", "Multipliers"),
             ("quality", "Data quality"), ("signals", "Signals"), ("operations", "Operations")]
    return "<nav>" + "".join(f'<a href="#{i}">{t}</a>' for i, t in links) + "</nav>"


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _section(key: str, title: str, *parts: str) -> str:
    return f'<section id="{key}"><h2>{escape(title)}</h2>{"".join(parts)}</section>'


def _figure(figure: charts.Figure) -> str:
    return (f'<figure class="chart" data-kind="{figure.kind}"><figcaption><h3>{escape(figure.title)}</h3>'
            f'<p class="look">{escape(figure.look_for)}</p></figcaption>'
            f"{figure.chart.render()}{figure.chart.legend()}</figure>")


def _figures(*figures: charts.Figure) -> str:
    """Figures in the page's grid: side by side where the screen is wide, each readable."""
    return f'<div class="figures">{"".join(_figure(f) for f in figures)}</div>'


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], classes: Sequence[str] = ()) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{classes[i]}">{cell}</td>' if i < len(classes) and classes[i] else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


# -- fleet ----------------------------------------------------------------------------------


def _fleet(data: ReportData) -> str:
    if not data.bots:
        return _section("fleet", "The fleet at a glance", _note("No settled round matches."))
    warnings = [(b.bot_id, b.statistics.warning) for b in data.bots if b.statistics.warning]
    marks = {bot: f"⚠ {i}" for i, (bot, _) in enumerate(warnings, start=1)}
    rows = [[*_bot_row(b.bot_id, b.strategy, b.statistics), marks.get(b.bot_id, "")] for b in data.bots]
    head = ["bot", "strategy", "rounds", "bets", "win rate (95%)", "ROI (95%)", "EV per bet (95%)",
            "profit", "max drawdown", "losing streak (chance)", "small sample"]
    notes = "".join(f"<li>{escape(bot)}: {escape(text or '')}</li>" for bot, text in warnings)
    return _section(
        "fleet", "The fleet at a glance",
        '<p class="look">Intervals are 95%: a ROI interval that holds 0 cannot tell skill from luck; '
        "with fewer than 30 bets nothing is worth concluding.</p>",
        f'<div class="wide">{_table(head, rows, ("text", "text", *[""] * 8, "warn"))}</div>',
        f'<ol class="warnings">{notes}</ol>' if notes else "",
    )


def _bot_row(bot_id: str, strategy: str, s: Statistics) -> list[str]:
    bets = s.wins + s.losses
    chance = f" ({s.expected_longest_losing_streak:.0f})" if s.expected_longest_losing_streak else ""
    return [
        escape(bot_id), escape(strategy), f"{s.rounds:,}", f"{bets:,}",
        _rate(s.win_rate, s.win_rate_interval), _rate(s.roi, s.roi_interval),
        _value(s.expected_value, s.expected_value_interval), _money(s.total_profit),
        _money(s.max_drawdown), f"{s.longest_losing_streak}{chance}",
    ]


def _rate(value: float | None, interval: Interval | None) -> str:
    if value is None:
        return "–"
    shown = f"{value:.1%}"
    return f"{shown}<br><small>{interval.low:.1%} to {interval.high:.1%}</small>" if interval else shown


def _value(value: float | None, interval: Interval | None) -> str:
    if value is None:
        return "–"
    shown = f"{value:,.3g}"
    return f"{shown}<br><small>{interval.low:,.3g} to {interval.high:,.3g}</small>" if interval else shown


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


# -- charts ---------------------------------------------------------------------------------


def _bankroll(data: ReportData) -> str:
    figures = "".join(_figure(charts.bankroll(b)) for b in data.bots)
    return _section("bankroll", "Bankroll per bot",
                    f'<div class="figures">{figures}</div>' if figures else _note("No settled round matches."))


def _multipliers(data: ReportData) -> str:
    if not data.games:
        return _section("multipliers", "Multipliers against the game's law", _note("No multiplier matches."))
    parts = []
    for game in data.games:
        words = verdict_words(game.fit)
        source = RTP_SOURCES.get(game.rtp_source, game.rtp_source)
        parts.append(f'<div>{_figure(charts.survival(game))}<p><span class="verdict">Fit: {escape(game.fit.verdict)}.'
                     f"</span> {escape(words)} RTP assumed {game.law.rtp:.2%} ({escape(source)}).</p></div>")
    return _section(
        "multipliers", "Multipliers against the game's law",
        '<p class="look">One chart per game and platform, over the rounds every bot saw (merged; '
        "the --bot filter does not apply here).</p>",
        f'<div class="figures">{"".join(parts)}</div>',
    )


def verdict_words(fit: FitReport) -> str:
    """The fit's verdict as a sentence a bot owner can act on."""
    flags = ", ".join(fit.flags) or "none"
    estimate = ("" if math.isnan(fit.rtp_estimate) else
                f" The 1.00× busts put the RTP at {fit.rtp_estimate:.2%} "
                f"(95%: {fit.rtp_interval.low:.2%} to {fit.rtp_interval.high:.2%}).")
    if fit.verdict == "consistent":
        return (f"The {fit.n_used:,} rounds are consistent with the law: none of the checks fired "
                f"(overall false-alarm rate {fit.alpha:g}).{estimate}")
    if fit.verdict == "insufficient data":
        return f"Only {fit.n_used:,} usable rounds: too few to judge the fit yet.{estimate}"
    if fit.verdict == "data-quality suspect":
        return (f"The recorded values break what the law allows (flags: {flags}): fix the collection "
                f"before trusting the other figures.{estimate}")
    return (f"The values deviate from the law (flags: {flags}): the game is not what it claims, or "
            f"the collection loses some values.{estimate}")


def _quality(data: ReportData) -> str:
    if not data.flags:
        return _section("quality", "Data quality over time", _note("No multiplier matches."))
    rows = [[escape(g.game), escape(g.platform), f"{len(g.values):,}", escape(g.quality_verdict),
             escape(", ".join(g.quality_suspects) or "–")] for g in data.games]
    return _section(
        "quality", "Data quality over time", _figures(charts.quality(data)),
        "<h3>The quality report's verdicts</h3>",
        _table(["game", "platform", "rounds", "verdict", "suspect checks"], rows, ("text", "text", "", "text", "text")),
    )


def _signals(data: ReportData) -> str:
    report = data.signals
    if report is None:
        return _section("signals", "Signal reliability", _note("No signal matches."))
    figure = charts.reliability(report)
    rows = [[escape(t.signal_type), f"{t.n:,}", _rate(t.hit_rate, t.interval), _rate(t.baseline, None),
             escape(t.verdict), "–" if t.brier_skill is None else f"{t.brier_skill:+.3f}"] for t in report.types]
    return _section(
        "signals", "Signal reliability",
        _figures(figure) if figure else _note("No signal carried a confidence_score: no reliability curve."),
        _table(["signal type", "scored", "hit rate (95%)", "chance (r/c)", "verdict", "Brier skill"], rows,
               ("text", "", "", "", "text")),
        f'<p class="look">{report.unresolved:,} signals wait for their round; {report.unscored:,} predicted '
        "no multiplier.</p>",
    )


def _operations(data: ReportData) -> str:
    rows = [[escape(name), f"{events:,}", f"{seconds:,.1f}"] for name, (events, seconds) in data.lag.items()]
    size = (f"<p>The log holds {data.log_events:,} events in {data.log_bytes / 1e6:,.1f} MB (table and "
            f"indexes); {data.rejected:,} rejected events.</p>")
    growth = _figures(charts.log_growth(data)) if data.log_growth else ""
    return _section(
        "operations", "Projections and the log",
        '<p class="look">Lag is what each projection has not applied yet: the read tables above '
        "miss those events. Zero is current.</p>",
        _table(["projection", "lag (events)", "oldest waiting (s)"], rows, ("text",)), size, growth,
    )
