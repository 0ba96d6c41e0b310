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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import asyncpg
import attrs

from crashlog.errors import RebuildBusy, RebuildRefused
from crashlog.projections import access, checkpoints, declared, guard, leases
from crashlog.projections.base import IN_SPAN, Handler, Projection, shadow_name, share
from crashlog.projections.checkpoints import ORIGIN, LogSpan, Position

log = logging.getLogger("crashlog.projections")

Progress = Callable[[int, int], None]
T = TypeVar("T")

#: Events per rebuild transaction: large, since the shadow tables have no readers.
REBUILD_BATCH = 50_000
#: Events in the first rebuild batch, applied before the new tables have statistics.
FIRST_BATCH = 1_000

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


async def rebuild_projections(
    conn: asyncpg.Connection,
    projections: Sequence[Projection],
    *,
    progress: Progress | None = None,
    batch_size: int = REBUILD_BATCH,
    helpers: Sequence[asyncpg.Connection] = (),
    keeper: asyncpg.Connection | None = None,
) -> None:
    """Rebuild ``projections`` from the origin of the log and swap the results in.

    With ``helpers`` (more connections to the same database), the projections are shared
    out between ``conn`` and them by weight and filled side by side; the swap is still one
    transaction on ``conn``. Raises ``RebuildRefused`` if another process is rebuilding one
    of them (it holds their rebuild lease), a user's view depends on one of their tables
    (naming it), the role running it cannot give the rebuilt tables their owner and grants
    (naming the role to use), or a projection with ``on_error="stop"`` meets an event it
    cannot read. Events a projection with ``on_error="skip"`` cannot read are recorded in
    ``crashlog.projection_errors``.

    ``keeper``, a spare connection, holds the rebuild leases and beats their heartbeat while
    the rebuild runs (``runner.rebuild`` gives one). Without it ``conn`` holds them without a
    heartbeat, so a rebuild longer than ``leases.LEASE_TIMEOUT`` may be taken over.
    """
    # Before the leases: a role that cannot give the tables away may not take a lease either,
    # and this names the role to use instead.
    await access.check_rebuildable(conn, await declared.existing(conn, projections))
    holder = (keeper or conn).get_server_pid()
    async with _rebuild_leases(projections, conn, keeper):
        deferred, read = await _create_shadows(conn, projections)
        try:
            groups = share(projections, 1 + len(helpers))
            lanes = list(zip([conn, *helpers], groups))
            counter = _Counter(progress, len(lanes))
            filled = await _side_by_side(
                _fill_and_index(c, group, read, deferred, counter.lane(i, group), batch_size)
                for i, (c, group) in enumerate(lanes))
            cursors = {p.name: cursor for (cursor, _), (_, group) in zip(filled, lanes) for p in group}
            done = min(n for _, n in filled) + await _swap(conn, projections, cursors, holder)
            if progress:
                progress(done, done)
        except BaseException:
            # Shadows are this rebuild's only while it holds the leases: after losing them,
            # they are another rebuild's, which must not lose them.
            if await _holds_leases(conn, projections, holder):
                await _drop_shadows(conn, projections)
            raise


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


