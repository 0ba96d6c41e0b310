"""Leases on the projections' checkpoint rows: which runner applies a projection, and which
process rebuilds it.

A lease is two columns of ``crashlog.projection_checkpoints`` (migration 012): the holder's
backend pid and a heartbeat. ``take`` is one UPDATE that succeeds only when the row has no
holder, when its holder's backend is gone from ``pg_stat_activity``, or when its heartbeat
is older than ``LEASE_TIMEOUT``. Only a role with UPDATE on that table (the projector, an
administrator) can take one: an advisory key, which any role can take, let any login stall
every projection.

No row lock is held between statements: a lock held across batches would keep a
transaction open, and an open transaction holds back the reading horizon of every reader
of the log. So a holder refreshes its heartbeat (``refresh``) at least every
``HEARTBEAT_INTERVAL``; one that falls silent for ``LEASE_TIMEOUT`` may be taken over, and
learns so at its next refresh. The compare-and-set of each batch on the checkpoint stays
the guard of correctness: a holder that has lost its lease and applies one more batch
before it notices is refused by it.

Promises:
- At any moment at most one live, heartbeating backend holds a projection's lease of a kind.
- ``take`` waits on no row lock unless asked (a pass or a swap holding the row makes it
  skip that row this time), so a runner standing by never stalls.
- ``kept`` refreshes a lease from a connection of its own while long work runs elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Sequence

import asyncpg

log = logging.getLogger("crashlog.projections")

#: Seconds without a heartbeat after which a lease may be taken from a holder whose backend
#: is still there (a hung process, a frozen machine, a half-open connection).
LEASE_TIMEOUT = 30.0
#: Seconds between a holder's heartbeats (well under ``LEASE_TIMEOUT``).
HEARTBEAT_INTERVAL = 5.0


class Lease(enum.Enum):
    """The two leases of a projection; the value is its columns' prefix."""

    APPLY = "lease"
    REBUILD = "rebuild"


# The column names come from the enum above, never from input.
_TAKE = """
WITH free AS (
    SELECT c.name FROM crashlog.projection_checkpoints c
    WHERE c.name = ANY($1::text[])
      AND (c.{k}_pid IS NULL OR c.{k}_pid = $2
           OR c.{k}_heartbeat < clock_timestamp() - make_interval(secs => $3)
           OR NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = c.{k}_pid))
    ORDER BY c.name FOR UPDATE {wait}
)
UPDATE crashlog.projection_checkpoints c SET {k}_pid = $2, {k}_heartbeat = clock_timestamp()
FROM free WHERE c.name = free.name
RETURNING c.name
"""

# A heartbeat skips a row another transaction has locked (a pass, a swap): waiting there
# could deadlock with it, and the next beat comes soon. Still held: the pid is the holder's.
_REFRESH = """
WITH mine AS (
    SELECT name FROM crashlog.projection_checkpoints
    WHERE name = ANY($1::text[]) AND {k}_pid = $2
    ORDER BY name FOR UPDATE SKIP LOCKED
), beat AS (
    UPDATE crashlog.projection_checkpoints c SET {k}_heartbeat = clock_timestamp()
    FROM mine WHERE c.name = mine.name
)
SELECT name FROM crashlog.projection_checkpoints WHERE name = ANY($1::text[]) AND {k}_pid = $2
"""

# Rows locked in name order, the order a pass and a swap lock them in: no deadlock.
_RELEASE = """
WITH mine AS (
    SELECT name FROM crashlog.projection_checkpoints
    WHERE name = ANY($1::text[]) AND {k}_pid = $2
    ORDER BY name FOR UPDATE
)
UPDATE crashlog.projection_checkpoints c SET {k}_pid = NULL, {k}_heartbeat = NULL
FROM mine WHERE c.name = mine.name
"""

_HOLDERS = """
SELECT c.name, c.{k}_pid AS pid, a.usename AS role,
       extract(epoch FROM clock_timestamp() - c.{k}_heartbeat)::float8 AS silent
FROM crashlog.projection_checkpoints c LEFT JOIN pg_stat_activity a ON a.pid = c.{k}_pid
WHERE c.name = ANY($1::text[]) AND c.{k}_pid IS NOT NULL
ORDER BY c.name
"""


