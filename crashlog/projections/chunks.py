"""A whole table in chunks of consecutive index keys, for work a rebuild does over every row.

A rebuild recomputes every derived row at once (``Projection.derive_all``): one sort of the
table instead of a lookup per row touched. Done as one statement, that holds the live
runners' reading horizon back for as long as it runs (an open transaction that has written
does); done chunk by chunk, each transaction stays short. Chunks are ranges of an index's
key, so each is read in key order through the index and a group never spans two chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import attrs

#: Rows per chunk: about a rebuild batch's worth of work (a tenth of a second or so).
CHUNK_ROWS = 50_000
#: Rows sampled per chunk to place the bounds: a chunk holds its rows give or take a tenth,
#: and the bounds cost one pass over the table, not a sort of every key in it.
SAMPLED_PER_CHUNK = 100


@attrs.frozen
class KeyRange:
    """Keys after ``lo`` (None: from the first) up to and including ``hi`` (None: to the last)."""

    lo: tuple[Any, ...] | None
    hi: tuple[Any, ...] | None

    def where(self, columns: Sequence[str]) -> tuple[str, list[Any]]:
        """The range as a predicate on ``columns`` (the key, as SQL expressions) and its
        parameters, numbered from $1: ``("(a, b) > ($1, $2)", [...])``; "true" for all."""
        key = f"({', '.join(columns)})"
        parts: list[str] = []
        args: list[Any] = []
        for bound, op in ((self.lo, ">"), (self.hi, "<=")):
            if bound is None:
                continue
            marks = ", ".join(f"${len(args) + i + 1}" for i in range(len(bound)))
            parts.append(f"{key} {op} ({marks})")
            args.extend(bound)
        return (" AND ".join(parts) or "true"), args


async def key_ranges(
    conn: asyncpg.Connection, table: str, key: Sequence[str], where: str = "true",
    rows: int | None = None,
) -> list[KeyRange]:
    """``table``'s rows matching ``where``, in ranges of ``key`` of about ``rows`` rows each
    (default ``CHUNK_ROWS``, placed from a sample of the keys: give or take a tenth; exactly,
    for ``rows`` up to ``SAMPLED_PER_CHUNK``; rows sharing a key are in one range), covering
    every key.

    ``table``, ``key`` and ``where`` are the caller's SQL, never a user's input. Call it
    outside a transaction: the scan only reads, and so holds nobody's horizon back. A table
    the planner counts under half a chunk (it was analysed since it was filled) is one range."""
    rows = rows or CHUNK_ROWS
    # The planner's count (the table was just analysed): a table of one chunk needs no scan.
    counted = await planned_rows(conn, table)
    if counted is not None and counted < rows / 2:
        return [KeyRange(None, None)]
    columns = ", ".join(key)
    sampled = min(rows, SAMPLED_PER_CHUNK)  # of each chunk's rows (all of them, for small chunks)
    ends = await conn.fetch(
        f"SELECT {columns} FROM (SELECT {columns}, row_number() OVER (ORDER BY {columns}) AS n"
        f" FROM {table} TABLESAMPLE BERNOULLI ($2) REPEATABLE (0) WHERE {where}) k WHERE n % $1 = 0",
        sampled, 100.0 * sampled / rows,
    )
    bounds: list[tuple[Any, ...] | None] = [None, *(tuple(end) for end in ends), None]
    return [KeyRange(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


async def planned_rows(conn: asyncpg.Connection, table: str) -> int | None:
    """The planner's count of ``table``'s rows, as of its last analysis or vacuum (None: never
    analysed); no scan."""
    counted = await conn.fetchval("SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", table)
    return None if counted is None or counted < 0 else int(counted)
