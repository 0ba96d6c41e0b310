"""The ``crashlog`` command: demo, migrate, roles, project, stats, signals, quality, export,
report, bench, tail, subscriptions, verify, doctor.

Every verb takes ``--dsn`` (default ``CRASHLOG_DSN``, else the embedded PostgreSQL),
``--debug``, ``--log-level`` and ``--log-format`` (see ``logs``), before or after the verb;
``crashlog --version`` prints the version.
Errors are one line on stderr, with any password masked, and exit status 1 (``--debug``
adds the traceback); tables and progress bars go through rich (progress on stderr, so
stdout stays clean for data), and data is never read as markup (``render.shown``).

Each verb (or group of verbs) is a module here that adds its own options (``register``)
and handles them by calling the library; ``render`` holds what they print with.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from collections.abc import Sequence

import asyncpg

from crashlog.cli import (
    bench,
    demo,
    doctor,
    export,
    logs,
    migrate,
    project,
    report,
    stats,
    subscriptions,
    tail,
    verify,
)
from crashlog.cli.common import add_global_options
from crashlog.cli.render import err, say
from crashlog.database import CONNECTION_FAILURES, mask_error
from crashlog.errors import CrashlogError

# In the order ``crashlog --help`` lists them: each adds its verbs.
_VERB_MODULES = (demo, migrate, project, stats, export, report, bench, tail, subscriptions, verify, doctor)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every verb with its options and its handler (``args.run``)."""
    parser = argparse.ArgumentParser(
        prog="crashlog", description="An event-sourced logger for crash-game bots, on PostgreSQL."
    )
    parser.add_argument("--version", action="version", version=f"crashlog {version()}")
    add_global_options(parser)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in _VERB_MODULES:
        module.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crashlog`` console script; returns the exit status.

    Promises: any failure of a verb ends in one line on stderr, ``crashlog VERB: error:
    ...``, with any password masked and control characters escaped, and exit status 1
    (130 after Ctrl-C); with ``--debug`` (or ``CRASHLOG_LOG_LEVEL=DEBUG``) the traceback
    follows that line.
    """
    args = build_parser().parse_args(argv)
    restore = None
    try:
        restore = logs.configure(args.log_level, args.log_format)
        status = asyncio.run(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every failure: one clear line, not a chained traceback
        say(f"crashlog {args.verb}: error: {failure_line(exc, args.dsn)}", console=err)
        if args.debug or (args.log_level or os.environ.get("CRASHLOG_LOG_LEVEL", "")).upper() == "DEBUG":
            err.print_exception(show_locals=False)
        return 1
    finally:
        if restore is not None:
            restore()
    return status or 0


def version() -> str:
    """The installed crashlog's version (the source tree's when it is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("crashlog")
    except PackageNotFoundError:
        from crashlog import __version__

        return __version__


# The password of any URL-style DSN in a message: scheme://user:PASSWORD@host
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


def failure_line(exc: BaseException, dsn: str | None) -> str:
    """What went wrong, on one line, the password of ``dsn`` (and of any DSN in the text)
    masked. crashlog's own errors say it in their message; others are named by their type."""
    dsn = dsn or os.environ.get("CRASHLOG_DSN")
    # A connection lost inside a transaction surfaces as the driver's complaint that it cannot
    # end the transaction on a closed connection; what happened is the loss it was handling.
    while isinstance(exc, asyncpg.InterfaceError) and isinstance(exc.__context__, CONNECTION_FAILURES):
        exc = exc.__context__
    message = mask_error(exc, dsn) if dsn else str(exc)
    message = _URL_PASSWORD.sub(r"\1***@", " ".join(message.split())) or type(exc).__name__
    if isinstance(exc, asyncpg.UndefinedTableError):
        return f"{message}: the database has no crashlog schema yet (run: crashlog migrate)"
    if isinstance(exc, CrashlogError | ValueError):
        return message
    if isinstance(exc, asyncpg.PostgresError | OSError):
        return f"{message} ({type(exc).__name__})"
    return message if message == type(exc).__name__ else f"{type(exc).__name__}: {message}"


__all__ = ["build_parser", "main"]