# Names whose lease of a kind a live, heartbeating backend holds now.
_HELD = """
SELECT c.name FROM crashlog.projection_checkpoints c
WHERE c.{k}_pid IS NOT NULL
  AND c.{k}_heartbeat >= clock_timestamp() - make_interval(secs => $1)
  AND EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = c.{k}_pid)
"""


async def take(
    conn: asyncpg.Connection, names: Sequence[str], kind: Lease, holder: int | None = None,
    *, wait: bool = False,
) -> set[str]:
    """Take the ``kind`` leases of ``names`` that are free, for ``holder`` (a backend pid;
    default ``conn``'s). Returns the names now held (those already held by ``holder``
    included). A name without a checkpoint row is never taken: ``checkpoints.ensure`` first.

    A row locked by a transaction (a pass, a swap) is skipped, unless ``wait``: then the
    take waits for that transaction (rows locked in name order, as a pass and a swap do)."""
    if not names:
        return set()
    statement = _TAKE.format(k=kind.value, wait="" if wait else "SKIP LOCKED")
    rows = await conn.fetch(statement, list(names), _holder(conn, holder), LEASE_TIMEOUT)
    return {r["name"] for r in rows}


async def refresh(
    conn: asyncpg.Connection, names: Sequence[str], kind: Lease, holder: int | None = None
) -> set[str]:
    """Beat the heart of ``holder``'s leases of ``names``; returns those it still holds (a
    name missing from the answer was taken over: stop working on it)."""
    if not names:
        return set()
    rows = await conn.fetch(_REFRESH.format(k=kind.value), list(names), _holder(conn, holder))
    return {r["name"] for r in rows}


async def release(
    conn: asyncpg.Connection, names: Sequence[str], kind: Lease, holder: int | None = None
) -> None:
    """Give up ``holder``'s leases of ``names`` (those another holds are left alone)."""
    if names:
        await conn.execute(_RELEASE.format(k=kind.value), list(names), _holder(conn, holder))


async def held(conn: asyncpg.Connection, kind: Lease) -> set[str]:
    """The projections whose ``kind`` lease a live, heartbeating backend holds now."""
    rows = await conn.fetch(_HELD.format(k=kind.value), LEASE_TIMEOUT)
    return {r["name"] for r in rows}


async def holders(conn: asyncpg.Connection, names: Sequence[str], kind: Lease) -> str:
    """Who holds the ``kind`` leases of ``names``, for a message: "rounds by pid 123 (role
    x, heartbeat 2 s ago)"."""
    rows = await conn.fetch(_HOLDERS.format(k=kind.value), list(names))
    return ", ".join(
        f"{r['name']} by pid {r['pid']} (role {r['role'] or '?'}, heartbeat {r['silent'] or 0:.0f} s ago)"
        for r in rows) or "nobody"


@contextlib.asynccontextmanager
async def kept(
    keeper: asyncpg.Connection, names: Sequence[str], kind: Lease, holder: int | None = None,
    *, interval: float = HEARTBEAT_INTERVAL,
) -> AsyncIterator[None]:
    """Refresh ``holder``'s leases of ``names`` on ``keeper`` (a connection used for nothing
    else meanwhile) every ``interval`` seconds while the body runs."""
    pid = _holder(keeper, holder)

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                still = await refresh(keeper, names, kind, pid)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
                log.info("crashlog projections: heartbeat of %s failed: %s", ", ".join(names), error)
                return  # the lease goes stale; the work's own checks refuse a late swap
            if set(names) - still:
                log.error("crashlog projections: lost the %s lease of %s", kind.name.lower(),
                          ", ".join(sorted(set(names) - still)))

    task = asyncio.get_running_loop().create_task(beat(), name="crashlog-lease-heartbeat")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _holder(conn: asyncpg.Connection, holder: int | None) -> int:
    return conn.get_server_pid() if holder is None else holder
