"""Filling a rebuild's shadow tables from the log: the work between making them and swapping.

Each projection's work is a chain of steps: record the log in its shadows span by span;
build the indexes left for after the load (each its own task); derive what it derives;
analyse each table. The rebuild's connections take ready tasks as soon as they are free
(``Steps``), so none sits idle while another has work queued. The log is cut into spans
once, up to the reading horizon, while the fills already go through the first ones; every
projection goes through the same spans.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import asyncpg
import attrs

from crashlog.errors import RebuildRefused
from crashlog.projections import checkpoints, guard
from crashlog.projections.base import Projection
from crashlog.projections.checkpoints import ORIGIN, LogSpan, Position

#: ``progress(done, total)``: events gone through, out of the events in the log.
Progress = Callable[[int, int], None]
T = TypeVar("T")

#: Events per span of a rebuild: large, since the shadow tables have no readers.
REBUILD_BATCH = 50_000
#: Events in the first span, applied before the new tables have statistics.
FIRST_BATCH = 1_000
#: The statistics target of the rebuild's own analyses while it fills (PostgreSQL's default
#: is 100: ten times the sample).
ROUGH_STATISTICS = 10


@attrs.frozen
class Deferred:
    """An index of a shadow table, or the key constraint it backs, under a name of the
    rebuild's own (indexes of one table built side by side never pick the same default
    name; the swap gives it the live one)."""

    table: str
    name: str
    shape: str
    #: "PRIMARY KEY (event_id)", "UNIQUE (...)": the constraint the index backs, if any.
    constraint: str | None

    def build(self, concurrently: bool = False) -> str:
        """What builds the index. ``concurrently``: without an open transaction holding the
        live runners' reading horizon back while it is built. A key's index is built as a
        unique index, like the others: a table's indexes are then built side by side (adding
        the key whole would lock the table against its other builds); ``attach`` makes it
        the key afterwards."""
        unique = "UNIQUE " if self.shape.startswith("UNIQUE ") or self.constraint else ""
        how = "CONCURRENTLY " if concurrently else ""
        return (f'CREATE {unique}INDEX {how}"{self.name}" ON {self.table} '
                f'{self.shape.removeprefix("UNIQUE ")}')

    def attach(self) -> str | None:
        """What makes the built index the key constraint it backs (a moment's lock on the
        table, no scan); None for an index that backs none."""
        if not self.constraint:
            return None
        kind = "PRIMARY KEY" if self.constraint.startswith("PRIMARY KEY") else "UNIQUE"
        return f'ALTER TABLE {self.table} ADD CONSTRAINT "{self.name}" {kind} USING INDEX "{self.name}"'


class Spans:
    """The log from its origin up to the reading horizon, in spans of ``batch_size`` events
    (the first one small: until the new tables have statistics, plans are blind), planned
    while the fills already go through the first ones."""

    def __init__(self, batch_size: int = REBUILD_BATCH) -> None:
        self.batch_size = batch_size
        self.planned: list[LogSpan] = []
        self.complete = False
        self._changed = asyncio.Condition()

    async def plan(self, conn: asyncpg.Connection) -> None:
        cursor = ORIGIN
        try:
            while True:
                limit = self.batch_size if self.planned else min(self.batch_size, FIRST_BATCH)
                span = await checkpoints.next_span(conn, cursor, limit)
                if span is not None:
                    cursor = span.end
                    async with self._changed:
                        self.planned.append(span)
                        self._changed.notify_all()
                if span is None or span.events < limit:
                    return
        finally:
            async with self._changed:
                self.complete = True
                self._changed.notify_all()

    async def each(self) -> AsyncIterator[LogSpan]:
        """Every span, as soon as it is planned."""
        seen = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._beyond, seen))
                if len(self.planned) <= seen:
                    return
                span = self.planned[seen]
            seen += 1
            yield span

    def _beyond(self, seen: int) -> bool:
        """Whether a span after the first ``seen`` is planned, or none will be."""
        return len(self.planned) > seen or self.complete

    @property
    def events(self) -> int:
        return sum(span.events for span in self.planned)

    @property
    def end(self) -> Position:
        return self.planned[-1].end if self.planned else ORIGIN


#: The parts of a projection's rebuild, as shares of its time (measured on the fleet mix of
#: ``benchmarks/projection_throughput.py``): progress moves by them, so the bar moves evenly
#: through index builds and derivations too, not only while the log is read.
PARTS = {"fill": 0.4, "index": 0.35, "derive": 0.2, "analyze": 0.05}


class Tally:
    """Progress of the rebuild, told in events of the log: the share of the work done, each
    projection weighing by its ``weight``."""

    def __init__(self, progress: Progress | None, projections: Sequence[Projection], total: int) -> None:
        self._progress = progress
        self._total = total
        self._weights = {p.name: max(1, p.weight) for p in projections}
        self._done = dict.fromkeys(self._weights, 0.0)

    def job(self, p: Projection) -> Callable[[float], None]:
        """How ``p``'s steps report: ``advance(share)``, a share of its work just done."""
        def advance(share: float) -> None:
            self._done[p.name] = min(1.0, self._done[p.name] + share)
            self.tell()
        return advance

    def tell(self) -> None:
        if self._progress:
            weight = sum(self._weights.values())
            share = sum(self._weights[n] * d for n, d in self._done.items()) / weight
            self._progress(int(share * self._total), self._total)


