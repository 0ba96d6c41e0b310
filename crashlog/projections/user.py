"""Users' own read models: ``@projection`` over an async handler of a ``Batch``.

    @projection("hourly_busts", version=1, events=[RoundSettled],
                tables={"hourly_busts": "hour timestamptz PRIMARY KEY, busts bigint NOT NULL"})
    async def hourly_busts(batch: Batch) -> None:
        for e in batch.events: ...            # decoded, upcast, in reading order
        await batch.conn.execute(f"INSERT INTO {batch.table('hourly_busts')} ...")

The decorator makes a ``Projection`` (``crashlog.projections.base``), the value the runner,
the guard, rebuilds, leases and lag treat every built-in as: its handler reads the span's
events of the declared types, decodes them and calls the user's function once per span.
Registration (``crashlog.projections.registry``) checks it against the database.

Promises:
- A declaration the decorator can judge alone is refused at once, with ``InvalidProjection``
  naming the projection and the field: a name that is not a lower-case identifier, a
  version below 1, an ``events=`` entry that is not an event type, no table, a table name
  that is not an identifier or that crashlog keeps for itself, an index on an undeclared
  table, an ``on_error`` other than "stop" or "skip", a handler that is not ``async def``.
- ``Batch.events`` holds only events of the declared types, in the log's reading order; an
  event its class refuses raises ``InvalidEvent`` (a data error: the projection stops at it,
  or with ``on_error="skip"`` records it and moves on).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import asyncpg

from crashlog.errors import InvalidProjection
from crashlog.events import EVENT_TYPES, Event, RawEvent, decode_event
from crashlog.projections.base import (
    IN_SPAN,
    Declaration,
    Handler,
    Projection,
    ReadTable,
    Span,
    Tables,
    shadow_name,
)

#: Tables of schema crashlog that are crashlog's own bookkeeping (never a projection's).
INTERNAL = frozenset({
    "events", "rejected_events", "schema_migrations", "projection_checkpoints",
    "projection_errors", "subscription_checkpoints",
})
#: A projection's and a table's name: a lower-case SQL identifier, quoted nowhere.
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

UserHandler = Callable[["Batch"], Awaitable[None]]

# The span's events of the projection's types ($5), in reading order, as the follower reads.
_EVENTS = f"""
SELECT e.event_type, e.schema_version, e.bot_id, e.event_id, e.occurred_at, e.session_id,
       e.payload::text AS payload
