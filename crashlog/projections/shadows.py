"""Shadow tables a rebuild left behind: found, named for ``doctor``, and dropped.

A rebuild fills shadow tables (``<table>__rebuild``) and swaps them in; one that is killed
midway leaves them behind, holding disk. ``shadows`` lists them (a read-only look) and
``drop_orphan_shadows`` drops those no rebuild holds now (a runner does it as it starts).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
import attrs

from crashlog.projections import checkpoints, leases
from crashlog.projections.base import Projection, shadow_name

log = logging.getLogger("crashlog.projections")


# Shadow tables in schema crashlog, with their size.
_SHADOWS = """
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'crashlog' AND c.relkind IN ('r', 'p') AND c.relname LIKE '%\\_\\_rebuild'
ORDER BY c.relname
"""

@attrs.frozen
class Shadow:
    """A shadow table found in schema crashlog: its name, the projection it belongs to
    (None if no known projection owns its table), its size, and whether a rebuild holds it."""

    table: str
    projection: str | None
    bytes: int
    rebuilding: bool


async def shadows(conn: asyncpg.Connection, projections: Sequence[Projection]) -> list[Shadow]:
    """Every shadow table there is now (a read-only look, for ``doctor``)."""
    owners = {shadow_name(t): p.name for p in projections for t in p.tables}
    held = await leases.held(conn, leases.Lease.REBUILD)
    found = []
    for row in await conn.fetch(_SHADOWS):
        name = owners.get(row["name"])
        busy = name is not None and name in held
        found.append(Shadow(row["name"], name, int(row["bytes"]), busy))
    return found


async def drop_orphan_shadows(
    conn: asyncpg.Connection, projections: Sequence[Projection]
) -> list[str]:
    """Drop the shadows of ``projections`` that no rebuild holds (left by a rebuild that was
    killed), taking each projection's rebuild lock meanwhile so that no rebuild starts on
    them (its rebuild lease); returns the tables dropped. One that cannot be dropped (another role's) is logged
    and left for ``doctor`` to name."""
    dropped = []
    for shadow in await shadows(conn, projections):
        if shadow.projection is None or shadow.rebuilding:
            continue
        name = [shadow.projection]
        owner = next(p for p in projections if p.name == shadow.projection)
        await checkpoints.ensure(conn, owner)  # a lease lives on the checkpoint row
        if not await leases.take(conn, name, leases.Lease.REBUILD):
            continue  # a rebuild started meanwhile: the shadow is its own
        try:
            await conn.execute(f'DROP TABLE IF EXISTS crashlog."{shadow.table}"')
            dropped.append(shadow.table)
            log.warning("crashlog projections: dropped crashlog.%s (%s bytes), left by a "
                        "rebuild of %s that did not finish", shadow.table, f"{shadow.bytes:,}",
                        shadow.projection)
        except asyncpg.InsufficientPrivilegeError as error:
            log.warning("crashlog projections: cannot drop crashlog.%s, left by a rebuild "
                        "that did not finish: %s", shadow.table, error)
        finally:
            await leases.release(conn, name, leases.Lease.REBUILD)
    return dropped
