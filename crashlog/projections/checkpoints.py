"""Reading the log in commit-safe order, and each projection's checkpoint in it.

Only events with ``tx_id < pg_snapshot_xmin(pg_current_snapshot())`` are read: every
transaction below that horizon has ended, so no event can later appear before the
checkpoint. A checkpoint moves only by compare-and-set, in the transaction that
applied the events it covers.

That rule is written once, here: ``COMMIT_SAFE`` (the horizon), ``AFTER`` (past a
place in reading order) and ``READING_ORDER``; every reader of the log builds its
query from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
import attrs

from crashlog.errors import StaleCheckpoint
from crashlog.projections import guard
from crashlog.projections.base import Projection, Span


class Position(NamedTuple):
    """A place in the log, in reading order."""

    tx_id: int
    position: int


ORIGIN = Position(0, 0)

# -- the commit-safe reading rule, as SQL fragments over crashlog.events ----------------------
#: Events whose transaction is below the horizon: every transaction there has ended, so no
#: event can later appear before one read.
COMMIT_SAFE = "tx_id < pg_snapshot_xmin(pg_current_snapshot())"
#: Events past the place ``$1`` (tx_id), ``$2`` (position), in reading order.
AFTER = "(tx_id, position) > ($1::xid8, $2::bigint)"
#: The log's reading order (ascending; an index serves it).
READING_ORDER = "tx_id, position"
#: The reverse: the latest event first.
READING_ORDER_DESC = "tx_id DESC, position DESC"

# The last event of the next span after $1/$2 (at most $3 events), how many it holds, and
# its event types (a projection with none of its types there has nothing to do).
_SPAN_END = f"""
WITH b AS MATERIALIZED (
    SELECT tx_id, position, event_type FROM crashlog.events
    WHERE {AFTER} AND {COMMIT_SAFE}
    ORDER BY {READING_ORDER}
    LIMIT $3
)
SELECT (SELECT count(*) FROM b) AS n, (SELECT array_agg(DISTINCT event_type) FROM b) AS types,
       tx_id, position
FROM b ORDER BY {READING_ORDER_DESC} LIMIT 1
"""

_ANY_AFTER = f"SELECT EXISTS (SELECT 1 FROM crashlog.events WHERE {AFTER} AND {COMMIT_SAFE})"

_ENSURE = """
INSERT INTO crashlog.projection_checkpoints (name, version, declaration, tables)
VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO NOTHING
"""

# Every projection with a checkpoint, built-in or a user's, wherever its runner is.
_NAMES = "SELECT name FROM crashlog.projection_checkpoints ORDER BY name"

_READ = "SELECT version, tx_id, position FROM crashlog.projection_checkpoints WHERE name = $1"

# The checkpoints of projections $1 at versions $2, locked in name order (the order a swap
# locks them in, so the two cannot deadlock: the sort runs before the rows are locked).
_LOCK = """
SELECT c.name, c.tx_id, c.position, c.stopped_error, c.stopped_event_id, c.stopped_position,
       c.stopped_at,
       (SELECT e.tx_id FROM crashlog.events e WHERE e.position = c.stopped_position)
           AS stopped_tx_id
FROM crashlog.projection_checkpoints c
JOIN unnest($1::text[], $2::int[]) AS p(name, version) USING (name, version)
ORDER BY c.name
FOR UPDATE OF c
"""

# Compare-and-set of several checkpoints at once: name, from (tx, pos), to (tx, pos), count.
_ADVANCE = """
UPDATE crashlog.projection_checkpoints c
SET tx_id = a.to_tx, position = a.to_pos, events_applied = events_applied + a.n,
    updated_at = now()
FROM unnest($1::text[], $2::xid8[], $3::bigint[], $4::xid8[], $5::bigint[], $6::bigint[])
     AS a(name, from_tx, from_pos, to_tx, to_pos, n)