class Steps:
    """The rebuild's work as steps per projection, run on several connections: a step's tasks
    (say, the indexes of its tables) may run side by side, and a projection's next step waits
    for all of its previous one. A free connection takes a ready task of the earliest step,
    of the projection with the most work left (its weight times its steps to go): every fill
    (the long tasks) starts as early as it can, a projection that still has to derive gets
    its indexes first, and the many short tasks even out the connections at the end."""

    def __init__(self, chains: Sequence[tuple[Projection, list[list[Task]]]]) -> None:
        ordered = sorted(chains, key=lambda chain: -chain[0].weight)
        self._weights = [p.weight for p, _ in ordered]
        self._chains = [[step for step in steps if step] for _, steps in ordered]
        self._ready: list[tuple[int, int, int, Task]] = []  # (step, -work left, chain, task)
        self._running = dict.fromkeys(range(len(self._chains)), 0)
        self._step = dict.fromkeys(range(len(self._chains)), 0)
        self._changed = asyncio.Condition()
        for index in range(len(self._chains)):
            self._next_step(index)

    def _next_step(self, index: int) -> None:
        if self._chains[index]:
            left = -self._weights[index] * len(self._chains[index])
            step = self._chains[index].pop(0)
            self._step[index] += 1
            self._ready.extend((self._step[index], left, index, task) for task in step)
            self._running[index] = len(step)
            self._ready.sort(key=lambda item: item[:3])

    async def run(self, connections: Sequence[asyncpg.Connection]) -> None:
        """Every task, each on the next free one of ``connections``. The first failure is
        raised once the other connections have stopped."""
        await side_by_side(self._take(conn) for conn in connections)

    async def _take(self, conn: asyncpg.Connection) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._ready or not any(self._running.values()))
                if not self._ready:
                    return
                *_, index, task = self._ready.pop(0)
            await task(conn)
            async with self._changed:
                self._running[index] -= 1
                if not self._running[index]:
                    self._next_step(index)
                self._changed.notify_all()


#: One piece of a rebuild's work, on the connection it is given.
Task = Callable[[asyncpg.Connection], Awaitable[None]]


def steps(
    p: Projection, spans: Spans, read: set[str], deferred: Sequence[Deferred],
    advance: Callable[[float], None], total: int, *, concurrently: bool = False,
) -> list[list[Task]]:
    """A projection's rebuild: record ``spans`` in its shadows; build their deferred indexes
    (side by side; ``concurrently``: see ``Deferred.build``), then make keys of those that
    back one; derive what it derives (then index the tables it wrote, ``Projection.derived``);
    analyse the tables for their readers after the swap.
    ``total``: about how many events the spans hold (to tell progress by)."""
    tables = p.shadow_tables()
    events = max(1, total)
    # Each part's share of this projection's work, among the parts it has.
    has = {"fill": True, "index": bool(deferred), "derive": p.derive is not None, "analyze": True}
    whole = sum(PARTS[part] for part, present in has.items() if present)
    share = {part: PARTS[part] / whole for part in PARTS}

    sizes: dict[str, int] = {}  # bytes of each shadow once filled: an index's part of the work

    async def fill(conn: asyncpg.Connection) -> None:
        await _fill(conn, p, spans, read, lambda n: advance(share["fill"] * n / events))
        for table in {d.table for d in deferred}:
            sizes[table] = int(await conn.fetchval("SELECT pg_relation_size($1::regclass)", table))

    async def derive(conn: asyncpg.Connection) -> None:
        await _derive(conn, p, spans.planned, lambda n: advance(share["derive"] * n / events))

    def index(indexes: Sequence[Deferred]) -> Task:
        async def build(conn: asyncpg.Connection) -> None:
            for d in indexes:
                await conn.execute(d.build(concurrently))
                advance(share["index"] * (sizes.get(d.table, 0) + 1) / sum(sizes.get(e.table, 0) + 1 for e in deferred))
        return build

    def attach_keys(indexes: Sequence[Deferred]) -> Task:
        async def attach(conn: asyncpg.Connection) -> None:
            # Once no index of the tables is being built: attaching one waits for every build.
            for statement in filter(None, (d.attach() for d in indexes)):
                await conn.execute(statement)
        return attach

    def building(indexes: Sequence[Deferred]) -> list[list[Task]]:
        """Two steps: build ``indexes``, then make keys of those that back one."""
        # Side by side, each index on its own; built concurrently, a table's one after
        # another (two concurrent builds on one table wait for each other: a deadlock).
        together = [[d] for d in indexes] if not concurrently else [
            [d for d in indexes if d.table == table] for table in dict.fromkeys(d.table for d in indexes)]
        keys = [attach_keys(indexes)] if any(d.constraint for d in indexes) else []
        return [[index(group) for group in together], keys]

    readers = {t.name for t in p.read_tables}

    def analysis(table: str, of: int) -> Task:
        # In full for what readers query; the projection's own tables (a copy of readings)
        # serve only its lookups, which rough statistics plan as well.
        rough = p.declaration is None and table not in readers

        async def run(conn: asyncpg.Connection) -> None:
            await analyze(conn, [tables[table]], rough=rough)
            advance(share["analyze"] / of)
        return run

    # The tables a derive writes are indexed after it (its writes then maintain none); it
    # reads the others through theirs. Those it leaves as they were keep the rough statistics
    # taken of them for it, unless readers query them.
    derived = {tables[t] for t in p.derived}
    final = [t for t in tables if not p.derive or tables[t] in derived or t in readers]
    return [[fill], *building([d for d in deferred if d.table not in derived]),
            [derive] if p.derive else [], *building([d for d in deferred if d.table in derived]),
            [analysis(t, len(final)) for t in final]]


