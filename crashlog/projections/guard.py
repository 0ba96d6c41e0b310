"""Applying one projection to a span of the log inside a savepoint of its own, and what
becomes of an event it cannot read.

Promises:
- A projection's work on a span rolls back alone when it fails: the caller's transaction
  (a runner's pass, a rebuild's batch) goes on with the other projections.
- A data error (SQLSTATE class 22 or 23, or an event that cannot be decoded) is one
  event's doing: the failing event is found by splitting the span (bisection) and, with
  ``on_error="skip"``, recorded in ``crashlog.projection_errors`` in the caller's
  transaction, the projection moving past it; with ``"stop"`` the projection stops just
  before it (``Outcome.stopped`` says where and why).
- Any other failure (deadlock, timeout, a handler's bug) skips nothing: the projection's
  work is rolled back and ``Outcome.failure`` carries the error for the caller to retry
  later. A lost connection is raised (the transaction is gone with it).
- At most ``Budget.limit`` savepoints are kept (released) per transaction, whatever the
  number of bad events: PostgreSQL keeps each released savepoint that wrote in a cache of
  64 per transaction, and past that every snapshot taken on the server slows down. The
  bisection's probes are always rolled back (a rolled-back savepoint leaves the cache) and
  never nest. A projection that runs out of budget stops short of its span's end, and its
  checkpoint moves only as far as it got: the rest comes in the next transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import attrs
import orjson

from crashlog.errors import InvalidEvent
from crashlog.projections.base import IN_SPAN, Handler, Projection, Tables

#: Savepoints kept per transaction: well under PostgreSQL's cache of 64 subtransactions
#: (PGPROC_MAX_CACHED_SUBXIDS). A pass spends one per projection (eleven built-ins), and two
#: more per event skipped (the part before it, and the rest after it).
MAX_SAVEPOINTS = 32
#: The SQLSTATE classes of a row's own data: 22 (data exception), 23 (integrity violation).
DATA_ERROR_CLASSES = ("22", "23")
#: How much of an error's text is kept.
ERROR_TEXT_LIMIT = 2_000

# Every event of the span $1..$4, in reading order (at most one batch: a few thousand rows).
_EVENTS = f"""
SELECT e.tx_id, e.position, e.event_id, e.event_type FROM {IN_SPAN}
ORDER BY e.tx_id, e.position
"""

_RECORD = """
INSERT INTO crashlog.projection_errors (projection, event_id, position, tx_id, error, sqlstate)
VALUES ($1, $2, $3, $4::xid8, $5, $6)
ON CONFLICT (projection, event_id) DO NOTHING
"""


def is_data_error(error: BaseException) -> bool:
    """True for a failure that one event's data causes, and that retrying cannot cure."""
    if isinstance(error, asyncpg.PostgresError):
        return (error.sqlstate or "")[:2] in DATA_ERROR_CLASSES
    return isinstance(error, (InvalidEvent, orjson.JSONDecodeError))


def describe(error: BaseException) -> tuple[str, str | None]:
    """An error's text (bounded) and its SQLSTATE, if it has one."""
    text = f"{type(error).__name__}: {error}"[:ERROR_TEXT_LIMIT]
    return text, getattr(error, "sqlstate", None)


@attrs.define
class Budget:
    """The savepoints one transaction may still keep (see ``MAX_SAVEPOINTS``)."""

    limit: int = MAX_SAVEPOINTS
    kept: int = 0

    def left(self) -> int:
        return self.limit - self.kept


@attrs.frozen
class Failed:
    """An event a projection could not read, and why."""

    event_id: Any
    tx_id: int
    position: int
    error: str
    sqlstate: str | None


@attrs.frozen
class Outcome:
    """Where one projection got to in a span.

    ``end``: its new checkpoint (the span's end unless it stopped, failed or ran out of
    budget); ``passed``: events of the log between its old checkpoint and ``end``;
    ``skipped``: events recorded and moved past; ``stopped``: the event it stopped at
    (``on_error="stop"``); ``failure``: an error that is not the data's (retry later).
    """

    end: tuple[int, int]
    passed: int
    skipped: tuple[Failed, ...] = ()
    stopped: Failed | None = None
    failure: BaseException | None = None


async def apply_span(
    conn: asyncpg.Connection,
    projection: Projection,
    apply: Handler,
    tables: Tables,
    start: tuple[int, int],
    end: tuple[int, int],
    events: int,
    budget: Budget,
) -> Outcome:
    """Apply ``apply`` (the projection's handler, or handler and derive) to the span after
    ``start`` up to ``end`` (``events`` events of the log), inside the caller's
    transaction, each attempt in a savepoint of its own. See the module's promises."""
    cur, skipped = start, list[Failed]()
    listed: list[asyncpg.Record] | None = None
    while True:
        if budget.left() < 1:
            return Outcome(cur, _passed(listed, start, cur, events, end), tuple(skipped))
        error = await _attempt(conn, apply, tables, cur, end, budget)
        if error is None:
            return Outcome(end, events, tuple(skipped))
        if not is_data_error(error) or budget.left() < 2:
            passed = _passed(listed, start, cur, events, end)
            failure = None if is_data_error(error) else error
            return Outcome(cur, passed, tuple(skipped), failure=failure)
        if listed is None:
            listed = await conn.fetch(_EVENTS, *start, *end)
        found = await _first_failing(conn, projection, apply, tables, listed, cur, error)
        if isinstance(found, BaseException):  # a probe failed otherwise: retry later
            return Outcome(cur, _passed(listed, start, cur, events, end), tuple(skipped),
                           failure=found)
        bad, failed = found
        before = _before(listed, bad, start)
        if before > cur:
            error = await _attempt(conn, apply, tables, cur, before, budget)
            if error is not None:  # it passed as a probe: not the data's doing
                return Outcome(cur, _passed(listed, start, cur, events, end), tuple(skipped),
                               failure=error)
        if projection.on_error == "stop":
            return Outcome(before, _passed(listed, start, before, events, end),
                           tuple(skipped), stopped=failed)
        await record(conn, projection.name, failed)
        skipped.append(failed)
        cur = (failed.tx_id, failed.position)
        if cur == end:
            return Outcome(end, events, tuple(skipped))