WHERE c.name = a.name AND c.tx_id = a.from_tx AND c.position = a.from_pos
"""

# A projection with on_error = "stop" stops at the event $2..$4 (its checkpoint stays before it).
_STOP = """
UPDATE crashlog.projection_checkpoints
SET stopped_error = $2, stopped_event_id = $3, stopped_position = $4, stopped_at = now()
WHERE name = $1
"""

_STOPPED = """
SELECT name, stopped_error, stopped_event_id, stopped_position, stopped_at
FROM crashlog.projection_checkpoints WHERE stopped_at IS NOT NULL ORDER BY name
"""

# Events not applied by at least one of the projections $2, committed before xid $1.
_UNPROJECTED = """
WITH cp AS (
    SELECT coalesce(c.tx_id, '0'::xid8) AS tx_id, coalesce(c.position, 0) AS position
    FROM unnest($2::text[]) AS n(name)
    LEFT JOIN crashlog.projection_checkpoints c USING (name)
    ORDER BY 1, 2 LIMIT 1
)
SELECT count(*) FROM crashlog.events e, cp
WHERE (e.tx_id, e.position) > (cp.tx_id, cp.position) AND e.tx_id < $1::xid8
"""

_LAG = """
SELECT n.name,
       (SELECT count(*) FROM crashlog.events e
        WHERE (e.tx_id, e.position) > (coalesce(c.tx_id, '0'::xid8), coalesce(c.position, 0)))
           AS events,
       coalesce(extract(epoch FROM clock_timestamp() - (
           SELECT e.recorded_at FROM crashlog.events e
           WHERE (e.tx_id, e.position) > (coalesce(c.tx_id, '0'::xid8), coalesce(c.position, 0))
           ORDER BY e.tx_id, e.position LIMIT 1)), 0)::double precision AS seconds
FROM unnest($1::text[]) AS n(name)
LEFT JOIN crashlog.projection_checkpoints c USING (name)
"""


# Per projection ($1, and every other one with a checkpoint): events skipped, and why it stopped.
_STATES = """
WITH n AS (
    SELECT unnest($1::text[]) AS name
    UNION SELECT name FROM crashlog.projection_checkpoints
)
SELECT n.name,
       (SELECT count(*) FROM crashlog.projection_errors pe WHERE pe.projection = n.name)
           AS skipped,
       c.stopped_error, c.stopped_event_id, c.stopped_position, c.stopped_at
FROM n LEFT JOIN crashlog.projection_checkpoints c USING (name)
ORDER BY array_position($1::text[], n.name), n.name
"""


class State(NamedTuple):
    """A projection's trouble: events it skipped (``crashlog.projection_errors``) and, if it
    stopped, at which event (id, position), why and since when."""

    skipped: int
    stopped_error: str | None = None
    stopped_event_id: Any = None
    stopped_position: int | None = None
    stopped_at: Any = None


class LogSpan(NamedTuple):
    """The next events to apply: after ``start`` up to and including ``end``, how many
    they are and their event types."""

    start: Position
    end: Position
    events: int
    types: frozenset[str]

    @property
    def bounds(self) -> Span:
        """The span as a handler takes it: ``(start_tx, start_pos, end_tx, end_pos)``."""
        return (*self.start, *self.end)

    def concerns(self, projection: Projection) -> bool:
        """Whether the span holds anything for ``projection`` to apply."""
        return not self.types.isdisjoint(projection.event_types)


async def next_span(conn: asyncpg.Connection, after: Position, limit: int) -> LogSpan | None:
    """The next commit-safe span after ``after`` (at most ``limit`` events); None if none."""
    row = await conn.fetchrow(_SPAN_END, after.tx_id, after.position, limit)
    if row is None:
        return None
    return LogSpan(after, Position(row["tx_id"], row["position"]), row["n"], frozenset(row["types"]))


async def any_after(conn: asyncpg.Connection, after: Position) -> bool:
    """Whether an event below the horizon follows ``after``."""
    return bool(await conn.fetchval(_ANY_AFTER, after.tx_id, after.position))


async def ensure(conn: asyncpg.Connection, projection: Projection) -> tuple[int, Position]:
    """The projection's (version, checkpoint), creating a row at the origin if it has none."""
    declaration = projection.declaration
    await conn.execute(_ENSURE, projection.name, projection.version,
                       declaration.checksum() if declaration else None,
                       list(projection.tables) if declaration else None)
    row = await conn.fetchrow(_READ, projection.name)
    return row["version"], Position(row["tx_id"], row["position"])


