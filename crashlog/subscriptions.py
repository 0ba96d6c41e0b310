"""Subscriptions: durable, named consumers of the log, for work outside the database.

    async with log.subscribe("alerts", events=[RoundSettled]) as sub:
        async for batch in sub:
            for event in batch.events: ...
            await batch.ack()          # asking for the next batch acks this one too

Events come through ``projections.follower.LogFollower`` (the one commit-safe reader of the
log): in ``(tx_id, position)`` order, below the horizon every transaction under which has
ended, so a late commit is never skipped. Idle, the follower waits on the writer's NOTIFY
(``runner.CHANNEL``) and polls.

One consumer per name: a consumer holds a session advisory lock keyed on the name, on its
own connection, for as long as it runs. The server releases it the moment that connection
ends — a clean exit, a crash, a SIGKILL — with no heartbeat to tune and no clock to trust,
and without an open transaction (which would hold the reading horizon back for everyone).
A second consumer of the name polls for the lock every ``WAIT`` seconds and takes over.

Promises:
- At least once: a batch is acknowledged by ``ack()`` or by asking for the next one; leaving
  the loop (break, return, an exception) acknowledges nothing, and the next consumer of the
  name gets that batch again. An acknowledgement moves the checkpoint by compare-and-set from
  the batch's start, so it never moves backwards nor skips.
- ``start`` ("beginning", "end": the reading horizon now, a ``Position`` or an event's log
  position: what follows it) applies only to a name never seen; a known name resumes.
- ``subscribe(None, ...)`` is an ephemeral follower: no checkpoint, no lock.
- ``subscriptions(conn)`` lists the names with their lag and consumer; ``drop(conn, name)``
  removes one whose consumer is not running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from functools import cached_property
from types import TracebackType
from typing import Any, Literal

import asyncpg
import attrs

from crashlog.database import open_connection
from crashlog.errors import SubscriptionError
from crashlog.events import Event, RawEvent
from crashlog.projections.checkpoints import ORIGIN, Position
from crashlog.projections.follower import BATCH, POLL, CommittedEvent, LogFollower, start_back

log = logging.getLogger("crashlog.subscriptions")

Start = Literal["beginning", "end"] | Position | int

#: Advisory lock class of "subscription X has a consumer" (object id: hashtext(name)).
LOCK_CLASS = 0x73756273
#: Seconds between a waiting consumer's attempts to take the name.
WAIT = 0.25
#: Longest subscription name (as the table's CHECK).
NAME_MAX_CHARS = 128
#: A consumer's own connection: an acknowledgement lost in a server crash is only a batch
#: delivered again, so it need not wait for the disk.
SERVER_SETTINGS = {"application_name": "crashlog-subscription", "synchronous_commit": "off"}

_TAKE = "SELECT pg_try_advisory_lock($1::int, hashtext($2))"
_RELEASE = "SELECT pg_advisory_unlock($1::int, hashtext($2))"

# The name's checkpoint, created at $3/$4 for a name never seen; its types follow the consumer.
_OPEN = """
INSERT INTO crashlog.subscription_checkpoints AS s (name, event_types, tx_id, position)
VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE SET event_types = EXCLUDED.event_types
RETURNING s.tx_id, s.position
"""

_AT_POSITION = "SELECT tx_id, position FROM crashlog.events WHERE position = $1"

_ACK = """
UPDATE crashlog.subscription_checkpoints
SET tx_id = $4, position = $5, events_delivered = events_delivered + $6, updated_at = now()
WHERE name = $1 AND tx_id = $2 AND position = $3
"""

_LIST = """
SELECT s.name, s.event_types, s.tx_id, s.position, s.events_delivered, s.updated_at,
       (SELECT count(*) FROM crashlog.events e
        WHERE (e.tx_id, e.position) > (s.tx_id, s.position)
          AND (s.event_types IS NULL OR e.event_type = ANY(s.event_types))) AS lag_events,
       coalesce(extract(epoch FROM clock_timestamp() - (
           SELECT e.recorded_at FROM crashlog.events e
           WHERE (e.tx_id, e.position) > (s.tx_id, s.position)
             AND (s.event_types IS NULL OR e.event_type = ANY(s.event_types))
           ORDER BY e.tx_id, e.position LIMIT 1)), 0)::double precision AS lag_seconds,
       (SELECT l.pid FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = $1::int::oid AND l.objid = hashtext(s.name)::oid) AS consumer_pid
