"""Following the log as it commits: every committed event once, in the log's reading order.

The same commit-safe reading as the projections' (``checkpoints``): only events with
``tx_id < pg_snapshot_xmin(pg_current_snapshot())`` are read, in ``(tx_id, position)``
order. Below that horizon every transaction has ended, so an event read now can never be
preceded later by one that commits late: a long transaction holds the follower back, and
when it commits its events come first, then the ones that committed while it was open.

Promises:
- ``LogFollower`` yields each committed event after its start once, in ``(tx_id,
  position)`` order, optionally only one bot's or some event types'; it never yields an
  event of a transaction still open, nor one after such a transaction's first event.
  ``batches()`` yields the same events a query's worth at a time (what a subscription
  delivers, ``crashlog.subscriptions``); the plain iteration yields them one by one.
- It wakes on the runner's ``NOTIFY`` (``runner.CHANNEL``, sent at each commit that
  appends) and polls as well, so a horizon held back by a long transaction is noticed.
- ``start_back(conn, n)`` is the position after which the last ``n`` committed events of
  the whole log lie (the filters apply after it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import NamedTuple
from uuid import UUID

import asyncpg

from crashlog.events import Event, RawEvent, decode_event
from crashlog.projections.checkpoints import (
    AFTER,
    COMMIT_SAFE,
    ORIGIN,
    READING_ORDER,
    READING_ORDER_DESC,
    Position,
)
from crashlog.projections.runner import CHANNEL

#: Events fetched per query.
BATCH = 1000
#: Seconds between polls when no NOTIFY comes (a transaction holding the horizon back).
POLL = 0.5

_AFTER = f"""
SELECT tx_id, position, event_type, bot_id, session_id, occurred_at, payload::text AS payload,
       event_id, schema_version
FROM crashlog.events
WHERE {AFTER} AND {COMMIT_SAFE}
  AND ($3::text IS NULL OR bot_id = $3)
  AND ($4::text[] IS NULL OR event_type = ANY($4::text[]))
ORDER BY {READING_ORDER}
LIMIT $5
"""

_NTH_LAST = f"""
SELECT tx_id, position FROM crashlog.events
WHERE {COMMIT_SAFE}
ORDER BY {READING_ORDER_DESC} LIMIT 1 OFFSET $1
"""


class CommittedEvent(NamedTuple):
    """One committed row of ``crashlog.events``, as stored (the payload as its JSON text).

    A named tuple in the columns' order of the follower's query: made straight from each
    row, which a subscription catching up on a long log does a million times."""

    tx_id: int
    position: int
    event_type: str
    bot_id: str
    session_id: str | None
    occurred_at: datetime
    payload: str
    event_id: UUID
    schema_version: int

    @property
    def at(self) -> Position:
        """Where this event is in the log's reading order."""
        return Position(self.tx_id, self.position)

    def decode(self) -> Event | RawEvent:
        """The event this row records, upcast to its class's current version (a ``RawEvent``
        for a type with no class here); ``InvalidEvent`` if its class refuses it."""
        return decode_event(
            self.event_type, self.schema_version, bot_id=self.bot_id, event_id=self.event_id,
            occurred_at=self.occurred_at, session_id=self.session_id, payload=self.payload,
        )


async def start_back(conn: asyncpg.Connection, events: int) -> Position:
    """The position after which the last ``events`` committed events lie; ``ORIGIN`` if the
    log holds no more than that."""
    if events < 0:
        raise ValueError(f"invalid events={events!r}: must be 0 or more")
    row = await conn.fetchrow(_NTH_LAST, events)
    return ORIGIN if row is None else Position(row["tx_id"], row["position"])


class LogFollower:
    """``async with LogFollower(conn, after) as log: async for event in log: ...``

    Listens on ``conn`` while the block runs; the iteration ends only when the caller
    stops (break, cancellation, a timeout around it).
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        after: Position = ORIGIN,
        *,
        bot_id: str | None = None,
        event_type: str | None = None,
        event_types: Sequence[str] | None = None,
        batch: int = BATCH,
        poll: float = POLL,
    ) -> None:
        types = None if event_type is None and event_types is None else [
            *([] if event_type is None else [event_type]), *(event_types or ())]
        self._conn = conn
        self._filters = (bot_id, types, batch)
        self._poll = poll
        self._wake = asyncio.Event()
        self.after = after  # the last event yielded (or the start): the next one comes after

    async def __aenter__(self) -> LogFollower:
        await self._conn.add_listener(CHANNEL, self._notified)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._conn.remove_listener(CHANNEL, self._notified)

    def __aiter__(self) -> AsyncIterator[CommittedEvent]:
        return self._follow()

    async def _next_events(self) -> list[CommittedEvent]:
        rows = await self._conn.fetch(_AFTER, self.after.tx_id, self.after.position, *self._filters)
        make = CommittedEvent._make
        return [make(row) for row in rows]

    async def batches(self) -> AsyncIterator[list[CommittedEvent]]:
        """The events after ``after``, a non-empty list (at most ``batch``) at a time.

        ``after`` moves to a list's last event when the next list is asked for, so a
        caller that stops while holding a list has not moved past it."""
        while True:
            self._wake.clear()  # before reading: a commit during the read wakes the next wait
            events = await self._next_events()
            if events:
                yield events
                self.after = max(self.after, events[-1].at)
                continue
            with contextlib.suppress(TimeoutError):  # the poll: a horizon held back
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _follow(self) -> AsyncIterator[CommittedEvent]:
        async for events in self.batches():
            for event in events:
                self.after = event.at  # moved per event: a caller may stop mid-batch
                yield event

    def _notified(self, *_: object) -> None:
        self._wake.set()