async def apply_next_batches(
    conn: asyncpg.Connection,
    projections: Sequence[Projection],
    limit: int,
    budget: guard.Budget | None = None,
) -> dict[str, guard.Outcome]:
    """Apply the next batch of at most ``limit`` events to each of ``projections`` (live
    tables) and advance each checkpoint by compare-and-set, all in one transaction.

    Projections at the same checkpoint (the usual case) share one batch, so the log's
    batch end is looked up once and the whole pass commits once rather than once per
    projection. Each projection applies in a savepoint of its own (``guard.apply_span``):
    one that fails rolls back alone, an event it cannot read is skipped and recorded or
    stops it (its ``on_error``), and the others commit. A stopped projection (its
    checkpoint row says so) is not applied. The checkpoint rows are locked first, in name
    order (the order a rebuild's swap locks them in, so the two cannot deadlock): two
    runners never apply the same batch, and a swap waits for this pass (or this pass for
    the swap). Returns, per projection, its outcome (how many events it passed, its
    checkpoint after them, what it skipped, stopped at or failed on). Raises
    ``StaleCheckpoint`` (naming the projection) if one has no checkpoint of its version;
    nothing is applied then.
    """
    budget = budget or guard.Budget()
    done: dict[str, guard.Outcome] = {}
    async with conn.transaction():
        rows = await conn.fetch(
            _LOCK, [p.name for p in projections], [p.version for p in projections])
        held = {r["name"]: r for r in rows}
        starts: dict[Position, list[Projection]] = {}
        for p in projections:  # the caller's order
            if p.name not in held:
                raise StaleCheckpoint(
                    p.name, f"projection {p.name} v{p.version} has no checkpoint of that "
                    "version (another version of crashlog rebuilt it?)")
            row = held[p.name]
            start = Position(row["tx_id"], row["position"])
            if row["stopped_at"] is not None:
                done[p.name] = guard.Outcome(start, 0, stopped=_stop_of(row))
                continue
            starts.setdefault(start, []).append(p)
        moves = []
        for start, group in sorted(starts.items()):
            span = await next_span(conn, start, limit)
            for p in group:
                if span is None:
                    outcome = guard.Outcome(start, 0)
                elif span.concerns(p):
                    outcome = await guard.apply_span(
                        conn, p, p.apply, p.live_tables(), start, span.end, span.events, budget)
                else:  # its checkpoint just moves past the span
                    outcome = guard.Outcome(span.end, span.events)
                done[p.name] = outcome = attrs.evolve(outcome, end=Position(*outcome.end))
                if outcome.end != start:
                    moves.append((p.name, *start, *outcome.end, outcome.passed))
                if outcome.stopped is not None:
                    await conn.execute(_STOP, p.name, outcome.stopped.error,
                                       outcome.stopped.event_id, outcome.stopped.position)
        if moves:
            status = await conn.execute(_ADVANCE, *map(list, zip(*moves, strict=True)))
            if status != f"UPDATE {len(moves)}":  # cannot happen while the row locks hold
                raise StaleCheckpoint(moves[0][0], "a checkpoint moved during a batch")
    return done


def _stop_of(row: asyncpg.Record) -> guard.Failed:
    return guard.Failed(row["stopped_event_id"], row["stopped_tx_id"] or 0,
                        row["stopped_position"], row["stopped_error"], None)


async def known(conn: asyncpg.Connection, builtin: Sequence[str]) -> list[str]:
    """``builtin``, then every other projection with a checkpoint (a user's, run here or by
    a runner elsewhere), listed from the database."""
    listed = [r["name"] for r in await conn.fetch(_NAMES)]
    return [*builtin, *(n for n in listed if n not in builtin)]


async def stopped(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every stopped projection's checkpoint row (name, stopped_error, stopped_event_id,
    stopped_position, stopped_at), listed from the database, in name order."""
    return await conn.fetch(_STOPPED)


async def states(conn: asyncpg.Connection, names: Sequence[str]) -> dict[str, State]:
    """Per projection (``names`` first, then any other with a checkpoint): its ``State``."""
    rows = await conn.fetch(_STATES, list(names))
    return {r["name"]: State(int(r["skipped"]), r["stopped_error"], r["stopped_event_id"],
                             r["stopped_position"], r["stopped_at"]) for r in rows}


async def unprojected(conn: asyncpg.Connection, names: Sequence[str], before_xid: int) -> int:
    """Events of transactions below ``before_xid`` that a projection of ``names`` lacks."""
    return int(await conn.fetchval(_UNPROJECTED, before_xid, list(names)))


async def lag(conn: asyncpg.Connection, names: Sequence[str]) -> dict[str, tuple[int, float]]:
    """Per projection: events in the log it has not applied, and the oldest one's age (s)."""
    rows = await conn.fetch(_LAG, list(names))
    return {r["name"]: (int(r["events"]), float(r["seconds"])) for r in rows}
