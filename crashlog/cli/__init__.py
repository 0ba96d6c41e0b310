"""The ``crashlog`` command: demo, migrate, roles, project, stats, signals, quality, export,
bench, tail, subscriptions, verify, doctor.

Every verb takes ``--dsn`` (default ``CRASHLOG_DSN``, else the embedded PostgreSQL).
Errors are one line on stderr, with any password masked, and exit status 1; tables and
progress bars go through rich (progress on stderr, so stdout stays clean for data).

Each verb (or group of verbs) is a module here that adds its own options (``register``)
and handles them by calling the library; ``render`` holds what they print with.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import asyncpg

from crashlog.cli import (
    bench,
    demo,
    doctor,
    export,
    migrate,
    project,
    stats,
    subscriptions,
    tail,
    verify,
)
from crashlog.cli.render import err
from crashlog.database import mask_error
from crashlog.errors import CrashlogError

# In the order ``crashlog --help`` lists them: each adds its verbs.
_VERB_MODULES = (demo, migrate, project, stats, export, bench, tail, subscriptions, verify, doctor)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every verb with its options and its handler (``args.run``)."""
    parser = argparse.ArgumentParser(
        prog="crashlog", description="An event-sourced logger for crash-game bots, on PostgreSQL."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in _VERB_MODULES:
        module.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crashlog`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status = asyncio.run(args.run(args))
    except KeyboardInterrupt:
        return 130
    except asyncpg.UndefinedTableError as exc:
        err.print(
            f"crashlog {args.verb}: error: {exc}: the database has no crashlog schema "
            "yet (run: crashlog migrate)",
            markup=False,
        )
        return 1
    except (CrashlogError, ValueError, OSError, asyncpg.PostgresError) as exc:
        message = mask_error(exc, args.dsn) if args.dsn else str(exc)
        err.print(f"crashlog {args.verb}: error: {message}", markup=False)
        return 1
    return status or 0


__all__ = ["build_parser", "main"]
