"""What every verb shares: its subparser (with the global options) and a connection to the server."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from crashlog import store
from crashlog.cli.logs import FORMATS, LEVELS
from crashlog.database import open_connection, resolve_dsn

#: A verb's handler: the parsed arguments in, the exit status out (None is 0).
Handler = Callable[[argparse.Namespace], Awaitable[int | None]]
#: A handler given an open connection and its DSN (see ``with_connection``).
ConnectedHandler = Callable[[asyncpg.Connection, str, argparse.Namespace], Awaitable[int | None]]
if TYPE_CHECKING:  # what ``add_verb`` is called on: the parser's subparsers
    Verbs: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def add_verb(verbs: Verbs, name: str, help: str, run: Handler) -> argparse.ArgumentParser:
    """A verb's subparser, with ``--dsn`` and its handler set; the caller adds its options."""
    sub: argparse.ArgumentParser = verbs.add_parser(name, help=help, description=help)
    add_global_options(sub, default=argparse.SUPPRESS)
    sub.set_defaults(run=run)
    return sub


def add_global_options(parser: argparse.ArgumentParser, *, default: object = None) -> None:
    """The options every verb takes, before or after it: ``--dsn``, ``--debug``,
    ``--log-level``, ``--log-format``. After the verb they are added with ``default=SUPPRESS``,
    so one given before the verb is not overwritten by the verb's default."""
    flag_default = False if default is None else default
    parser.add_argument("--dsn", default=default,
                        help="PostgreSQL DSN (default: CRASHLOG_DSN, else the embedded server)")
    parser.add_argument("--debug", action="store_true", default=flag_default,
                        help="on a failure, print the whole traceback (also when CRASHLOG_LOG_LEVEL=DEBUG)")
    parser.add_argument("--log-level", default=default, type=str.upper, choices=LEVELS,
                        help="least level logged on stderr (default CRASHLOG_LOG_LEVEL, else INFO)")
    parser.add_argument("--log-format", default=default, choices=FORMATS,
                        help="log lines as text or JSON objects (default CRASHLOG_LOG_FORMAT, else text)")


async def connection(dsn_argument: str | None) -> tuple[asyncpg.Connection, str]:
    """A connection with crashlog's codecs to the chosen server, and its DSN."""
    dsn = await asyncio.to_thread(resolve_dsn, dsn_argument)
    conn = await open_connection(dsn)
    await store.init_connection(conn)
    return conn, dsn


def with_connection(work: ConnectedHandler) -> Handler:
    """The handler ``work`` given a connection to ``--dsn``'s server, closed when it returns."""

    async def run(args: argparse.Namespace) -> int | None:
        conn, dsn = await connection(args.dsn)
        try:
            return await work(conn, dsn, args)
        finally:
            await conn.close()

    return run