FROM crashlog.subscription_checkpoints s
ORDER BY s.name
"""

_DROP = "DELETE FROM crashlog.subscription_checkpoints WHERE name = $1"


class SubscriptionBatch:
    """Events delivered together: ``events`` (decoded, upcast; a ``RawEvent`` for a type with
    no class here), ``rows`` (as stored), ``start``/``end`` (positions in reading order:
    the events lie after ``start`` up to and including ``end``) and ``ack()``."""

    def __init__(self, subscription: Subscription, rows: list[CommittedEvent], start: Position) -> None:
        self._subscription = subscription
        self.rows = rows
        self.start = start
        self.end = rows[-1].at
        self.acked = False

    @cached_property
    def events(self) -> list[Event | RawEvent]:
        """The events, decoded on first use; ``InvalidEvent`` names one its class refuses."""
        return [row.decode() for row in self.rows]

    async def ack(self) -> None:
        """Record that this batch is handled: the name's next consumer starts after it."""
        if not self.acked:
            await self._subscription._ack(self)  # noqa: SLF001
            self.acked = True

    def __len__(self) -> int:
        return len(self.rows)


class Subscription:
    """An async iterator of ``SubscriptionBatch`` and an async context manager (see the module).

    ``source`` is a DSN (the subscription opens a connection of its own and closes it at the
    end) or an open connection (used, not closed; for ``subscribe(None)`` in a command).
    Raises ``SubscriptionError`` naming a bad ``name``, ``events`` entry or ``start``.
    """

    def __init__(
        self,
        source: str | asyncpg.Connection,
        name: str | None,
        *,
        events: Iterable[type[Event] | str] | None = None,
        start: Start = "beginning",
        batch_size: int = BATCH,
        poll: float = POLL,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        self.name = _checked_name(name)
        self.event_types = None if events is None else _type_names(events)
        self.start = _checked_start(start)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise SubscriptionError(f"invalid batch_size={batch_size!r}: must be a positive integer")
        self._source = source
        self._batch_size = batch_size
        self._poll = poll
        self._connect_options = connect_options or {}
        self._conn: asyncpg.Connection | None = None
        self._follower: LogFollower | None = None

    # -- opening and closing -------------------------------------------------------------

    async def open(self) -> Subscription:
        """Connect, wait for the name (if named), find where to start."""
        if self._follower is not None:
            return self
        own = isinstance(self._source, str)
        conn = await self._connect() if own else self._source
        locked = False
        try:
            if self.name is not None:
                await self._take_name(conn)
                locked = True
                after = await self._checkpoint(conn)
            else:
                after = await resolve_start(conn, self.start)
            follower = LogFollower(conn, after, event_types=self.event_types,
                                   batch=self._batch_size, poll=self._poll)
            await follower.__aenter__()
        except BaseException:
            await self._release(conn, own, locked)
            raise
        self._conn, self._follower = conn, follower
        return self

    async def close(self) -> None:
        """Release the name (a batch not acknowledged is delivered again) and the connection."""
        conn, follower = self._conn, self._follower
        self._conn = self._follower = None
        if conn is None or follower is None:
            return
        try:
            if not conn.is_closed():
                await follower.__aexit__(None, None, None)
        finally:
            await self._release(conn, isinstance(self._source, str), self.name is not None)

    async def __aenter__(self) -> Subscription:
        return await self.open()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- delivering ----------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[SubscriptionBatch]:
        return self._deliver()

    async def _deliver(self) -> AsyncIterator[SubscriptionBatch]:
        opened_here = self._follower is None  # ``async for`` without ``async with``
        if opened_here:
            await self.open()
        assert self._follower is not None
        try:
            async for rows in self._follower.batches():
                batch = SubscriptionBatch(self, rows, self._follower.after)
                yield batch
                await batch.ack()  # asking for the next batch acknowledges this one
        finally:
            if opened_here:
                await self.close()

    async def _ack(self, batch: SubscriptionBatch) -> None:
        if self._follower is not None:  # a new loop over this subscription goes on after it
            self._follower.after = max(self._follower.after, batch.end)
        if self.name is None:
            return
        if self._conn is None:
            raise SubscriptionError(f"subscription {self.name!r} is closed: its batch was not acknowledged")
        status = await self._conn.execute(_ACK, self.name, *batch.start, *batch.end, len(batch))
        if status != "UPDATE 1":
            raise SubscriptionError(
                f"subscription {self.name!r}: its checkpoint was dropped or moved while this "
                "consumer held it; the batch was not acknowledged")

    # -- the name ------------------------------------------------------------------------

    async def _connect(self) -> asyncpg.Connection:
        assert isinstance(self._source, str)
        options = {"server_settings": SERVER_SETTINGS, **self._connect_options}
        return await open_connection(self._source, **options)

    async def _take_name(self, conn: asyncpg.Connection) -> None:
        told = False
        while not await conn.fetchval(_TAKE, LOCK_CLASS, self.name):
            if not told:
                log.info("subscription %r: another consumer holds it; waiting to take over", self.name)
                told = True
            await asyncio.sleep(WAIT)

    async def _checkpoint(self, conn: asyncpg.Connection) -> Position:
        start = await resolve_start(conn, self.start)
        row = await conn.fetchrow(_OPEN, self.name, self.event_types, *start)
        return Position(row["tx_id"], row["position"])

    async def _release(self, conn: asyncpg.Connection, own: bool, locked: bool) -> None:
        if own:
            await conn.close()  # the server drops the lock with the session
        elif locked and not conn.is_closed():
            await conn.fetchval(_RELEASE, LOCK_CLASS, self.name)


async def resolve_start(conn: asyncpg.Connection, start: Start) -> Position:
    """The position ``start`` means now: events after it are delivered."""
    if start == "beginning":
        return ORIGIN
    if start == "end":
        return await start_back(conn, 0)
    if isinstance(start, Position):
        return start
    row = await conn.fetchrow(_AT_POSITION, start)
    if row is None:
        raise SubscriptionError(f"invalid start={start!r}: no event has that position")
    return Position(row["tx_id"], row["position"])


# -- managing subscriptions (crashlog subscriptions) ------------------------------------------


@attrs.frozen
class SubscriptionState:
    """A named subscription as the database knows it."""

    name: str
    event_types: tuple[str, ...] | None
    checkpoint: Position
    events_delivered: int
    updated_at: datetime
    #: Events of its types committed after its checkpoint, and how old the oldest is (s).
    lag_events: int
    lag_seconds: float
    #: The server process of its active consumer (None: no consumer running).
    consumer_pid: int | None


async def subscriptions(conn: asyncpg.Connection) -> list[SubscriptionState]:
    """Every named subscription, by name, with its lag and whether a consumer runs."""
    rows = await conn.fetch(_LIST, LOCK_CLASS)
    return [
        SubscriptionState(
            name=r["name"],
            event_types=None if r["event_types"] is None else tuple(r["event_types"]),
            checkpoint=Position(r["tx_id"], r["position"]),
            events_delivered=r["events_delivered"],
            updated_at=r["updated_at"],
            lag_events=r["lag_events"],
            lag_seconds=r["lag_seconds"],
            consumer_pid=r["consumer_pid"],
        )
        for r in rows
    ]


async def drop(conn: asyncpg.Connection, name: str) -> None:
    """Remove subscription ``name`` (its checkpoint: a new consumer starts afresh).

    Raises ``SubscriptionError`` naming it if it does not exist or its consumer runs.
    """
    if not await conn.fetchval(_TAKE, LOCK_CLASS, name):
        raise SubscriptionError(f"subscription {name!r} has a consumer running: stop it first")
    try:
        status = await conn.execute(_DROP, name)
    finally:
        await conn.fetchval(_RELEASE, LOCK_CLASS, name)
    if status != "DELETE 1":
        raise SubscriptionError(f"no subscription named {name!r}")


# -- checking what the caller passed ----------------------------------------------------------


def _checked_name(name: Any) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name or len(name) > NAME_MAX_CHARS or "\x00" in name:
        raise SubscriptionError(
            f"invalid subscription name={name!r}: text of 1 to {NAME_MAX_CHARS} characters, "
            "or None for an ephemeral follower")
    return name


def _type_names(events: Iterable[Any]) -> list[str]:
    if isinstance(events, (str, type)):
        events = [events]
    names = []
    for item in events:
        if isinstance(item, type) and issubclass(item, Event):
            names.append(item.event_type)
        elif isinstance(item, str) and item:
            names.append(item)
        else:
            raise SubscriptionError(f"invalid events entry {item!r}: an event class or a type name")
    return names


def _checked_start(start: Any) -> Start:
    if start in ("beginning", "end") or isinstance(start, Position):
        return start  # type: ignore[no-any-return]
    if isinstance(start, int) and not isinstance(start, bool) and start >= 0:
        return start
    raise SubscriptionError(
        f"invalid start={start!r}: 'beginning', 'end', a Position or an event's position")


__all__ = [
    "BATCH",
    "Start",
    "Subscription",
    "SubscriptionBatch",
    "SubscriptionState",
    "drop",
    "resolve_start",
    "subscriptions",
]
