"""The event store: appending rows to ``crashlog.events`` over an asyncpg pool.

A batch's first attempt is a plain binary COPY, the fastest append there is.
Only a retry (after a failure that may have committed) or a batch carrying an
id that is already stored needs conflict handling: that path copies into a
temporary table and inserts with ``ON CONFLICT (event_id) DO NOTHING``, so no
event is ever stored twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg

from crashlog.database import ConnectFailed, mask_dsn


class Row(NamedTuple):
    """One event, ready for ``crashlog.events`` (payload already JSON-encoded)."""

    event_id: UUID
    event_type: str
    schema_version: int
    bot_id: str
    session_id: str | None
    occurred_at: datetime
    payload: bytes


COLUMNS = Row._fields

_CREATE_INCOMING = """
CREATE TEMPORARY TABLE IF NOT EXISTS crashlog_incoming (
    ord             bigint GENERATED ALWAYS AS IDENTITY,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  smallint    NOT NULL,
    bot_id          text        NOT NULL,
    session_id      text,
    occurred_at     timestamptz NOT NULL,
    payload         jsonb       NOT NULL
) ON COMMIT DELETE ROWS
"""

_INSERT_INCOMING = """
INSERT INTO crashlog.events
    (event_id, event_type, schema_version, bot_id, session_id, occurred_at, payload)
SELECT event_id, event_type, schema_version, bot_id, session_id, occurred_at, payload
FROM crashlog_incoming
ORDER BY ord
ON CONFLICT (event_id) DO NOTHING
"""

_INSERT_REJECTED = """
INSERT INTO crashlog.rejected_events
    (event_id, event_type, schema_version, bot_id, session_id, occurred_at, payload,
     sqlstate, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection set-up: jsonb travels as raw JSON bytes, encoded once at ``emit``."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_jsonb_binary,
        decoder=_jsonb_bytes,
        format="binary",
    )


def _jsonb_binary(payload: bytes | str) -> bytes:
    # The binary jsonb format is a version byte (1) followed by the JSON text.
    return b"\x01" + (payload if isinstance(payload, bytes) else payload.encode())


def _jsonb_bytes(data: bytes) -> bytes:
    return data[1:]


async def create_pool(dsn: str, *, size: int, connect_timeout: float) -> asyncpg.Pool:
    """A pool whose connections carry the codecs above; errors never show the password."""
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            init=init_connection,
            timeout=connect_timeout,
            server_settings={"application_name": "crashlog"},
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        message = (str(exc) or type(exc).__name__).replace(dsn, mask_dsn(dsn))
        raise ConnectFailed(f"could not connect to {mask_dsn(dsn)}: {message}") from None


async def copy_rows(conn: asyncpg.Connection, rows: list[Row]) -> int:
    """Append rows with one binary COPY (its own transaction); returns how many were stored."""
    await conn.copy_records_to_table(
        "events", schema_name="crashlog", columns=COLUMNS, records=rows
    )
    return len(rows)


async def insert_rows_idempotent(conn: asyncpg.Connection, rows: list[Row]) -> int:
    """Append rows, skipping any whose event_id is already stored; returns how many were new."""
    async with conn.transaction():
        await conn.execute(_CREATE_INCOMING)
        await conn.copy_records_to_table("crashlog_incoming", columns=COLUMNS, records=rows)
        status = await conn.execute(_INSERT_INCOMING)
    return int(status.rsplit(" ", 1)[1])


async def reject_row(conn: asyncpg.Connection, row: Row, error: BaseException) -> None:
    """Keep a row the server refused in ``crashlog.rejected_events``, with the error."""
    sqlstate = getattr(error, "sqlstate", None)
    await conn.execute(
        _INSERT_REJECTED,
        *row[:-1],
        row.payload.decode("utf-8", errors="replace").replace("\x00", "\\u0000"),
        sqlstate,
        str(error) or type(error).__name__,
    )
