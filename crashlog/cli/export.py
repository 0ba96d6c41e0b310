"""``crashlog export``: any read table, or the log, as JSON lines, JSON, CSV or Parquet.

``crashlog export TABLE -o FILE`` writes a read table (``crashlog.reader().tables()``) or
``events``, in the table's time order, with ``--since/--until`` (its time column) and its
filters: ``--filter COLUMN=VALUE`` (repeatable; the same column twice means any of the
values; ``COLUMN=`` alone means NULL), and the shorthands ``--bot``, ``--game``,
``--platform``. ``crashlog export multipliers`` stays the ML export (``--features``,
``--exclude-flagged``; docs/ml_export.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from crashlog import exports, reading
from crashlog.cli.common import add_verb, with_connection
from crashlog.cli.render import err, progress_bar, say
from crashlog.errors import CrashlogError
from crashlog.features import FeatureSpec
from crashlog.law import DEFAULT_RTP

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs

#: ``export --features`` options, each a FeatureSpec field: (type, default and meaning).
FEATURE_OPTIONS: dict[str, tuple[Any, str]] = {
    "target": (Decimal, "2.00: hit = multiplier >= target"),
    "rtp": (float, f"{DEFAULT_RTP}: baseline rtp/target and the PIT's law"),
    "seed": (int, "0: the PIT's uniforms"),
    "lags": (int, "5 previous multipliers"),
    "windows": (str, "10,50,100 rounds"),
}


def register(verbs: Verbs) -> None:
    """Add ``export`` to the parser."""
    export = add_verb(
        verbs, "export", "export a read table, the log (events) or the ML multipliers "
        "(JSON lines, JSON, CSV, Parquet)", cmd_export,
    )
    export.add_argument("what", metavar="TABLE",
                        help="a read table (rounds, round_outcomes, bots, ...), events, or "
                        "multipliers (the ML export)")
    export.add_argument(
        "--format", choices=exports.FORMATS, help="default: from the output's extension, else jsonl"
    )
    export.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    export.add_argument("--since", help="rows at or after this time (ISO 8601), on the table's time column")
    export.add_argument("--until", help="rows before this time (ISO 8601)")
    export.add_argument("--filter", action="append", default=[], metavar="COLUMN=VALUE",
                        help="rows whose COLUMN equals VALUE (repeatable; COLUMN= means NULL)")
    export.add_argument("--columns", help="comma-separated columns to write (default: all)")
    export.add_argument("--money", choices=["decimal", "float"], default="decimal",
                        help="numeric columns exact (default) or as floats")
    export.add_argument("--bot", help="shorthand for --filter bot_id=BOT")
    export.add_argument("--game", help="shorthand for --filter game=GAME")
    export.add_argument("--platform", help="shorthand for --filter platform=PLATFORM")
    export.add_argument(
        "--exclude-flagged", action="store_true", help="multipliers: leave out flagged rounds"
    )
    export.add_argument(
        "--features",
        action="store_true",
        help="multipliers: add the label hit, its r/c baseline, the PIT and features "
        "from earlier rounds only (docs/ml_export.md)",
    )
    for name, (kind, default) in FEATURE_OPTIONS.items():
        export.add_argument(f"--{name}", type=kind, help=f"with --features (default {default})")


@with_connection
async def cmd_export(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    fmt = args.format or exports.format_of(args.output)
    if fmt == "parquet" and args.output == "-":
        raise CrashlogError("Parquet goes to a file: give --output FILE.parquet")
    await reading.check_schema(conn, "this database")
    target: Any = sys.stdout.buffer if args.output == "-" else Path(args.output)
    if args.what == "multipliers":
        filters = export_filters(args)
        total = await exports.count_rows(conn, "multipliers", **filters)
        with progress(args.what, total) as step:
            written = await exports.export_multipliers(conn, target, fmt, progress=step, **filters)
    else:
        query = await reading.plan(conn, args.what, args.since, args.until, columns_of(args),
                                   args.money, table_filters(args))
        total = int(await conn.fetchval(query.count(), *query.args))
        with progress(args.what, total) as step:
            written = await exports.export_table(conn, query, target, fmt, step)
    if args.output != "-":
        say(f"{written:,} {args.what} written to {args.output} ({fmt})", console=err)
    return 0


def columns_of(args: argparse.Namespace) -> list[str] | None:
    return None if not args.columns else [c.strip() for c in args.columns.split(",") if c.strip()]


def table_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The reader's filters from ``--filter`` and the shorthands (checked by the reader)."""
    if args.features or args.exclude_flagged or any(getattr(args, n) is not None for n in FEATURE_OPTIONS):
        raise CrashlogError(
            "--features, --exclude-flagged and their options are for multipliers (crashlog export multipliers)"
        )
    given: dict[str, list[str | None]] = {}
    shorthands = (("bot_id", args.bot), ("game", args.game), ("platform", args.platform))
    pairs = [(column, value) for column, value in shorthands if value is not None]
    for text in args.filter:
        column, sep, value = text.partition("=")
        if not sep or not column.strip():
            raise CrashlogError(f"invalid --filter {text!r}: COLUMN=VALUE")
        pairs.append((column.strip(), value if value != "" else None))
    for column, value in pairs:
        given.setdefault(column, []).append(value)
    return {c: values[0] if len(values) == 1 else values for c, values in given.items()}


class progress:  # noqa: N801 - used as a function: `with progress(...) as step`
    """Where an export reports the rows read: a bar on a terminal, else a log line every
    ``render.PROGRESS_EVERY`` seconds (long exports in a log or a CI job show they are moving)."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total = what, total
        self.bar = progress_bar(f"exporting {what}", "rows")

    def __enter__(self) -> Callable[[int], None]:
        self.bar.__enter__()
        task = self.bar.add_task(self.what, total=self.total)

        def step(read: int) -> None:
            self.bar.update(task, completed=read)  # off a terminal: a log line now and then

        return step

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)


def export_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The ML export's keyword arguments from the options (each only where it applies)."""
    if args.bot or args.filter or args.since or args.until or args.columns or args.money != "decimal":
        raise CrashlogError(
            "`export multipliers` (the ML export) takes --game, --platform, --exclude-flagged and"
            " --features; for other filters export the table: crashlog export round_multipliers"
        )
    filters: dict[str, Any] = {"game": args.game, "platform": args.platform}
    filters.update(exclude_flagged=args.exclude_flagged, features=feature_spec(args))
    return filters


def feature_spec(args: argparse.Namespace) -> FeatureSpec | None:
    """The ML export's settings from ``--features`` and the options that go with it."""
    given = {name: getattr(args, name) for name in FEATURE_OPTIONS}
    given = {name: value for name, value in given.items() if value is not None}
    if not args.features:
        if given:
            raise CrashlogError(f"--{next(iter(given))} goes with --features")
        return None
    return FeatureSpec(**given)
