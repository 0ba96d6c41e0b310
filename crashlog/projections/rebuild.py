"""Rebuild read tables from the log, into shadow tables, then swap them in.

Readers keep seeing the old tables, complete, while the shadows fill from the origin
of the log; the swap (drop old, rename shadow, rename its indexes to the old names,
set the checkpoint) is one short transaction. Secondary indexes, and the unique keys of
tables with one row per event, are built after the bulk load, which is faster than
maintaining them row by row. The live runner, if one
is running, keeps applying to the old tables meanwhile; the swap locks the
checkpoint rows first, so it happens between two of its batches and the shadows
take over exactly where the live tables were (or further).

One process rebuilds a projection at a time: it holds the projection's rebuild lease
(``leases.Lease.REBUILD``, on its checkpoint row), which only the projector can take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import zlib
from collections.abc import AsyncIterator, Sequence

import asyncpg

from crashlog import store
from crashlog.database import CONNECTION_FAILURES, open_connection
from crashlog.errors import RebuildBusy, RebuildRefused
from crashlog.projections import access, checkpoints, chunks, declared, filling, guard, leases
from crashlog.projections.base import IN_SPAN, Handler, Projection, shadow_name
from crashlog.projections.checkpoints import Position
from crashlog.projections.filling import REBUILD_BATCH, Deferred, Progress, refuse_unless_through
from crashlog.projections.server_settings import REBUILD_SETTINGS

log = logging.getLogger("crashlog.projections")

#: Connections a rebuild fills shadow tables with, side by side.
REBUILD_CONNECTIONS = 2

_INDEXES = """
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition, i.indisunique AS is_unique,
       con.conname AS constraint_name, pg_get_constraintdef(con.oid) AS constraint_definition
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
LEFT JOIN pg_constraint con
       ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')
WHERE i.indrelid = $1::regclass
ORDER BY c.relname
"""
# "CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING ..." -> "[UNIQUE ]USING ..."
_INDEX_HEAD = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ ")


def lock_id(name: str) -> int:
    """A stable int4 for a projection name (once the advisory lock object id; kept for callers)."""
    return zlib.crc32(name.encode()) - 2**31


def _shape(definition: str) -> str:
    """An index definition without its own and its table's name, to pair old and shadow."""
    return _INDEX_HEAD.sub(lambda m: m.group(1) or "", definition)


async def _indexes(conn: asyncpg.Connection, table: str) -> list[asyncpg.Record]:
    return await conn.fetch(_INDEXES, table)


async def rebuild_with_keeper(
    dsn: str,
    projections: Sequence[Projection],
    *,
    progress: Progress | None = None,
    connections: int = REBUILD_CONNECTIONS,
    concurrent_indexes: bool = False,
) -> None:
    """``rebuild_projections`` of these projections, on ``connections`` connections, one more
    that holds their rebuild leases and beats their heartbeat, and one that cuts the log in
    spans meanwhile (all opened side by side)."""
    wanted = 2 + max(1, min(connections, len(projections)))
    opened = await asyncio.gather(*(
        open_connection(dsn, init=store.init_connection, server_settings=REBUILD_SETTINGS)
        for _ in range(wanted)), return_exceptions=True)
    conns = [c for c in opened if isinstance(c, asyncpg.Connection)]
    try:
        for failure in opened:
            if isinstance(failure, BaseException):
                raise failure
        keeper, planner, first, *helpers = conns
        await rebuild_projections(first, projections, progress=progress, helpers=helpers, keeper=keeper,
                                  planner=planner, concurrent_indexes=concurrent_indexes)
    finally:
        for conn in conns:
            # A lost connection's error is not the one to report: the rebuild's is.
            with contextlib.suppress(*CONNECTION_FAILURES):
                await conn.close()


