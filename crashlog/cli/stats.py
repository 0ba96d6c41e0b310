"""``crashlog stats``, ``signals`` and ``quality``: what the recorded rounds say.

``quality --file CSV`` reads a recorded CSV instead of the database and also runs ``fit``
(there is no separate fit verb): the law's checks with its verdict and RTP estimate.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import attrs
import orjson

from crashlog import analytics
from crashlog.analytics import signals
from crashlog.analytics.fit import FitReport, fit
from crashlog.analytics.parsing import read_csv_column
from crashlog.cli.common import add_verb, with_connection
from crashlog.cli.render import DataTable, coloured, make_table, money, out, percent, say, span
from crashlog.cli.render import print_json as print_json_text
from crashlog.law import DEFAULT_RTP, LAWS

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs

# "streak" is the longest losing streak; "by chance" the longest expected for that cash-out
# and number of bets.
_STATISTICS_COLUMNS = (
    "bot", "target", "rounds", "win rate", "95% CI", "staked", "profit", "ROI", "95% CI ",
    "EV/bet", "max DD", "streak", "by chance",
)
# p: two-sided, hits against the baseline; BH p: adjusted across types; skill: Brier skill
# score of the confidences against forecasting the baseline.
_SIGNAL_COLUMNS = (
    "signal type", "targets", "signals", "hit rate", "95% CI", "baseline", "p", "BH p", "Brier",
    "skill", "verdict",
)
_VALUE_CHECKS = frozenset({"null_values", "unparseable_values", "off_grid", "below_one", "above_cap"})
_QUALITY_COLOURS = {"ok": "green", "suspect": "red", "insufficient data": "yellow"}


def register(verbs: Verbs) -> None:
    """Add ``stats``, ``signals`` and ``quality`` to the parser."""
    stats = add_verb(verbs, "stats", "statistics of a bot, a strategy, or every bot", cmd_stats)
    stats.add_argument("--bot", help="one bot's full statistics")
    stats.add_argument("--strategy", help="one strategy (with --bot: that bot's rounds of it)")
    stats.add_argument(
        "--rtp", type=float, default=DEFAULT_RTP, help="the game's RTP (default 0.97)"
    )
    stats.add_argument("--json", action="store_true", help="JSON instead of a table")
    _register_signals(verbs)
    _register_quality(verbs)


def _register_signals(verbs: Verbs) -> None:
    sub = add_verb(
        verbs, "signals", "score each signal type against chance (the law's r/c baseline)",
        cmd_signals,
    )
    sub.add_argument("--game")
    sub.add_argument("--platform")
    sub.add_argument("--bot", help="signals of this bot only")
    sub.add_argument(
        "--holdout", type=float, default=None, help="score only the last fraction (e.g. 0.3)"
    )
    sub.add_argument(
        "--rtp", type=float, default=None, help="default: the game's configured RTP, else 0.97"
    )
    sub.add_argument("--q", type=float, default=0.05, help="BH false discovery rate")
    sub.add_argument("--json", action="store_true", help="JSON instead of a table")


def _register_quality(verbs: Verbs) -> None:
    sub = add_verb(
        verbs, "quality", "which collected multipliers can be trusted: checks against the law",
        cmd_quality,
    )
    sub.add_argument("--game", help="the game (required unless --file)")
    sub.add_argument("--platform", help="the platform (required unless --file)")
    sub.add_argument("--bot", help="check this bot's own readings")
    sub.add_argument(
        "--file", help="a recorded CSV with a header instead of the database; also runs fit"
    )
    sub.add_argument("--column", default="multiplier", help="the CSV column of multipliers")
    sub.add_argument(
        "--law", choices=list(LAWS), default=None,
        help="the game's law (default r_over_x; roobet, bustabit_v1, ethercrash: instant-bust "
        "family; stake_float: floats floored to the cent)",
    )
    sub.add_argument(
        "--floor-to-cent", action="store_true", default=None,
        help="read off-grid floats rounded down to the cent, as the game shows them",
    )
    sub.add_argument(
        "--instant-bust-code", default=None,
        help="the number the source writes for a 1.00 bust (e.g. 0)",
    )
    sub.add_argument("--since", type=iso_time, help="rounds first seen at or after (ISO 8601)")
    sub.add_argument("--until", type=iso_time, help="rounds first seen before (ISO 8601)")
    sub.add_argument(
        "--rtp", type=float, default=None, help="default: the game's configured RTP, else 0.97"
    )
    significance = analytics.quality.SIGNIFICANCE
    sub.add_argument(
        "--significance", type=float, default=significance,
        help=f"significance level (default {significance})",
    )
    sub.add_argument("--json", action="store_true", help="JSON instead of a table")


def iso_time(value: str) -> datetime:
    """An ISO 8601 time for --since/--until; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {value!r}: use ISO 8601, e.g. 2025-06-01T12:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def print_json(value: Any) -> None:
    print_json_text(orjson.dumps(value, default=str).decode())


