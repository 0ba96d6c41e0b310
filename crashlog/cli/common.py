"""What every verb shares: its subparser (with ``--dsn``) and a connection to the server."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from crashlog import store
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
    sub.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL DSN (default: CRASHLOG_DSN, else the embedded server)",
    )
    sub.set_defaults(run=run)
    return sub


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