async def rebuild_projections(
    conn: asyncpg.Connection,
    projections: Sequence[Projection],
    *,
    progress: Progress | None = None,
    batch_size: int = REBUILD_BATCH,
    helpers: Sequence[asyncpg.Connection] = (),
    keeper: asyncpg.Connection | None = None,
    planner: asyncpg.Connection | None = None,
    concurrent_indexes: bool = False,
) -> None:
    """Rebuild ``projections`` from the origin of the log and swap the results in.

    With ``helpers`` (more connections to the same database), ``conn`` and they fill the
    projections' shadows side by side, the heaviest projections first, a table's indexes
    side by side (``filling``); the swap is still one transaction on ``conn``.

    Raises ``RebuildRefused`` if another process is rebuilding one of them (it holds their
    rebuild lease), a user's view depends on one of their tables
    (naming it), the role running it cannot give the rebuilt tables their owner and grants
    (naming the role to use), or a projection with ``on_error="stop"`` meets an event it
    cannot read. Events a projection with ``on_error="skip"`` cannot read are recorded in
    ``crashlog.projection_errors``.

    ``keeper``, a spare connection, holds the rebuild leases and beats their heartbeat while
    the rebuild runs (``runner.rebuild`` gives one). Without it ``conn`` holds them without a
    heartbeat, so a rebuild longer than ``leases.LEASE_TIMEOUT`` may be taken over.
    ``planner``, another spare one, cuts the log in spans while the fills begin.

    ``concurrent_indexes``: build the indexes left for after the load with CREATE INDEX
    CONCURRENTLY, which does not hold the live runners' reading horizon back while it runs
    (a plain build does), at about the same cost; but it waits for every transaction of the
    database older than itself, so one left open (an idle notebook) stalls the rebuild.
    """
    # Before the leases: a role that cannot give the tables away may not take a lease either,
    # and this names the role to use instead.
    await access.check_rebuildable(conn, await declared.existing(conn, projections))
    holder = (keeper or conn).get_server_pid()
    async with _rebuild_leases(projections, conn, keeper):
        deferred, read = await _create_shadows(conn, projections)
        try:
            total = await _estimate_events(conn)
            tally = filling.Tally(progress, projections, total)
            tally.tell()
            spans = filling.Spans(batch_size)
            work = filling.Steps([(p, filling.steps(p, spans, read, deferred[p.name], tally.job(p), total,
                                                    concurrently=concurrent_indexes))
                                  for p in projections])
            if planner is not None:  # it cuts the log in spans while the others start filling
                await filling.side_by_side([spans.plan(planner), work.run([conn, *helpers])])
            else:
                await spans.plan(conn)
                await work.run([conn, *helpers])
            done = spans.events + await _swap(conn, projections, spans.end, holder)
            if progress:
                progress(done, done)
        except BaseException:
            # Shadows are this rebuild's only while it holds the leases: after losing them,
            # they are another rebuild's, which must not lose them.
            if await _holds_leases(conn, projections, holder):
                await _drop_shadows(conn, projections)
            raise


async def _estimate_events(conn: asyncpg.Connection) -> int:
    """About how many events the log holds: the planner's count, else a count."""
    counted = await chunks.planned_rows(conn, "crashlog.events")
    if counted is None:
        counted = int(await conn.fetchval("SELECT count(*) FROM crashlog.events"))
    return counted


_HOLDS = """
SELECT count(*) FROM crashlog.projection_checkpoints WHERE name = ANY($1::text[]) AND rebuild_pid = $2
"""


async def _holds_leases(conn: asyncpg.Connection, projections: Sequence[Projection], holder: int) -> bool:
    """Whether backend ``holder`` still holds the rebuild lease of every one of ``projections``
    (False too when that cannot be told, e.g. the connection is lost)."""
    try:
        held = await conn.fetchval(_HOLDS, [p.name for p in projections], holder)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return bool(held == len(projections))


@contextlib.asynccontextmanager
async def _rebuild_leases(
    projections: Sequence[Projection], conn: asyncpg.Connection, keeper: asyncpg.Connection | None
) -> AsyncIterator[None]:
    """Hold the rebuild leases of ``projections`` (on ``keeper``, beating, else on ``conn``)
    while the body runs; ``RebuildRefused`` naming the holder if one is held elsewhere."""
    holder = keeper or conn
    names = [p.name for p in projections]
    for p in projections:
        await checkpoints.ensure(holder, p)  # a lease lives on the checkpoint row
    taken = await leases.take(holder, names, leases.Lease.REBUILD, wait=True)
    try:
        if taken != set(names):
            busy = [n for n in names if n not in taken]
            who = await leases.holders(holder, busy, leases.Lease.REBUILD)
            raise RebuildBusy(f"projection {busy[0]} is already being rebuilt elsewhere ({who})")
        if keeper is None:
            yield
        else:
            async with leases.kept(keeper, names, leases.Lease.REBUILD):
                yield
    finally:
        # A lost connection takes its leases with it; its error is the one to report.
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await leases.release(holder, sorted(taken), leases.Lease.REBUILD)