# -- stats ---------------------------------------------------------------------------------


@with_connection
async def cmd_stats(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    if args.bot or args.strategy:
        return await _one_statistics(conn, args)
    summaries = await analytics.bot_summaries(conn)
    if args.json:
        print_json(summaries)
    else:
        out.print(summaries_table(summaries))
    return 0


async def _one_statistics(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    if args.bot:
        stats = await analytics.bot_statistics(conn, args.bot, args.strategy, rtp=args.rtp)
    else:
        stats = await analytics.strategy_statistics(conn, args.strategy, rtp=args.rtp)
    if args.json:
        print_json(stats.as_dict())
        return 0
    out.print(statistics_table([stats], f"statistics of {args.bot or args.strategy}"))
    if stats.warning:
        say(stats.warning, style="yellow")
    return 0


def summaries_table(summaries: Sequence[dict[str, Any]]) -> DataTable:
    columns = ("bot", "rounds", "wins", "losses", "skips", "staked", "profit", "ROI")
    table = make_table(f"bots ({len(summaries)})", columns, right=columns[1:])
    for s in summaries:
        roi = s["total_profit"] / s["total_staked"] if s["total_staked"] else None
        table.add_row(
            s["bot_id"], f"{s['rounds']:,}", f"{s['wins']:,}", f"{s['losses']:,}",
            f"{s['skips']:,}", money(s["total_staked"]), money(s["total_profit"]),
            percent(None if roi is None else float(roi)),
        )
    return table


def statistics_table(rows: Sequence[analytics.Statistics], title: str) -> DataTable:
    """Per bot or strategy: its rounds, win rate, money, ROI and streaks (``stats``, ``demo``)."""
    table = DataTable(title=title)
    for column in _STATISTICS_COLUMNS:
        table.add_column(column, justify="left" if column == "bot" else "right", no_wrap=True)
    for s in rows:
        chance = s.expected_longest_losing_streak
        table.add_row(
            s.bot_id or s.strategy or "",
            "" if s.cashout is None else f"{s.cashout:.2f}",
            f"{s.rounds:,}", percent(s.win_rate), span(s.win_rate_interval),
            money(s.total_staked), money(s.total_profit), percent(s.roi), span(s.roi_interval),
            "" if s.expected_value is None else f"{s.expected_value:+.3f}",
            money(s.max_drawdown), str(s.longest_losing_streak),
            "" if chance is None else f"{chance:.1f}",
        )
    return table


def warnings_note(rows: Sequence[analytics.Statistics]) -> str | None:
    """One line for the bots whose sample cannot tell their ROI from the house edge."""
    warned = [s for s in rows if s.warning]
    if not warned:
        return None
    edge = warned[0].house_edge
    return (
        f"{len(warned)} of {len(rows)} bots have too few bets to tell their ROI from the "
        f"house edge ({edge:+.1%}); `crashlog stats --bot NAME` says how many would be needed."
    )


# -- signals -------------------------------------------------------------------------------


@with_connection
async def cmd_signals(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    report = await signals.signal_report(
        conn, game=args.game, platform=args.platform, bot_id=args.bot, rtp=args.rtp,
        holdout=args.holdout, q=args.q,
    )
    if args.json:
        print_json(report.as_dict())
        return 0
    out.print(signals_table(report))
    for line in signals.report_notes(report):
        say(line)
    return 0


def signals_table(report: analytics.SignalReport) -> DataTable:
    table = DataTable(title=f"signals against chance (Benjamini-Hochberg at q={report.q:g})")
    for column in _SIGNAL_COLUMNS:
        left = column in ("signal type", "verdict")
        table.add_column(column, justify="left" if left else "right", no_wrap=not left)
    for t in report.types:
        targets = ", ".join(f"{c:.2f}" for c in t.targets[:3])
        colour = {signals.BETTER: "green", signals.WORSE: "red"}.get(t.verdict)
        table.add_row(
            t.signal_type, targets + (" ..." if len(t.targets) > 3 else ""), f"{t.n:,}",
            percent(t.hit_rate), span(t.interval), percent(t.baseline),
            "" if t.p_value is None else f"{t.p_value:.3g}",
            "" if t.adjusted_p is None else f"{t.adjusted_p:.3g}",
            "" if t.brier is None else f"{t.brier:.3f}",
            "" if t.brier_skill is None else f"{t.brier_skill:+.3f}",
            coloured(t.verdict, colour),
        )
    return table


# -- quality -------------------------------------------------------------------------------


async def cmd_quality(args: argparse.Namespace) -> int:
    if args.file:
        return _quality_of_file(args)
    if not (args.game and args.platform):
        raise ValueError("quality needs --game and --platform (the database), or --file CSV")
    return await _quality_from_database(args) or 0


@with_connection
async def _quality_from_database(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    report = await analytics.quality_report(
        conn, game=args.game, platform=args.platform, bot_id=args.bot, since=args.since,
        until=args.until, rtp=args.rtp, significance=args.significance, law=args.law,
    )
    _print_quality(report, args)
    return 0


def _quality_of_file(args: argparse.Namespace) -> int:
    """``check_quality`` and ``fit`` of a CSV column: no database."""
    cells = read_csv_column(args.file, args.column)
    options = {
        "law": args.law, "instant_bust_code": args.instant_bust_code,
        "floor_to_cent": args.floor_to_cent,
    }
    report = analytics.check_quality(
        cells, rtp=args.rtp, significance=args.significance, game=args.file, **options
    )
    fitted = fit(cells, args.rtp, alpha=args.significance, **options)
    if args.json:
        print_json({"quality": report.as_dict(), "fit": attrs.asdict(fitted, recurse=True)})
        return 0
    _print_quality(report, args)
    out.print(fit_table(fitted))
    for line in fit_notes(fitted):
        say(line)
    return 0


def _print_quality(report: analytics.QualityReport, args: argparse.Namespace) -> None:
    if args.json:
        print_json(report.as_dict())
        return
    out.print(quality_table(report))
    for check in report.shown_checks():
        if check.verdict == "suspect":
            say(f"{check.name}: {check.detail}")


def fit_table(report: FitReport) -> DataTable:
    """fit's checks: statistic, p-value and whether each fired at ``alpha / 7``."""
    claim = "shape only" if report.shape_only else f"claimed r = {report.rtp_claimed:g}"
    table = DataTable(
        title=f"fit: {report.verdict} ({report.n_used:,} of {report.n:,} values used)",
        caption=f"{report.law}; {claim}; each check at {report.check_level:.2g} (alpha {report.alpha:g})",
    )
    for column in ("check", "p", "fired", "detail"):
        table.add_column(column, justify="right" if column == "p" else "left")
    for check in report.checks:
        if check.name in _VALUE_CHECKS and not check.rejected:
            continue  # shown only when they fire: the law has no such value
        fired = coloured("yes", "red") if check.rejected else "no"
        table.add_row(check.name, f"{check.p_value:.3g}", fired, check.detail)
    return table


def fit_notes(report: FitReport) -> list[str]:
    """The RTP estimates (or why they are withheld) and the flags, one line each."""
    if report.rtp_note:
        lines = [report.rtp_note]
    else:
        low, high = report.rtp_interval.low, report.rtp_interval.high
        lines = [
            f"RTP {report.rtp_estimate:.4f} ± {report.rtp_stderr:.4f} (95% {low:.4f} .. {high:.4f}); "
            f"from the rounds reaching 2.00: {report.rtp_tail_estimate:.4f} ± {report.rtp_tail_stderr:.4f}"
        ]
    if report.flags:
        lines.append("flags: " + ", ".join(report.flags))
    return lines


def quality_table(report: analytics.QualityReport) -> DataTable:
    who = f" ({report.bot_id}'s readings)" if report.bot_id else ""
    on = f" on {report.platform}" if report.platform else ""
    table = DataTable(
        title=f"quality of {report.game}{on}{who}: {report.rounds:,} rounds",
        caption=f"{report.law}; {report.rtp_note}, significance {report.significance:g} (Holm-adjusted)",
    )
    for column in ("check", "figure", "expected", "verdict"):
        table.add_column(column, justify="right" if column == "figure" else "left")
    for check in report.shown_checks():
        verdict = coloured(check.verdict, _QUALITY_COLOURS[check.verdict])
        table.add_row(check.name, check.figure, check.expected, verdict)
    return table
