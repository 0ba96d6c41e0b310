"""A row of the event log and its binary COPY encoding: plain Python, no driver, no server.

Each event travels as its own binary COPY tuple (``copy_tuple``), made once when it is
emitted; a batch is those tuples. ``decode_row`` reads one back for the rare paths that
need its fields (a refused row, the spool). The spool's disk format and the tests of the
encoding use this module without a database.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, overload
from uuid import UUID


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
#: What a binary COPY stream starts with, and ends with.

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
COPY_TRAILER = b"\xff\xff"
_TUPLE_START = struct.pack(">hi", len(COLUMNS), 16)  # the field count, then event_id's length
_NULL = struct.pack(">i", -1)
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
# occurred_at (length 8, microseconds since 2000-01-01 UTC), then the payload's length and
# jsonb's binary version byte (1) that comes before the JSON text.
_TIME_AND_PAYLOAD_START = struct.Struct(">iqib")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
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


def refused_field(row: Row) -> str | None:
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
