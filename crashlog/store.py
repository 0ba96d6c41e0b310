"""The event store: appending rows to ``crashlog.events`` over an asyncpg pool.

A batch's first attempt is a plain binary COPY, the fastest append there is.
Only a retry (after a failure that may have committed) or a batch carrying an
id that is already stored needs conflict handling: that path copies into a
temporary table and inserts with ``ON CONFLICT (event_id) DO NOTHING``, so no
event is ever stored twice.

Each row travels as its own binary COPY tuple (``copy_tuple``), made once when
the event is emitted; a batch is those tuples, sent in pieces of about 64 KiB.
``decode_row`` reads one back for the rare paths that need its fields (a refused
row, the spool).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, overload
from uuid import UUID

import asyncpg



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

# -- binary COPY tuples -------------------------------------------------------------------
# The layout of PostgreSQL's binary COPY format: a header, then per row a 16-bit field
# count and each field as a 32-bit length (-1 for NULL) and its binary value, then -1.

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_COPY_TRAILER = b"\xff\xff"
_TUPLE_START = struct.pack(">hi", len(COLUMNS), 16)  # the field count, then event_id's length
_NULL = struct.pack(">i", -1)
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
# occurred_at (length 8, microseconds since 2000-01-01 UTC), then the payload's length and
# jsonb's binary version byte (1) that comes before the JSON text.
_TIME_AND_PAYLOAD_START = struct.Struct(">iqib")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

# Bots reuse a few ids and sessions: their encoded fields are kept (bounded) rather than
# re-encoded per event. The same for each (event_type, schema_version) pair.
_TEXT_FIELDS: dict[str | None, bytes] = {None: _NULL}
_TEXT_FIELDS_MAX = 4_096
_TYPE_FIELDS: dict[tuple[str, int], bytes] = {}


def _text_field(value: str | None) -> bytes:
    if value is None:  # not from the table: another thread may be clearing it right now
        return _NULL
    field = _TEXT_FIELDS.get(value)
    if field is None:
        encoded = value.encode("utf-8")
        field = _INT32.pack(len(encoded)) + encoded
        if len(_TEXT_FIELDS) >= _TEXT_FIELDS_MAX:
            _TEXT_FIELDS.clear()
            _TEXT_FIELDS[None] = _NULL
        _TEXT_FIELDS[value] = field
    return field


def _type_fields(event_type: str, schema_version: int) -> bytes:
    key = (event_type, schema_version)
    fields = _TYPE_FIELDS.get(key)
    if fields is None:
        encoded = event_type.encode("utf-8")
        fields = _TYPE_FIELDS[key] = (
            _INT32.pack(len(encoded)) + encoded + _INT32.pack(2) + _INT16.pack(schema_version)
        )
    return fields


def copy_tuple(
    event_id: UUID,
    event_type: str,
    schema_version: int,
    bot_id: str,
    session_id: str | None,
    occurred_at: datetime,
    payload: bytes,
) -> bytes:
    """One row of ``crashlog.events`` (the fields of ``Row``, in order) as a binary COPY tuple.

    ``occurred_at`` must be timezone-aware. Raises ``TypeError``, ``ValueError``,
    ``OverflowError`` or ``struct.error`` for a value that cannot be encoded.
    """
    # The caches' lookups are inline (emit runs this per event); the functions fill them.
    return b"".join((
        _TUPLE_START,
        event_id.bytes,
        _TYPE_FIELDS.get((event_type, schema_version)) or _type_fields(event_type, schema_version),
        _TEXT_FIELDS.get(bot_id) or _text_field(bot_id),
        _TEXT_FIELDS.get(session_id) or _text_field(session_id),
        _TIME_AND_PAYLOAD_START.pack(8, (occurred_at - _PG_EPOCH) // _MICROSECOND, len(payload) + 1, 1),
        payload,
    ))


def encode_row(row: Row) -> bytes:
    """``row`` as a binary COPY tuple; ``asyncpg.DataError`` names the row, the field and the
    value if it cannot be."""
    try:
        return copy_tuple(*row)
    except (TypeError, ValueError, OverflowError, AttributeError, struct.error) as error:
        raise asyncpg.DataError(
            f"event {row.event_id}: cannot encode its row: {_refused_field(row) or error}"
        ) from None


def _refused_field(row: Row) -> str | None:
    """Which field of ``row`` the binary COPY tuple cannot hold, with its value and why."""
    checks = {
        "event_id": (isinstance(row.event_id, UUID), "must be a UUID"),
        "event_type": (isinstance(row.event_type, str), "must be text"),
        "schema_version": (isinstance(row.schema_version, int) and -(2**15) <= row.schema_version < 2**15,
                           "must be a smallint"),
        "bot_id": (isinstance(row.bot_id, str), "must be text"),
        "session_id": (row.session_id is None or isinstance(row.session_id, str), "must be text or None"),
        "occurred_at": (isinstance(row.occurred_at, datetime) and row.occurred_at.utcoffset() is not None,
                        "must be a timezone-aware datetime"),
        "payload": (isinstance(row.payload, bytes), "must be bytes"),
    }
    for name, (fits, reason) in checks.items():
        if not fits:
            value = getattr(row, name)
            return f"invalid {name}={value!r}: {reason}"
    return None


def decode_row(data: bytes) -> Row:
    """The ``Row`` a binary COPY tuple made by ``copy_tuple`` holds."""
    fields: list[bytes | None] = []
    position = 2  # past the field count
    for _ in COLUMNS:
        (length,) = _INT32.unpack_from(data, position)
        position += 4
        if length < 0:
            fields.append(None)
        else:
            fields.append(data[position : position + length])
            position += length
    event_id, event_type, version, bot_id, session_id, occurred_at, payload = fields
    assert event_id is not None and event_type is not None and version is not None
    assert bot_id is not None and occurred_at is not None and payload is not None
    return Row(
        UUID(bytes=event_id),
        event_type.decode("utf-8"),
        _INT16.unpack(version)[0],
        bot_id.decode("utf-8"),
        None if session_id is None else session_id.decode("utf-8"),
        _PG_EPOCH + _MICROSECOND * _INT64.unpack(occurred_at)[0],
        payload[1:],  # past jsonb's version byte
    )


class DecodedRows(Sequence[Row]):
    """Encoded tuples seen as ``Row`` values, each decoded when it is read."""

    def __init__(self, tuples: list[bytes]) -> None:
        self.tuples = tuples

    def __len__(self) -> int:
        return len(self.tuples)

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> DecodedRows: ...
    def __getitem__(self, index: int | slice) -> Row | DecodedRows:
        if isinstance(index, slice):
            return DecodedRows(self.tuples[index])
        return decode_row(self.tuples[index])

    def __iter__(self) -> Iterator[Row]:
        return map(decode_row, self.tuples)


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
    piece = [_COPY_HEADER]
    size = 0
    for row in tuples:
        piece.append(row)
        size += len(row)
        if size >= _COPY_PIECE_BYTES:
            yield b"".join(piece)
            piece = []
            size = 0
    piece.append(_COPY_TRAILER)
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
