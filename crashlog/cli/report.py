"""``crashlog report``: one self-contained HTML file of the fleet, its games and its data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from crashlog.cli.common import add_verb
from crashlog.cli.render import err, say
from crashlog.cli.stats import iso_time

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs
    from crashlog.report import ReportData


def register(verbs: Verbs) -> None:
    """Add ``report`` to the parser."""
    sub = add_verb(
        verbs, "report", "write one HTML file (opens offline) with the fleet's results, "
        "each game against its law, data quality, signals and lag", cmd_report,
    )
    sub.add_argument("-o", "--output", required=True, type=Path, help="the HTML file to write")
    add_filters(sub)


def add_filters(sub: argparse.ArgumentParser) -> None:
    """The report's filters: --bot --game --platform --since --until."""
    sub.add_argument("--bot", default=None, help="only this bot's rounds and signals")
    sub.add_argument("--game", default=None, help="only this game")
    sub.add_argument("--platform", default=None, help="only this platform")
    sub.add_argument("--since", type=iso_time, default=None, help="at or after this time (ISO 8601)")
    sub.add_argument("--until", type=iso_time, default=None, help="before this time (ISO 8601)")


async def cmd_report(args: argparse.Namespace) -> int:
    from crashlog.report import Filters, write_report

    filters = Filters(bot=args.bot, game=args.game, platform=args.platform, since=args.since, until=args.until)
    data = await write_report(args.output, args.dsn, filters)
    tell(args.output, data)
    return 0


def tell(path: Path, data: ReportData) -> None:
    """One line on stderr: where the report went, and what it found."""
    size = path.stat().st_size
    if data.empty:
        found = "nothing recorded yet (the log is empty)"
    elif not data.matched:
        found = f"nothing matches {data.filters.describe()}"
    else:
        found = f"{_count(len(data.bots), 'bot')}, {_count(len(data.games), 'game')}"
    say(f"report: {path} ({size / 1024:,.0f} KiB): {found}", console=err)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
