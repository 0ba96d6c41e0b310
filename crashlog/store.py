"""The event store: the SQL that appends rows to ``crashlog.events`` and keeps refused ones.

A batch's first attempt is a plain binary COPY (``copy_tuples``), the fastest append
there is. Only a retry (after a failure that may have committed) or a batch carrying an
id that is already stored needs conflict handling: that path
(``insert_tuples_idempotent``) copies into a temporary table and inserts with
``ON CONFLICT (event_id) DO NOTHING``, so no event is ever stored twice. Which path a
batch takes, retries and the isolation of refused rows are ``crashlog.appender``'s.

Rows and their COPY tuples are ``crashlog.rows``'s (re-exported here).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Sequence

import asyncpg

from crashlog.rows import (
    COLUMNS,
    COPY_HEADER,
    COPY_TRAILER,
    DecodedRows,
    Row,
    copy_tuple,
    decode_row,
    refused_field,
)

__all__ = [
    "COLUMNS",
    "DecodedRows",
    "Row",
    "copy_rows",
    "copy_tuple",
    "copy_tuples",
    "decode_row",
    "encode_row",
    "init_connection",
    "insert_rows_idempotent",
    "insert_tuples_idempotent",
    "reject_row",
]


def encode_row(row: Row) -> bytes:
    """``row`` as a binary COPY tuple; ``asyncpg.DataError`` names the row, the field and the
    value if it cannot be."""
    try:
        return copy_tuple(*row)
    except (TypeError, ValueError, OverflowError, AttributeError, struct.error) as error:
        raise asyncpg.DataError(
            f"event {row.event_id}: cannot encode its row: {refused_field(row) or error}"
        ) from None


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


# The COPY data goes in pieces of about this size: small enough that neither our join nor
# asyncpg's message buffer nor the socket's send buffer ever needs fresh memory (page faults
# are dear in a virtual machine), and the event loop gets a turn between pieces.
_COPY_PIECE_BYTES = 64 * 1024


async def _copy_data(tuples: list[bytes]) -> AsyncIterator[bytes]:
    piece = [COPY_HEADER]
    size = 0
    for row in tuples:
        piece.append(row)
        size += len(row)
        if size >= _COPY_PIECE_BYTES:
            yield b"".join(piece)
            piece = []
            size = 0
    piece.append(COPY_TRAILER)
    yield b"".join(piece)


async def copy_tuples(conn: asyncpg.Connection, tuples: list[bytes]) -> int:
    """Append encoded rows with one binary COPY (its own transaction); returns how many."""
    await conn.copy_to_table(
        "events", schema_name="crashlog", columns=COLUMNS, source=_copy_data(tuples),
        format="binary",
    )
    return len(tuples)


async def insert_tuples_idempotent(conn: asyncpg.Connection, tuples: list[bytes]) -> int:
    """Append encoded rows, skipping any whose event_id is already stored; returns how many were new."""
    async with conn.transaction():
        await conn.execute(_CREATE_INCOMING)
        await conn.copy_to_table(
            "crashlog_incoming", columns=COLUMNS, source=_copy_data(tuples), format="binary"
        )
        status = await conn.execute(_INSERT_INCOMING)
    return int(status.rsplit(" ", 1)[1])


async def copy_rows(conn: asyncpg.Connection, rows: Sequence[Row]) -> int:
    """Append rows with one binary COPY (its own transaction); returns how many were stored."""
    return await copy_tuples(conn, [encode_row(row) for row in rows])


async def insert_rows_idempotent(conn: asyncpg.Connection, rows: Sequence[Row]) -> int:
    """Append rows, skipping any whose event_id is already stored; returns how many were new."""
    return await insert_tuples_idempotent(conn, [encode_row(row) for row in rows])


async def reject_row(conn: asyncpg.Connection, row: Row, error: BaseException) -> None:
    """Keep a row the server refused in ``crashlog.rejected_events``, with the error."""
    sqlstate = getattr(error, "sqlstate", None)
    await conn.execute(
        _INSERT_REJECTED,
        row.event_id,
        row.event_type,
        row.schema_version,
        row.bot_id,
        row.session_id,
        row.occurred_at,
        row.payload.decode("utf-8", errors="replace").replace("\x00", "\\u0000"),
        sqlstate,
        str(error) or type(error).__name__,
    )
