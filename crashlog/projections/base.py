"""What a projection is, and the SQL pieces its handlers share.

A projection has a name, a version, the event types it handles, the tables it owns
and a handler. The handler applies every event in a span of the log,
``(tx_id, position)`` after ``lo`` up to and including ``hi``, inside the runner's
transaction. Handlers are set-based SQL that read payload fields in the database
(``(e.payload->>'stake')::numeric``) and upsert on natural keys, so applying a span
twice, or again in a rebuild, changes nothing.

A projection whose rows merge several events (a game round seen by several bots) splits
its work in two: the handler records the span's events, and ``derive`` recomputes the
rows they touched from everything recorded. The runner runs both for every batch; a
rebuild records the whole log first, builds the indexes, then derives every row at once
(``derive_all``, where the projection has one) or batch by batch.

Handlers never read another projection's tables: each projection's checkpoint and
rebuild are its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

import asyncpg
import attrs

#: A span of the log: events with ``(lo_tx, lo_pos) < (tx_id, position) <= (hi_tx, hi_pos)``.
Span = tuple[int, int, int, int]
#: Logical table name -> the table to write ("crashlog.rounds", or its rebuild shadow).
Tables = Mapping[str, str]
Handler = Callable[[asyncpg.Connection, Tables, Span], Awaitable[None]]
#: Recomputes every derived row of the tables from everything recorded in them.
WholeHandler = Callable[[asyncpg.Connection, Tables], Awaitable[None]]

#: The events of the span, as ``e``; a handler adds ``AND e.event_type = ...``.
#: Parameters $1..$4 are the span.
IN_SPAN = """crashlog.events e
    WHERE (e.tx_id, e.position) > ($1::xid8, $2::bigint)
      AND (e.tx_id, e.position) <= ($3::xid8, $4::bigint)"""

#: How a row keyed by its event (a table of ``Projection.one_row_per_event``, or a row of one
#: event in a ``derived`` table) skips an event already recorded. It names no conflict target:
#: a rebuild fills such tables before their unique keys exist (a pass over the log holds each
#: event once), and the event's key is the only one such a row can conflict on.
SKIP_KNOWN_EVENTS = "ON CONFLICT DO NOTHING"


@attrs.frozen
class Projection:
    """A read model: what it is called, its version, what it reads and owns, how it applies."""

    name: str
    #: Bump it when the handler's output changes: a runner then rebuilds the tables at start.
    version: int
    #: The event types its handler reads: a batch holding none of them is not given to it.
    event_types: tuple[str, ...]
    #: The tables it owns, unqualified, in schema ``crashlog``. The first is the main one.
    tables: tuple[str, ...]
    #: Records the span's events in the tables.
    handler: Handler
    #: Recomputes the rows the span's events touched from what the handler recorded, through
    #: the tables' indexes (``None``: the handler's rows are final).
    derive: Handler | None = None
    #: What a rebuild runs instead of ``derive`` batch by batch, once everything is recorded
    #: and the tables it reads indexed: every derived row recomputed at once (one sort
    #: instead of a lookup per row), outside any transaction of the caller's and in short ones
    #: of its own (an open transaction holds the live runners' horizon back). Its rows equal
    #: ``derive``'s.
    derive_all: WholeHandler | None = None
    #: The tables ``derive_all`` writes: a rebuild builds their indexes after it, unique keys
    #: included, so that its writes maintain none, and analyses them again after it (a table
    #: not listed keeps the statistics taken just before the derive). The handler's writes to
    #: them may then name no conflict target (``SKIP_KNOWN_EVENTS``), and ``derive_all`` must
    #: not need one: a pass over the log holds each event once, each derived row is written once.
    derived: tuple[str, ...] = ()
    #: About how many µs of server time applying one event takes, beyond reading the log
    #: (``python benchmarks/rebuild_each.py``): parallel rebuilds and runners share
    #: projections out by it.
    weight: int = 1
    #: Tables with at most one row per event, keyed by event_id and inserted with
    #: ``SKIP_KNOWN_EVENTS``: a rebuild fills them without their unique key and builds it
    #: after the load, several times cheaper than checking it row by row.
    one_row_per_event: tuple[str, ...] = ()
    #: What to do with an event it cannot read (a data error, SQLSTATE class 22 or 23, or an
    #: undecodable payload): "skip" records it in ``crashlog.projection_errors`` and moves
    #: past it (every built-in); "stop" stops the projection at it, its state kept on its
    #: checkpoint row, until its version changes or it is rebuilt.
    on_error: Literal["skip", "stop"] = attrs.field(
        default="skip", validator=attrs.validators.in_(("skip", "stop")))
    #: The payload layout its handler reads, per event type: the ``schema_version`` it was
    #: written for. SQL handlers read stored payloads as they are, never upcast, so when an
    #: event type's version moves on, every handler reading it must move too (a test holds
    #: this against the catalogue).
    reads: Mapping[str, int] = attrs.field(factory=dict, hash=False)
    #: The tables readers may read (``crashlog.reader``), each with its time column and order;
    #: a table of ``tables`` not listed here is the projection's own (e.g. a reading copy).
    read_tables: tuple[ReadTable, ...] = ()
    #: A user's projection (``crashlog.projections.user``): its tables' declared columns and
    #: indexes, from which its tables and its rebuild shadows are made. None for a built-in.
    declaration: Declaration | None = None

    def live_tables(self) -> dict[str, str]:
        return {t: f"crashlog.{t}" for t in self.tables}

    def shadow_tables(self) -> dict[str, str]:
        return {t: f"crashlog.{shadow_name(t)}" for t in self.tables}

    async def apply(self, conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
        """Apply every event of ``span`` to ``tables`` (within the caller's transaction)."""
        await self.handler(conn, tables, span)
        if self.derive:
            await self.derive(conn, tables, span)


def share(projections: Sequence[Projection], ways: int) -> list[list[Projection]]:
    """``projections`` in at most ``ways`` groups of about equal weight (each in registry
    order), for that many connections to apply side by side."""
    groups: list[list[Projection]] = [[] for _ in range(max(1, ways))]
    for p in sorted(projections, key=lambda p: -p.weight):
        min(groups, key=lambda g: sum(q.weight for q in g)).append(p)
    order = {p.name: i for i, p in enumerate(projections)}
    return [sorted(g, key=lambda p: order[p.name]) for g in groups if g]


def shadow_name(table: str) -> str:
    """The name a table is rebuilt under before it is swapped in."""
    return f"{table}__rebuild"


def required(event_type: str, *keys: str) -> str:
    """A predicate on ``e`` that raises a data error (22004, naming the fields) for an event
    of ``event_type`` lacking one of ``keys`` (only a row not written by the SDK can), so the
    row is recorded and skipped rather than read as NULL by a sum or a count."""
    missing = " OR ".join(f"e.payload->>'{k}' IS NULL" for k in keys)
    return (f"(CASE WHEN {missing} THEN crashlog.unreadable('{event_type}', e.event_id, "
            f"'{', '.join(keys)}') ELSE true END)")


def text(key: str) -> str:
    """A payload field as text (NULL when the bot omitted it)."""
    return f"e.payload->>'{key}'"


def numeric(key: str) -> str:
    return f"(e.payload->>'{key}')::numeric"


def bigint(key: str) -> str:
    return f"(e.payload->>'{key}')::bigint"


def float8(key: str) -> str:
    return f"(e.payload->>'{key}')::double precision"


def timestamptz(key: str) -> str:
    return f"(e.payload->>'{key}')::timestamptz"


def json_object(key: str) -> str:
    return f"coalesce(e.payload->'{key}', jsonb_build_object())"


@attrs.frozen
class Declaration:
    """The tables a user's projection declared: per table its column definitions (SQL, as
    in CREATE TABLE) and its indexes (what follows ``ON table`` in CREATE INDEX, e.g.
    ``(game, hour)``; ``UNIQUE (...)`` for a unique one)."""

    columns: tuple[tuple[str, str], ...]
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def statements(self, tables: Tables) -> list[str]:
        """CREATE TABLE and CREATE INDEX statements that make each table as ``tables``
        qualifies it (the live table, a shadow, a probe)."""
        made = [f"CREATE TABLE {tables[t]} ({columns})" for t, columns in self.columns]
        for table, specs in self.indexes:
            for spec in specs:
                unique = "UNIQUE " if spec.upper().startswith("UNIQUE ") else ""
                body = spec[len(unique):] if unique else spec
                made.append(f"CREATE {unique}INDEX ON {tables[table]} {body}")
        return made

    def checksum(self) -> str:
        """A checksum of the declaration (kept on the checkpoint row)."""
        text = repr((self.columns, self.indexes)).encode()
        return hashlib.sha256(text).hexdigest()[:32]


@attrs.frozen
class ReadTable:
    """A table readers may read: its name, its documented time column (``since``/``until``
    apply to it; None: the table has none and refuses them) and the columns its rows come
    in order of (the time column first, then what breaks ties)."""

    name: str
    time: str | None
    order: tuple[str, ...]