async def record(conn: asyncpg.Connection, name: str, failed: Failed) -> None:
    """Keep ``failed`` in ``crashlog.projection_errors`` (once per projection and event)."""
    await conn.execute(_RECORD, name, failed.event_id, failed.position, failed.tx_id,
                       failed.error, failed.sqlstate)


# asyncpg rolls a nested transaction back with ROLLBACK TO alone, which leaves the savepoint
# in place: whatever runs after it would nest one level deeper each time, and count in the
# cache once it writes. A rolled-back savepoint is released here too.
_SAVEPOINT = "SAVEPOINT crashlog_guard"
_KEEP = "RELEASE SAVEPOINT crashlog_guard"
_UNDO = "ROLLBACK TO SAVEPOINT crashlog_guard; RELEASE SAVEPOINT crashlog_guard"


async def _in_savepoint(
    conn: asyncpg.Connection, apply: Handler, tables: Tables,
    lo: tuple[int, int], hi: tuple[int, int], *, keep: bool,
) -> BaseException | None:
    """Apply (lo, hi] in a savepoint, kept on success if ``keep``, else always rolled back
    and released; returns the error if it failed. A lost connection is raised."""
    await conn.execute(_SAVEPOINT)
    try:
        await apply(conn, tables, (*lo, *hi))
    except Exception as error:
        if conn.is_closed():
            raise
        await conn.execute(_UNDO)
        return error
    await conn.execute(_KEEP if keep else _UNDO)
    return None


async def _attempt(
    conn: asyncpg.Connection, apply: Handler, tables: Tables,
    lo: tuple[int, int], hi: tuple[int, int], budget: Budget,
) -> BaseException | None:
    """Apply (lo, hi] in a savepoint kept on success (one of the budget); the error if not."""
    error = await _in_savepoint(conn, apply, tables, lo, hi, keep=True)
    if error is None:
        budget.kept += 1
    return error


async def _probe(
    conn: asyncpg.Connection, apply: Handler, tables: Tables,
    lo: tuple[int, int], hi: tuple[int, int],
) -> BaseException | None:
    """Whether (lo, hi] applies, in a savepoint always rolled back; the error if not."""
    return await _in_savepoint(conn, apply, tables, lo, hi, keep=False)


async def _first_failing(
    conn: asyncpg.Connection,
    projection: Projection,
    apply: Handler,
    tables: Tables,
    listed: Sequence[asyncpg.Record],
    cur: tuple[int, int],
    error: BaseException,
) -> tuple[int, Failed] | BaseException:
    """The index in ``listed`` of the first event after ``cur`` whose span from ``cur``
    fails, and its failure: the event that cannot be read. Only events of the projection's
    types are candidates. Probes about log2(span) prefixes; a probe that fails for another
    reason than the data is returned instead."""
    types = set(projection.event_types)
    candidates = [i for i, r in enumerate(listed)
                  if (r["tx_id"], r["position"]) > cur and r["event_type"] in types]
    if not candidates:  # none of its events is there to blame: not one event's doing
        return error
    lo, hi = 0, len(candidates) - 1  # the whole rest fails (with ``error``)
    while lo < hi:
        mid = (lo + hi) // 2
        row = listed[candidates[mid]]
        probed = await _probe(conn, apply, tables, cur, (row["tx_id"], row["position"]))
        if probed is None:
            lo = mid + 1
        elif is_data_error(probed):
            hi, error = mid, probed
        else:
            return probed
    index = candidates[lo]
    row = listed[index]
    text, sqlstate = describe(error)
    return index, Failed(row["event_id"], row["tx_id"], row["position"], text, sqlstate)


def _before(listed: Sequence[asyncpg.Record], index: int, start: tuple[int, int]) -> tuple[int, int]:
    """The place in the log just before ``listed[index]`` (the span's start for the first)."""
    if index == 0:
        return start
    row = listed[index - 1]
    return (row["tx_id"], row["position"])


def _passed(
    listed: Sequence[asyncpg.Record] | None, start: tuple[int, int], at: tuple[int, int],
    events: int, end: tuple[int, int],
) -> int:
    """Events of the log after ``start`` up to and including ``at``."""
    if at == start:
        return 0
    if at == end or listed is None:
        return events
    return sum(1 for r in listed if (r["tx_id"], r["position"]) <= at)