async def _create_shadows(
    conn: asyncpg.Connection, projections: Sequence[Projection]
) -> tuple[dict[str, list[Deferred]], set[str]]:
    """Empty copies of each table, with the indexes its handler needs while it fills: the
    unique keys its upserts name (not those of ``one_row_per_event`` or ``derived`` tables).
    Returns, per projection, the other indexes, to build after the load; and the shadows
    that keep an index, which their handlers read (the others they only append to)."""
    await _drop_shadows(conn, projections)
    deferred: dict[str, list[Deferred]] = {}
    read: set[str] = set()
    for p in projections:
        deferred[p.name] = []
        if p.declaration is not None:  # a user's: made from its (new) declaration
            read.update(await declared.create_shadows(conn, p))
            continue
        for table, shadow in p.shadow_tables().items():
            # Logged from the start: an unlogged shadow made logged before the swap is
            # rewritten whole, with its kept indexes, which costs more than the WAL saved.
            # Without indexes: each is built under a name of the rebuild's own (the swap
            # gives it the live one), now if the handler needs it, else after the load. With
            # the live table's storage parameters (a fillfactor shapes the pages as they
            # fill), but out of autovacuum's way (its vacuum would take a core from the
            # rebuild, and its analysis comes from the rebuild); the swap hands it back.
            await conn.execute(
                f"CREATE TABLE {shadow} (LIKE crashlog.{table} INCLUDING ALL EXCLUDING INDEXES)")
            await _copy_storage(conn, f"crashlog.{table}", shadow)
            await conn.execute(f"ALTER TABLE {shadow} SET (autovacuum_enabled = false)")
            for n, index in enumerate(await _indexes(conn, f"crashlog.{table}")):
                made = Deferred(shadow, f"{shadow_name(table)}_{n}", _shape(index["definition"]),
                                index["constraint_definition"])
                if index["is_unique"] and table not in (*p.one_row_per_event, *p.derived):
                    read.add(shadow)  # kept: an upsert names it
                    for statement in filter(None, (made.build(), made.attach())):
                        await conn.execute(statement)
                else:
                    deferred[p.name].append(made)
    return deferred, read


# The storage parameters of table $1 (``pg_class.reloptions``: the server's own names and
# checked values) as "name = 'value', ..." for ALTER TABLE ... SET (...); NULL for none.
_STORAGE = """
SELECT string_agg(format('%s = %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1)), ', ')
FROM pg_class c, unnest(c.reloptions) AS o
WHERE c.oid = $1::regclass
"""


async def _copy_storage(conn: asyncpg.Connection, table: str, shadow: str) -> None:
    """Give ``shadow`` the storage parameters ``table`` has (a fillfactor, autovacuum settings)."""
    options = await conn.fetchval(_STORAGE, table)
    if options:
        await conn.execute(f"ALTER TABLE {shadow} SET ({options})")


async def _drop_shadows(conn: asyncpg.Connection, projections: Sequence[Projection]) -> None:
    for p in projections:
        for shadow in p.shadow_tables().values():
            await conn.execute(f"DROP TABLE IF EXISTS {shadow}")


async def _swap(
    conn: asyncpg.Connection, projections: Sequence[Projection], filled_to: Position, holder: int,
) -> int:
    """In one transaction: catch each shadow up to its live checkpoint, swap, set checkpoints.

    Refused (``RebuildRefused``, nothing swapped) unless backend ``holder`` still holds every
    projection's rebuild lease: a rebuild whose lease was taken over (its keeper's connection
    lost) may be looking at another rebuild's shadows. Returns how many events the catching
    up covered (the most of any projection)."""
    ordered = sorted(projections, key=lambda p: p.name)  # one lock order for every swapper
    for p in ordered:
        await checkpoints.ensure(conn, p)
    async with conn.transaction():
        # Between two batches of the live runner: it locks the same row first.
        await conn.execute("SET LOCAL lock_timeout = '60s'")
        final, caught_up, budget = {}, 0, guard.Budget()
        obsolete: dict[str, list[str]] = {}  # a user's tables its new version no longer has
        for p in ordered:
            row = await conn.fetchrow(
                "SELECT tx_id, position, tables, rebuild_pid FROM crashlog.projection_checkpoints"
                " WHERE name = $1 FOR UPDATE",
                p.name,
            )
            if row["rebuild_pid"] != holder:
                raise RebuildRefused(
                    f"the rebuild of {p.name} lost its rebuild lease (its heartbeat stopped) and"
                    " another process took it: nothing was swapped; rebuild again")
            obsolete[p.name] = [t for t in row["tables"] or () if t not in p.tables]
            live, cursor = Position(row["tx_id"], row["position"]), filled_to
            if live > cursor:  # the live tables are further on: bring the shadow there too
                await _catch_up(conn, p, cursor, live, budget)
                caught_up = max(caught_up, await _count_between(conn, cursor, live))
            final[p.name] = max(live, cursor)
        for p in ordered:
            if p.declaration is not None:
                await declared.swap(conn, p, obsolete[p.name])
            for table in p.tables if p.declaration is None else ():
                await _swap_table(conn, table)
            await conn.execute(
                "UPDATE crashlog.projection_checkpoints SET version = $2, tx_id = $3::xid8,"
                " position = $4, updated_at = now(), stopped_error = NULL,"
                " stopped_event_id = NULL, stopped_position = NULL, stopped_at = NULL,"
                " declaration = $5, tables = $6"
                " WHERE name = $1",
                p.name, p.version, *final[p.name], *declared.remembered(p))
    return caught_up


