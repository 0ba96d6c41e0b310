"""How far the projections have got: lag, trouble, and waiting for them (``Logger.sync``).

Every projection with a checkpoint is counted — the built-ins, and users' projections run
here or by a runner elsewhere — listed from the database (``checkpoints.known``).
``lag_listing`` is what ``crashlog project --lag`` shows: those, and each old name of one
(``ALIASES``: ``round_outcomes`` is part of ``rounds``) with that projection's figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import asyncpg
import attrs

from crashlog.errors import NotFlushed, ProjectionStopped
from crashlog.projections import NAMES, aliases_of, checkpoints
from crashlog.projections.checkpoints import State


async def lag(conn: asyncpg.Connection) -> dict[str, tuple[int, float]]:
    """Per projection (the built-ins, then any other with a checkpoint, listed from the
    database): (events in the log it has not applied yet, age in seconds of the oldest)."""
    return await checkpoints.lag(conn, await checkpoints.known(conn, NAMES))


async def states(conn: asyncpg.Connection) -> dict[str, State]:
    """Per projection (the built-ins, then any other with a checkpoint): events it skipped
    and, if it stopped, where and why (``checkpoints.State``)."""
    return await checkpoints.states(conn, NAMES)


@attrs.frozen
class ProjectionLag:
    """One line of ``crashlog project --lag``: a projection, or an old name of one.

    ``events_behind`` and ``oldest_waiting_seconds`` are None when only ``state`` is known
    (``states`` lists a projection ``lag`` does not); ``state`` None: nothing skipped or
    stopped is recorded. An old name has ``alias_of`` set to the projection it is part of
    now, and that projection's figures and state.
    """

    name: str
    events_behind: int | None
    oldest_waiting_seconds: float | None
    state: State | None
    alias_of: str | None = None

    @property
    def label(self) -> str:
        """The name as shown: ``"round_outcomes (part of rounds)"`` for an old name."""
        return f"{self.name} (part of {self.alias_of})" if self.alias_of else self.name


async def lag_listing(conn: asyncpg.Connection) -> list[ProjectionLag]:
    """Every projection ``lag`` and ``states`` list, in their order, each followed by its old
    names (``ALIASES``) carrying its figures, so a script looking for an old name finds it."""
    behind, known = await lag(conn), await states(conn)
    names = list(dict.fromkeys([*behind, *known]))
    listing = []
    for name in names:
        events, seconds = behind.get(name, (None, None))
        row = ProjectionLag(name, events, seconds, known.get(name))
        # A name that is a projection's own is never shadowed by an alias of another.
        listing += [row, *(attrs.evolve(row, name=old, alias_of=name)
                           for old in aliases_of(name) if old not in names)]
    return listing


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