async def side_by_side(work: Iterable[Awaitable[T]]) -> list[T]:
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


async def _derive(
    conn: asyncpg.Connection, p: Projection, spans: Sequence[LogSpan], report: Callable[[int], None],
) -> None:
    """Derive ``p``'s rows from everything recorded (``p.derive`` is set); ``report(n)``: n
    more events' rows derived."""
    tables = p.shadow_tables()
    # What derives reads: filled, with no statistics yet (rough ones do: the tables are
    # analysed in full for their readers afterwards).
    await analyze(conn, list(tables.values()), rough=True)
    if p.derive_all is not None:  # in short transactions of its own
        await p.derive_all(conn, tables)
        report(sum(span.events for span in spans))
        return
    assert p.derive is not None
    # The spans again: everything is recorded now, so each span's rows come out final, and
    # each transaction stays short (an open one holds the live runners' horizon back).
    for span in spans:
        async with conn.transaction():
            await p.derive(conn, tables, span.bounds)
        report(span.events)


async def _fill(
    conn: asyncpg.Connection, p: Projection, spans: Spans, read: set[str],
    report: Callable[[int], None],
) -> None:
    """Record ``spans`` in ``p``'s shadows, ``report(n)`` after each span of n events."""
    applied = 0
    read_shadows = [t for t in p.shadow_tables().values() if t in read]
    async for span in spans.each():
        if span.concerns(p):
            await apply_guarded(conn, [p], span)
            applied += 1
            if read_shadows and applied & (applied - 1) == 0:
                # New tables have no statistics: without them the planner joins the growing
                # tables by nested loops. Analyse those the handler reads after span 1, 2, 4,
                # 8, ... it applied (as they double).
                await analyze(conn, read_shadows, rough=True)
        report(span.events)


async def apply_guarded(conn: asyncpg.Connection, projections: Sequence[Projection], span: LogSpan) -> None:
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
                refuse_unless_through(p, outcome)
                if outcome.end == span.end:
                    del todo[p.name]
                else:  # out of savepoints: the rest in the next transaction
                    todo[p.name] = Position(*outcome.end)


def refuse_unless_through(p: Projection, outcome: guard.Outcome) -> None:
    """Raise what stopped ``p`` in ``outcome``: its failure, or ``RebuildRefused`` naming the
    event a projection with ``on_error="stop"`` could not read."""
    if outcome.failure is not None:
        raise outcome.failure
    if outcome.stopped is not None:
        failed = outcome.stopped
        raise RebuildRefused(
            f"projection {p.name} (on_error='stop') cannot read event {failed.event_id} "
            f"(position {failed.position}): {failed.error}; its rebuild is dropped")


async def analyze(conn: asyncpg.Connection, tables: Sequence[str], *, rough: bool = False) -> None:
    """Refresh the planner's statistics of ``tables`` (qualified names we own); ``rough``: from a
    tenth of the sample (enough for the rebuild's own plans, several times faster)."""
    for table in tables:
        if rough:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL default_statistics_target = {ROUGH_STATISTICS}")
                await conn.execute(f"ANALYZE {table}")
        else:
            await conn.execute(f"ANALYZE {table}")
