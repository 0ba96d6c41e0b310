"""Reading a long query in flat memory: a server-side cursor inside one consistent snapshot.

Exports and reports read every row of a table that may hold millions. ``stream_chunks`` and
``stream_rows`` fetch them through a server-side cursor, ``CHUNK`` rows per round trip. A
cursor lives in a transaction: the caller's, when one is open (so a report that reads
several queries sees one state of the tables), else a read-only repeatable-read one of
their own for the whole stream (``snapshot``), so rows appended meanwhile never show up
half-way.

Promises: the rows come in the query's order, each once; a stream stopped early (a
``break``, an error) closes its cursor and its own transaction when closed, so wrap it in
``contextlib.aclosing`` wherever the loop may not run to the end.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractAsyncContextManager, aclosing, nullcontext
from typing import Any

import asyncpg

#: Rows fetched per round trip.
CHUNK = 5_000

__all__ = ["CHUNK", "snapshot", "stream_chunks", "stream_rows"]


def snapshot(conn: asyncpg.Connection) -> AbstractAsyncContextManager[Any]:
    """The transaction reads run in: the caller's if one is open (nothing to do), else a new
    read-only, repeatable-read one (one consistent snapshot until it ends)."""
    if conn.is_in_transaction():
        return nullcontext()
    return conn.transaction(readonly=True, isolation="repeatable_read")


async def stream_chunks(
    conn: asyncpg.Connection, query: str, args: Sequence[Any] = (), *, chunk: int = CHUNK
) -> AsyncGenerator[list[asyncpg.Record], None]:
    """The rows of ``query`` (with ``args``) in lists of at most ``chunk``, from a snapshot."""
    if chunk < 1:
        raise ValueError(f"invalid chunk={chunk!r}: must be at least 1")
    async with snapshot(conn):
        cursor = await conn.cursor(query, *args)
        while rows := await cursor.fetch(chunk):
            yield rows


async def stream_rows(
    conn: asyncpg.Connection, query: str, args: Sequence[Any] = (), *, chunk: int = CHUNK
) -> AsyncGenerator[asyncpg.Record, None]:
    """The rows of ``query`` (with ``args``) one by one, fetched ``chunk`` at a time."""
    async with aclosing(stream_chunks(conn, query, args, chunk=chunk)) as chunks:
        async for rows in chunks:
            for row in rows:
                yield row