async def _side_by_side(work: Iterable[Awaitable[T]]) -> list[T]:
    """Await all of ``work`` concurrently; if one fails, cancel the others (so none is left
    holding locks on a shadow) and raise its error."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class _Counter:
    """Progress of lanes working side by side, told in events of the log: the share of its
    work the slowest lane has done. A lane goes through the log once to record it, then once
    more for each of its projections that derives."""

    def __init__(self, progress: Progress | None, lanes: int) -> None:
        self._progress = progress
        self._shares = [0.0] * lanes
        self._total = 0

    def lane(self, index: int, projections: Sequence[Projection]) -> Progress:
        passes = 1 + sum(1 for p in projections if p.derive)

        def report(done: int, total: int) -> None:
            """``done``: events gone through, over all passes; ``total``: events in the log."""
            self._shares[index] = done / (total * passes) if total else 1.0
            self._total = max(self._total, total)
            if self._progress:
                self._progress(int(min(self._shares) * self._total), self._total)
        return report


@attrs.frozen
class _Deferred:
    """An index of a shadow table built after the load, or the key constraint it backs."""

    table: str
    shape: str
    #: "PRIMARY KEY (event_id)", "UNIQUE (...)": the constraint the index backs, if any.
    constraint: str | None

    def statement(self) -> str:
        if self.constraint:
            return f"ALTER TABLE {self.table} ADD {self.constraint}"
        # The index takes its default name now and the old index's name at the swap.
        unique = "UNIQUE " if self.shape.startswith("UNIQUE ") else ""
        return f"CREATE {unique}INDEX ON {self.table} {self.shape.removeprefix('UNIQUE ')}"


async def _create_shadows(
    conn: asyncpg.Connection, projections: Sequence[Projection]
) -> tuple[dict[str, list[_Deferred]], set[str]]:
    """Empty copies of each table, with the indexes its handler needs while it fills: the
    unique keys its upserts name (not those of ``one_row_per_event`` tables). Returns, per
    projection, the other indexes, to build after the load; and the shadows that keep an
    index, which their handlers read (the others they only append to)."""
    await _drop_shadows(conn, projections)
    deferred: dict[str, list[_Deferred]] = {}
    read: set[str] = set()
    for p in projections:
        deferred[p.name] = []
        if p.declaration is not None:  # a user's: made from its (new) declaration
            read.update(await declared.create_shadows(conn, p))
            continue
        for table, shadow in p.shadow_tables().items():
            # Logged from the start: an unlogged shadow made logged before the swap is
            # rewritten whole, with its kept indexes, which costs more than the WAL saved.
            await conn.execute(f"CREATE TABLE {shadow} (LIKE crashlog.{table} INCLUDING ALL)")
            for index in await _indexes(conn, shadow):
                if index["is_unique"] and table not in p.one_row_per_event:
                    read.add(shadow)  # kept: an upsert names it
                    continue
                deferred[p.name].append(
                    _Deferred(shadow, _shape(index["definition"]), index["constraint_definition"]))
                if index["constraint_name"]:
                    await conn.execute(
                        f'ALTER TABLE {shadow} DROP CONSTRAINT "{index["constraint_name"]}"')
                else:
                    await conn.execute(f'DROP INDEX crashlog."{index["name"]}"')
    return deferred, read


async def _drop_shadows(conn: asyncpg.Connection, projections: Sequence[Projection]) -> None:
    for p in projections:
        for shadow in p.shadow_tables().values():
            await conn.execute(f"DROP TABLE IF EXISTS {shadow}")


async def _fill_and_index(
    conn: asyncpg.Connection,
    projections: Sequence[Projection],
    read: set[str],
    deferred: dict[str, list[_Deferred]],
    progress: Progress | None,
    batch_size: int,
) -> tuple[Position, int]:
    """One lane: fill its shadows, build their deferred indexes, derive what the projections
    derive, and analyse the result for its readers after the swap. A lane does not wait for
    the others, so one that finishes first does not leave its core idle. Returns where the
    fill got to and how many events that was."""
    batches = await _fill(conn, projections, read, progress, batch_size)
    done = passed = sum(count for _, count in batches)
    await _create_deferred_indexes(conn, [d for p in projections for d in deferred[p.name]])
    # What derives reads: its own shadows, filled with no statistics yet.
    await analyze(conn, [t for p in projections if p.derive for t in p.shadow_tables().values()])
    ends = [end for end, _ in batches]
    for p in projections:
        if p.derive_all is not None:  # in short transactions of its own
            await p.derive_all(conn, p.shadow_tables())
            passed += done
            if progress:
                progress(passed, done)
            continue
        if p.derive is None:
            continue
        # The fill's batches again: everything is recorded now, so each batch's rows come
        # out final, and each transaction stays short (an open one holds the live
        # runners' horizon back).
        for start, (end, count) in zip([ORIGIN, *ends], batches):
            async with conn.transaction():
                await p.derive(conn, p.shadow_tables(), (*start, *end))
            passed += count
            if progress:
                progress(passed, done)
    await analyze(conn, [t for p in projections for t in p.shadow_tables().values()])
    return (ends[-1] if ends else ORIGIN), done


async def _fill(
    conn: asyncpg.Connection,
    projections: Sequence[Projection],
    read: set[str],
    progress: Progress | None,
    batch_size: int,
) -> list[tuple[Position, int]]:
    """Record the log from its origin in the shadows until the rest is under one batch;
    returns the end of each batch recorded and how many events it held. ``total`` is an
    estimate (events above the horizon are counted but not yet readable)."""
    total = int(await conn.fetchval("SELECT count(*) FROM crashlog.events"))
    cursor, done = ORIGIN, 0
    batches: list[tuple[Position, int]] = []
    if progress:
        progress(0, total)
    while True:
        # The first batch is small: until the new tables have statistics, plans are blind.
        limit = batch_size if batches else min(batch_size, FIRST_BATCH)
        span = await checkpoints.next_span(conn, cursor, limit)
        if span is None:
            return batches
        count, end = span.events, span.end
        await _apply_guarded(conn, [p for p in projections if span.concerns(p)], span)
        cursor, done = end, done + count
        batches.append((end, count))
        if len(batches) & (len(batches) - 1) == 0:
            # New tables have no statistics: without them the planner joins the growing
            # tables by nested loops. Analyse those the handlers read after batch 1, 2, 4, 8,
            # ... (as they double).
            await analyze(conn, [t for p in projections for t in p.shadow_tables().values() if t in read])
        if progress:
            progress(done, max(total, done))
        if count < limit:
            return batches


async def _apply_guarded(
    conn: asyncpg.Connection, projections: Sequence[Projection], span: LogSpan
) -> None:
    """Apply ``span`` to each projection's shadows with its handler, each in a savepoint of
    its own (``guard.apply_span``: events they cannot read are recorded and skipped), in as
    few transactions as the savepoint budget allows. Raises ``RebuildRefused`` for a
    projection with ``on_error="stop"`` that meets such an event, and any other failure."""
    todo = {p.name: span.start for p in projections}
    while todo:
        budget = guard.Budget()
        async with conn.transaction():
            for p in [p for p in projections if p.name in todo]:
                outcome = await guard.apply_span(
                    conn, p, p.handler, p.shadow_tables(), todo[p.name], span.end,
                    span.events, budget)
                _refuse_unless_through(p, outcome)
                if outcome.end == span.end:
                    del todo[p.name]
                else:  # out of savepoints: the rest in the next transaction
                    todo[p.name] = Position(*outcome.end)


def _refuse_unless_through(p: Projection, outcome: guard.Outcome) -> None:
    if outcome.failure is not None:
        raise outcome.failure
    if outcome.stopped is not None:
        failed = outcome.stopped
        raise RebuildRefused(
            f"projection {p.name} (on_error='stop') cannot read event {failed.event_id} "
            f"(position {failed.position}): {failed.error}; its rebuild is dropped")


async def analyze(conn: asyncpg.Connection, tables: Sequence[str]) -> None:
    """Refresh the planner's statistics of ``tables`` (qualified names we own)."""
    for table in tables:
        await conn.execute(f"ANALYZE {table}")


async def _create_deferred_indexes(conn: asyncpg.Connection, deferred: list[_Deferred]) -> None:
    for index in deferred:
        await conn.execute(index.statement())


async def _swap(
    conn: asyncpg.Connection, projections: Sequence[Projection], cursors: dict[str, Position],
    holder: int,
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
            live, cursor = Position(row["tx_id"], row["position"]), cursors[p.name]
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
    _refuse_unless_through(p, outcome)
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
