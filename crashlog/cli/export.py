"""``crashlog export``: rounds or multipliers as JSON lines, JSON, CSV or Parquet."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from crashlog import exports
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
        verbs, "export", "export rounds or multipliers (JSON lines, JSON, CSV, Parquet)",
        cmd_export,
    )
    export.add_argument("what", choices=["rounds", "multipliers"])
    export.add_argument(
        "--format", choices=exports.FORMATS, help="default: from the output's extension, else jsonl"
    )
    export.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    export.add_argument("--bot", help="rounds of this bot only")
    export.add_argument("--game")
    export.add_argument("--platform")
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
    filters = export_filters(args)
    total = await exports.count_rows(conn, args.what, **filters)
    export = exports.export_rounds if args.what == "rounds" else exports.export_multipliers
    target: Any = sys.stdout.buffer if args.output == "-" else Path(args.output)
    with progress_bar(f"exporting {args.what}", args.what) as bar:
        task = bar.add_task(args.what, total=total)
        written = await export(
            conn, target, fmt, progress=lambda n: bar.update(task, completed=n), **filters
        )
    if args.output != "-":
        say(f"{written:,} {args.what} written to {args.output} ({fmt})", console=err)
    return 0


def export_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The export function's keyword arguments from the options (each only where it applies)."""
    filters: dict[str, Any] = {"game": args.game, "platform": args.platform}
    if args.what == "rounds":
        if args.features or args.exclude_flagged:
            raise CrashlogError("--features and --exclude-flagged are for multipliers")
        filters["bot_id"] = args.bot
    else:
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