async def _catch_up(
    conn: asyncpg.Connection, p: Projection, cursor: Position, live: Position,
    budget: guard.Budget,
) -> None:
    """Apply (cursor, live] to ``p``'s shadows inside the swap, guarded as the fill is."""
    apply: Handler = p.apply
    outcome = await guard.apply_span(conn, p, apply, p.shadow_tables(), cursor, live, 0, budget)
    refuse_unless_through(p, outcome)
    if outcome.end != live:
        raise RebuildRefused(
            f"projection {p.name}: too many unreadable events arrived during its swap; "
            "its rebuild is dropped; rebuild it again")


async def _count_between(conn: asyncpg.Connection, lo: Position, hi: Position) -> int:
    return int(await conn.fetchval(_COUNT_IN_SPAN, *lo, *hi))


_COUNT_IN_SPAN = f"SELECT count(*) FROM {IN_SPAN}"


_COLUMNS = """
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum
"""


async def _swap_table(conn: asyncpg.Connection, table: str) -> None:
    """Replace crashlog.table by its shadow, giving the shadow's indexes the old names.

    Raises ``RebuildRefused`` if the table's columns or indexes changed since the shadow was
    made (a migration ran meanwhile): swapping would undo the migration.
    """
    shadow = shadow_name(table)
    old = await _indexes(conn, f"crashlog.{table}")
    old_names = {_shape(i["definition"]): i["name"] for i in old}
    new_indexes = await _indexes(conn, f"crashlog.{shadow}")
    same_columns = [tuple(r) for r in await conn.fetch(_COLUMNS, f"crashlog.{table}")] == [
        tuple(r) for r in await conn.fetch(_COLUMNS, f"crashlog.{shadow}")]
    if not same_columns or set(old_names) != {_shape(i["definition"]) for i in new_indexes}:
        raise RebuildRefused(
            f"crashlog.{table} changed while it was being rebuilt (a migration?): "
            "its rebuild is dropped; rebuild it again")
    await access.check_rebuildable(conn, [f"crashlog.{table}"])  # a view made meanwhile
    await conn.execute(f"ALTER TABLE crashlog.{shadow} RESET (autovacuum_enabled)")
    await _copy_storage(conn, f"crashlog.{table}", f"crashlog.{shadow}")  # and the live one's
    await access.copy_access(conn, f"crashlog.{table}", f"crashlog.{shadow}")
    views = await access.own_views(conn, f"crashlog.{table}")
    if views:  # crashlog's own views follow the old table away, then come back to the new one
        await conn.execute(f"ALTER TABLE crashlog.{table} RENAME TO {shadow_name(table + '_old')}")
        await conn.execute(f"ALTER TABLE crashlog.{shadow} RENAME TO {table}")
        await access.replace_views(conn, views)
        await conn.execute(f"DROP TABLE crashlog.{shadow_name(table + '_old')}")
    else:
        await conn.execute(f"DROP TABLE crashlog.{table}")
        await conn.execute(f"ALTER TABLE crashlog.{shadow} RENAME TO {table}")
    for index in new_indexes:
        target = old_names.get(_shape(index["definition"]))
        if target and target != index["name"]:
            await conn.execute(f'ALTER INDEX crashlog."{index["name"]}" RENAME TO "{target}"')
