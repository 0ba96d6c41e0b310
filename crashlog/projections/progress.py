"""How far the projections have got: lag, trouble, and waiting for them (``Logger.sync``).

Every projection with a checkpoint is counted — the built-ins, and users' projections run
here or by a runner elsewhere — listed from the database (``checkpoints.known``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import asyncpg

from crashlog.errors import NotFlushed, ProjectionStopped
from crashlog.projections import NAMES, checkpoints
from crashlog.projections.checkpoints import State


async def lag(conn: asyncpg.Connection) -> dict[str, tuple[int, float]]:
    """Per projection (the built-ins, then any other with a checkpoint, listed from the
    database): (events in the log it has not applied yet, age in seconds of the oldest)."""
    return await checkpoints.lag(conn, await checkpoints.known(conn, NAMES))


async def states(conn: asyncpg.Connection) -> dict[str, State]:
    """Per projection (the built-ins, then any other with a checkpoint): events it skipped
    and, if it stopped, where and why (``checkpoints.State``)."""
    return await checkpoints.states(conn, NAMES)


async def wait_projected(
    conn: asyncpg.Connection, timeout: float | None, *, poll: float = 0.01,
    also: Sequence[str] = (),
) -> None:
    """Return once every projection has applied every event committed before this call.

    Raises ``NotFlushed`` with the number of events not yet projected after ``timeout``
    seconds. An open transaction anywhere on the server holds the horizon back, and
    with it this wait. ``also``: more projections to wait for (the caller's own, whose
    checkpoint may not exist yet). Raises ``ProjectionStopped`` naming a stopped projection (any
    with a checkpoint, listed from the database) rather than wait for it.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    # Every transaction that committed before now has an id below this snapshot's xmax.
    target = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())")
    # A user's projection, run anywhere, too; ``also``: the caller's own, checkpoint or not.
    names = await checkpoints.known(conn, [*NAMES, *also])
    while True:
        for row in await checkpoints.stopped(conn):
            raise ProjectionStopped(row["name"], row["stopped_error"], row["stopped_event_id"],
                                    row["stopped_position"], row["stopped_at"])
        pending = await checkpoints.unprojected(conn, names, target)
        if pending == 0:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise NotFlushed("sync", timeout or 0, pending, {"unprojected": pending})
        await asyncio.sleep(poll)
        poll = min(poll * 1.5, 0.1)