FROM {IN_SPAN} AND e.event_type = ANY($5::text[])
ORDER BY e.tx_id, e.position
"""


class Batch:
    """What a user's handler is given: a span's events and where to write them."""

    def __init__(self, events: list[Event | RawEvent], conn: asyncpg.Connection, tables: Tables) -> None:
        #: The span's events of the projection's types: decoded, upcast, in reading order.
        self.events = events
        #: The runner's connection, inside the transaction that moves the checkpoint and
        #: inside this projection's savepoint: write with it, nothing else.
        self.conn = conn
        self._tables = tables

    def table(self, name: str) -> str:
        """The qualified table to write for the declared table ``name`` (its rebuild shadow
        during a rebuild). ``InvalidProjection`` names an undeclared one."""
        try:
            return self._tables[name]
        except KeyError:
            raise InvalidProjection(
                f"table {name!r} is not declared by this projection; its tables: "
                f"{', '.join(self._tables)}") from None

    def __len__(self) -> int:
        return len(self.events)


def projection(
    name: str,
    *,
    version: int,
    events: Iterable[type[Event] | str],
    tables: Mapping[str, str],
    indexes: Mapping[str, Sequence[str]] | None = None,
    on_error: Literal["stop", "skip"] = "stop",
    read_tables: Sequence[ReadTable] = (),
) -> Callable[[UserHandler], Projection]:
    """Declare a read model over ``handler(batch: Batch)``; see the module's promises.

    ``tables``: table name -> its column definitions (as inside CREATE TABLE). ``indexes``:
    table name -> index specs (what follows ``ON table``: ``"(game, hour)"``, ``"UNIQUE
    (a, b)"``). ``read_tables``: how ``crashlog.reader`` reads them (time column, order);
    an undeclared one is still found (its primary key as its order).
    """
    where = f"projection {name!r}"
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidProjection(f"invalid projection name={name!r}: a lower-case identifier")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidProjection(f"{where}: invalid version={version!r}: an integer from 1")
    if on_error not in ("stop", "skip"):
        raise InvalidProjection(f"{where}: invalid on_error={on_error!r}: 'stop' or 'skip'")
    types = _event_types(where, events)
    declaration = _declaration(where, tables, indexes or {})

    def make(handler: UserHandler) -> Projection:
        if not inspect.iscoroutinefunction(handler):
            raise InvalidProjection(f"{where}: the handler {handler!r} must be an async def")
        return Projection(
            name=name, version=version, event_types=types,
            tables=tuple(t for t, _ in declaration.columns),
            handler=_apply(handler, types), on_error=on_error,
            reads={t: EVENT_TYPES[t].schema_version for t in types if t in EVENT_TYPES},
            read_tables=tuple(read_tables), declaration=declaration,
        )
    return make


def _event_types(where: str, events: Iterable[Any]) -> tuple[str, ...]:
    if isinstance(events, (str, type)) or not isinstance(events, Iterable):
        events = [events]
    found = []
    for item in events:
        if isinstance(item, type) and issubclass(item, Event) and item is not Event:
            found.append(item.event_type)
        elif isinstance(item, str) and item in EVENT_TYPES:
            found.append(item)
        else:
            raise InvalidProjection(
                f"{where}: events entry {item!r} is not an event type (an Event class, or "
                "the name of a registered one)")
    if not found:
        raise InvalidProjection(f"{where}: events=[] names no event type")
    return tuple(dict.fromkeys(found))


def _declaration(
    where: str, tables: Mapping[str, str], indexes: Mapping[str, Sequence[str]]
) -> Declaration:
    if not isinstance(tables, Mapping) or not tables:
        raise InvalidProjection(f"{where}: tables= must map at least one table name to its columns")
    for table, columns in tables.items():
        if not isinstance(table, str) or not NAME.match(table):
            raise InvalidProjection(f"{where}: invalid table name {table!r}: a lower-case identifier")
        if table in INTERNAL or table.endswith(shadow_name("")):
            raise InvalidProjection(
                f"{where}: table name {table!r} is one crashlog already uses; pick another")
        if not isinstance(columns, str) or not columns.strip():
            raise InvalidProjection(f"{where}: table {table!r} declares no columns")
    for table, specs in indexes.items():
        if table not in tables:
            raise InvalidProjection(f"{where}: indexes= names table {table!r}, not declared in tables=")
        if isinstance(specs, str) or not all(isinstance(s, str) and s.strip() for s in specs):
            raise InvalidProjection(f"{where}: indexes of {table!r} must be a list of index specs")
    return Declaration(
        columns=tuple((t, c.strip()) for t, c in tables.items()),
        indexes=tuple((t, tuple(s.strip() for s in specs)) for t, specs in indexes.items()),
    )


def _apply(handler: UserHandler, types: tuple[str, ...]) -> Handler:
    """The ``Projection.handler`` that decodes a span's events and calls ``handler``."""
    wanted = list(types)

    async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
        rows = await conn.fetch(_EVENTS, *span, wanted)
        if rows:
            events = [decode_event(r["event_type"], r["schema_version"], bot_id=r["bot_id"],
                                   event_id=r["event_id"], occurred_at=r["occurred_at"],
                                   session_id=r["session_id"], payload=r["payload"])
                      for r in rows]
            await handler(Batch(events, conn, tables))
    apply.__name__ = apply.__qualname__ = getattr(handler, "__name__", "handler")
    return apply


__all__ = ["INTERNAL", "Batch", "UserHandler", "projection"]
