"""Reading the log in commit-safe order, and each projection's checkpoint in it.

Only events with ``tx_id < pg_snapshot_xmin(pg_current_snapshot())`` are read: every
transaction below that horizon has ended, so no event can later appear before the
checkpoint. A checkpoint moves only by compare-and-set, in the transaction that
applied the events it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from crashlog.projections.base import Projection, Span


class Position(NamedTuple):
    """A place in the log, in reading order."""

    tx_id: int
    position: int


ORIGIN = Position(0, 0)

# The last event of the next batch after $1/$2 (at most $3 events), and how many it holds.
_BATCH_END = """
WITH b AS (
    SELECT tx_id, position FROM crashlog.events
    WHERE (tx_id, position) > ($1::xid8, $2::bigint)
      AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx_id, position
    LIMIT $3
)
SELECT (SELECT count(*) FROM b) AS n, tx_id, position
FROM b ORDER BY tx_id DESC, position DESC LIMIT 1
"""

_ANY_AFTER = """
SELECT EXISTS (
    SELECT 1 FROM crashlog.events
    WHERE (tx_id, position) > ($1::xid8, $2::bigint)
      AND tx_id < pg_snapshot_xmin(pg_current_snapshot()))
"""

_ENSURE = """
INSERT INTO crashlog.projection_checkpoints (name, version) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
"""

_READ = "SELECT version, tx_id, position FROM crashlog.projection_checkpoints WHERE name = $1"

_LOCK = """
SELECT tx_id, position FROM crashlog.projection_checkpoints
WHERE name = $1 AND version = $2 FOR UPDATE
"""

_ADVANCE = """
UPDATE crashlog.projection_checkpoints
SET tx_id = $4::xid8, position = $5, events_applied = events_applied + $6, updated_at = now()
WHERE name = $1 AND tx_id = $2::xid8 AND position = $3
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


class StaleCheckpoint(Exception):
    """The checkpoint moved under this runner, or its version is not this code's."""


async def next_batch(
    conn: asyncpg.Connection, after: Position, limit: int
) -> tuple[int, Position] | None:
    """How many events the next batch after ``after`` holds and where it ends; None if none."""
    row = await conn.fetchrow(_BATCH_END, after.tx_id, after.position, limit)
    return None if row is None else (row["n"], Position(row["tx_id"], row["position"]))


async def any_after(conn: asyncpg.Connection, after: Position) -> bool:
    """Whether an event below the horizon follows ``after``."""
    return bool(await conn.fetchval(_ANY_AFTER, after.tx_id, after.position))


async def ensure(conn: asyncpg.Connection, projection: Projection) -> tuple[int, Position]:
    """The projection's (version, checkpoint), creating a row at the origin if it has none."""
    await conn.execute(_ENSURE, projection.name, projection.version)
    row = await conn.fetchrow(_READ, projection.name)
    return row["version"], Position(row["tx_id"], row["position"])


async def apply_next_batch(
    conn: asyncpg.Connection, projection: Projection, limit: int
) -> tuple[int, Position]:
    """Apply the next batch to the live tables and advance the checkpoint, in one transaction.

    The checkpoint row is locked first, so two runners never apply the same batch, and a
    rebuild's swap waits for this batch (or this batch for the swap). Returns how many
    events were applied and the checkpoint after them.
    """
    async with conn.transaction():
        row = await conn.fetchrow(_LOCK, projection.name, projection.version)
        if row is None:
            raise StaleCheckpoint(
                f"projection {projection.name} v{projection.version} has no checkpoint of "
                "that version (another version of crashlog rebuilt it?)"
            )
        start = Position(row["tx_id"], row["position"])
        batch = await next_batch(conn, start, limit)
        if batch is None:
            return 0, start
        count, end = batch
        span: Span = (*start, *end)
        await projection.apply(conn, projection.live_tables(), span)
        status = await conn.execute(_ADVANCE, projection.name, *start, *end, count)
        if status != "UPDATE 1":  # cannot happen while the row lock holds; refuse to guess
            raise StaleCheckpoint(f"checkpoint of {projection.name} moved during a batch")
    return count, end


async def unprojected(conn: asyncpg.Connection, names: Sequence[str], before_xid: int) -> int:
    """Events of transactions below ``before_xid`` that a projection of ``names`` lacks."""
    return int(await conn.fetchval(_UNPROJECTED, before_xid, list(names)))


async def lag(conn: asyncpg.Connection, names: Sequence[str]) -> dict[str, tuple[int, float]]:
    """Per projection: events in the log it has not applied, and the oldest one's age (s)."""
    rows = await conn.fetch(_LAG, list(names))
    return {r["name"]: (int(r["events"]), float(r["seconds"])) for r in rows}
