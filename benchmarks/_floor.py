"""The rebuild's floor: what no rebuild that materialises the same tables can beat.

For the tables a rebuild just produced, on the same server: (a) read every payload of the
log once; (b) load the same rows into empty tables by binary COPY on two connections; (c)
build each table's indexes and keys after the load, as a restore does. The rows are copied
out of the rebuilt tables before any clock starts; (b) and (c) run lane by lane (each lane
loads its tables, then indexes them, without waiting for the other), as the rebuild's lanes do.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Awaitable, Callable

import asyncpg
import attrs

from crashlog.projections.runner import REBUILD_SETTINGS

SCHEMA = "crashlog_floor"

# Every payload read and parsed once, server side (the rebuild's handlers read them there).
_READ_PAYLOADS = "SELECT count(payload ->> 'bot_id') FROM crashlog.events"

_INDEXES = """
SELECT pg_get_indexdef(i.indexrelid) AS definition, pg_get_constraintdef(con.oid) AS constraint_def
FROM pg_index i
LEFT JOIN pg_constraint con
       ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')
WHERE i.indrelid = $1::regclass ORDER BY 1
"""
_INDEX_HEAD = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ ")


@attrs.define
class TableFloor:
    """One table's part of the floor: rows, bytes of binary COPY, load and index seconds."""

    table: str
    rows: int
    data: bytes = attrs.field(repr=False)
    indexes: list[str] = attrs.Factory(list)
    load: float = 0.0
    index: float = 0.0


@attrs.frozen
class Floor:
    read: float  # (a)
    lanes: float  # (b) + (c), wall time over the lanes
    load: float  # (b), summed over the lanes (server time)
    index: float  # (c), summed over the lanes
    tables: list[TableFloor]

    @property
    def total(self) -> float:
        return self.read + self.lanes


async def read_payloads(dsn: str) -> float:
    """(a): seconds to read every payload of the log once."""
    conn = await asyncpg.connect(dsn, server_settings=REBUILD_SETTINGS)
    try:
        started = time.perf_counter()
        await conn.fetchval(_READ_PAYLOADS)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def copy_out(dsn: str, tables: list[str]) -> list[TableFloor]:
    """The rows of each of ``tables`` (in schema crashlog), as binary COPY data, and the
    statements that build its indexes on a copy in ``SCHEMA``; made there, empty."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        found = []
        for table in tables:
            buffer = io.BytesIO()
            result = await conn.copy_from_table(table, schema_name="crashlog", output=buffer,
                                                format="binary")
            floor = TableFloor(table, int(result.split()[-1]), buffer.getvalue())
            for row in await conn.fetch(_INDEXES, f"crashlog.{table}"):
                if row["constraint_def"]:
                    floor.indexes.append(f"ALTER TABLE {SCHEMA}.{table} ADD {row['constraint_def']}")
                else:
                    floor.indexes.append(_INDEX_HEAD.sub(
                        lambda m, t=table: f"CREATE {m.group(1) or ''}INDEX ON {SCHEMA}.{t} ",
                        row["definition"]))
            found.append(floor)
        await _create_empty(conn, tables)
        return found
    finally:
        await conn.close()


async def _create_empty(conn: asyncpg.Connection, tables: list[str]) -> None:
    for table in tables:
        await conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{table}")
        await conn.execute(
            f"CREATE TABLE {SCHEMA}.{table} (LIKE crashlog.{table} INCLUDING DEFAULTS"
            " INCLUDING CONSTRAINTS)")


def _share(tables: list[TableFloor], ways: int) -> list[list[TableFloor]]:
    """Largest first, each to the least loaded lane (by bytes)."""
    lanes: list[list[TableFloor]] = [[] for _ in range(ways)]
    for table in sorted(tables, key=lambda t: -len(t.data)):
        min(lanes, key=lambda lane: sum(len(t.data) for t in lane)).append(table)
    return lanes


async def _lane(dsn: str, tables: list[TableFloor]) -> None:
    conn = await asyncpg.connect(dsn, server_settings=REBUILD_SETTINGS)
    try:
        for table in tables:
            started = time.perf_counter()
            await conn.copy_to_table(table.table, schema_name=SCHEMA, format="binary",
                                     source=io.BytesIO(table.data))
            table.load = time.perf_counter() - started
        for table in tables:
            started = time.perf_counter()
            for statement in table.indexes:
                await conn.execute(statement)
            table.index = time.perf_counter() - started
    finally:
        await conn.close()


async def load_and_index(dsn: str, tables: list[TableFloor], connections: int = 2) -> float:
    """(b) + (c): wall seconds to load ``tables`` into their empty copies and index them."""
    started = time.perf_counter()
    await asyncio.gather(*(_lane(dsn, lane) for lane in _share(tables, connections)))
    return time.perf_counter() - started


async def measure(dsn: str, tables: list[str], connections: int = 2,
                  settle: Callable[[str], Awaitable[None]] | None = None) -> Floor:
    """The floor for ``tables``, as just rebuilt; the copies are dropped afterwards.
    ``settle(dsn)`` is awaited once the rows are copied out, before any clock starts."""
    found = await copy_out(dsn, tables)
    if settle is not None:
        await settle(dsn)
    read = await read_payloads(dsn)
    lanes = await load_and_index(dsn, found, connections)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    finally:
        await conn.close()
    return Floor(read, lanes, sum(t.load for t in found), sum(t.index for t in found), found)
