"""``crashlog.reader()``: read the tables without a writer, as Arrow, pandas or polars.

    with crashlog.reader() as r:                       # dsn: argument, CRASHLOG_DSN, embedded
        t = r.table("rounds", since="2026-12-01", bot_id="b1")    # a pyarrow.Table
        df = t.to_pandas()                              # or polars.from_arrow(t)

    async with crashlog.reader() as r:                  # the same methods, as coroutines
        stats = await r.bot_statistics("b1")

Promises:

- Read only: no writer, no projection runners, no migrations; every transaction is
  read-only (``default_transaction_read_only``). A role with USAGE on schema crashlog and
  SELECT on its tables is enough (the analyst role of ``crashlog roles``). Opening refuses a
  database without the crashlog schema, or with one older than this package, with
  ``SchemaNotReady`` naming the missing migrations.
- ``table``/``batches`` read every table ``tables()`` lists (``crashlog.tables``) through a
  server-side cursor in one snapshot, in the table's time order; ``since`` (inclusive) and
  ``until`` (exclusive) apply to its documented time column; filters are its column names
  (a list means any of them, None means IS NULL), always sent as parameters. Money is exact
  (``decimal128(38, 12)``, ``crashlog.arrow``) unless ``money="float"``.
- ``events`` reads the log itself: the envelope columns and ``payload`` as JSON text.
- The reading side of ``Logger`` lives here: ``bot_statistics``, ``strategy_statistics``,
  ``bot_summaries``, ``quality``, ``signals``, ``fit``, and the exports.
- ``Reader`` (``with``) runs an ``AsyncReader`` on an event loop in a thread of its own, so
  it works where a loop is already running (a Jupyter notebook); ``AsyncReader`` (``async
  with``) runs on the caller's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator, Mapping
from contextlib import aclosing
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypeVar

import asyncpg

from crashlog import arrow, migrations, tables
from crashlog.database import mask_dsn, open_pool, resolve_dsn
from crashlog.errors import LoggerClosed, SchemaNotReady
from crashlog.loop_thread import LoopThread
from crashlog.projections.base import ReadTable
from crashlog.streaming import stream_chunks
from crashlog.tables import Query

if TYPE_CHECKING:
    import pyarrow as pa

    from crashlog.analytics import FitReport, QualityReport, SignalReport, Statistics

T = TypeVar("T")
#: Rows per record batch (one cursor round trip each).
BATCH_ROWS = 10_000
#: Connections a reader of its own opens at most.
POOL_SIZE = 4


def reader(dsn: str | None = None) -> ReaderOpener:
    """A read-only reader of the server at ``dsn`` (else ``CRASHLOG_DSN``, else the embedded
    one): ``with crashlog.reader() as r`` gives a ``Reader``, ``async with`` an ``AsyncReader``."""
    return ReaderOpener(dsn)


class ReaderOpener:
    """What ``crashlog.reader()`` returns: open it with ``with``, ``async with`` or ``await``."""

    def __init__(self, dsn: str | None) -> None:
        self._dsn = dsn
        self._opened: Reader | AsyncReader | None = None

    def open(self) -> Reader:
        """A ``Reader`` (close it with ``close()``)."""
        loop = LoopThread("a Reader")
        try:
            return Reader(loop.call(AsyncReader.connect(self._dsn)), loop.call, on_close=loop.stop)
        except BaseException:
            loop.stop()
            raise

    def __enter__(self) -> Reader:
        opened = self._opened = self.open()
        return opened

    def __exit__(self, *exc: object) -> None:
        if isinstance(self._opened, Reader):
            self._opened.close()

    async def __aenter__(self) -> AsyncReader:
        opened = self._opened = await AsyncReader.connect(self._dsn)
        return opened

    async def __aexit__(self, *exc: object) -> None:
        if isinstance(self._opened, AsyncReader):
            await self._opened.aclose()

    def __await__(self) -> Any:
        return AsyncReader.connect(self._dsn).__await__()


async def check_schema(conn: asyncpg.Connection, where: str) -> None:
    """Refuse a database whose crashlog schema is missing or older than this package."""
    applied = await migrations.applied_migrations(conn)
    if not applied:
        raise SchemaNotReady(
            f"no crashlog schema in {where}: a reader never creates it; run `crashlog migrate`"
            " (or connect a logger) as a role that may"
        )
    missing = [m.name for m in migrations.load_migrations() if m.version not in applied]
    if missing:
        raise SchemaNotReady(
            f"the crashlog schema in {where} is older than this package: {', '.join(missing)}"
            " not applied; run `crashlog migrate` as a role that may"
        )


async def plan(conn: asyncpg.Connection, name: str, since: Any = None, until: Any = None,
               columns: list[str] | None = None, money: str = "decimal",
               filters: Mapping[str, Any] | None = None) -> Query:
    """The checked query reading table ``name`` (or ``events``) on ``conn``: an unknown
    table, column, filter or a bad value raises here, before any row is read."""
    arrow.check_money(money)
    known = {} if name == "events" else await tables.readable(conn)
    shape = await tables.shape(conn, name, known)
    return tables.build(shape, since=since, until=until, columns=columns, filters=filters, money=money)


class AsyncReader:
    """The reading methods, as coroutines, over a pool (its own, or a ``Logger``'s)."""

    def __init__(self, pool: asyncpg.Pool, *, owns_pool: bool = False) -> None:
        self._pool: asyncpg.Pool | None = pool
        self._owns_pool = owns_pool

    @classmethod
    async def connect(cls, dsn: str | None = None) -> AsyncReader:
        """Open a read-only pool to ``dsn`` and check its schema (see the module's promises)."""
        dsn = await asyncio.to_thread(resolve_dsn, dsn)
        pool = await open_pool(
            dsn, min_size=1, max_size=POOL_SIZE,
            server_settings={"application_name": "crashlog-reader",
                             "default_transaction_read_only": "on"},
        )
        try:
            async with pool.acquire() as conn:
                await check_schema(conn, mask_dsn(dsn))
        except BaseException:
            await pool.close()
            raise
        return cls(pool, owns_pool=True)

    async def aclose(self) -> None:
        """Release the connections (a pool borrowed from a ``Logger`` stays open)."""
        if not self._owns_pool:  # the logger's: it closes it
            return
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> AsyncReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise LoggerClosed("the reader is closed")
        return self._pool

    # -- tables ---------------------------------------------------------------------------

    async def tables(self) -> dict[str, ReadTable]:
        """Every table this reader can read, by name, with its time column and order."""
        async with self.pool.acquire() as conn:
            return await tables.readable(conn)

    async def plan(self, name: str, since: Any = None, until: Any = None,
                   columns: list[str] | None = None, money: str = "decimal",
                   filters: Mapping[str, Any] | None = None) -> Query:
        """The checked query a read of ``name`` runs (bad names and values raise here)."""
        async with self.pool.acquire() as conn:
            return await plan(conn, name, since, until, columns, money, filters)

    async def stream(self, query: Query) -> AsyncGenerator[pa.RecordBatch, None]:
        """The record batches of ``query``, in its order, from one snapshot."""
        target = arrow.schema(query.columns)
        async with self.pool.acquire() as conn, aclosing(
            stream_chunks(conn, query.select(), query.args, chunk=BATCH_ROWS)
        ) as chunks:
            async for rows in chunks:
                yield arrow.record_batch(rows, query.columns, target, f"table {query.shape.name}")

    async def batches(self, name: str, since: Any = None, until: Any = None,
                      columns: list[str] | None = None, money: str = "decimal",
                      **filters: Any) -> AsyncIterator[pa.RecordBatch]:
        """The rows of ``name`` as record batches of ``BATCH_ROWS``, for results larger than
        memory (``async for batch in await r.batches(...)``)."""
        return self.stream(await self.plan(name, since, until, columns, money, filters))

    async def table(self, name: str, since: Any = None, until: Any = None,
                    columns: list[str] | None = None, money: str = "decimal",
                    **filters: Any) -> pa.Table:
        """The rows of read table ``name`` as a ``pyarrow.Table``, in the table's time order."""
        query = await self.plan(name, since, until, columns, money, filters)
        return await collect(self.stream(query), query)

    async def events(self, since: Any = None, until: Any = None, columns: list[str] | None = None,
                     **filters: Any) -> pa.Table:
        """The log itself (``crashlog.events``) in reading order: the envelope columns and
        ``payload`` as JSON text; ``since``/``until`` on ``occurred_at``."""
        return await self.table("events", since, until, columns, **filters)

    async def count(self, name: str, since: Any = None, until: Any = None, **filters: Any) -> int:
        """How many rows ``table(name, since, until, **filters)`` returns."""
        query = await self.plan(name, since, until, None, "decimal", filters)
        return int(await self.pool.fetchval(query.count(), *query.args))

    # -- analyses ---------------------------------------------------------------------------

    async def bot_statistics(self, bot_id: str, strategy: str | None = None, *,
                             rtp: float | None = None) -> Statistics:
        """``crashlog.analytics.bot_statistics``; ``rtp`` None: ``analytics.DEFAULT_RTP``."""
        from crashlog import analytics  # where used: `import crashlog` stays light

        rtp = analytics.DEFAULT_RTP if rtp is None else rtp
        return await analytics.bot_statistics(self.pool, bot_id, strategy, rtp=rtp)

    async def strategy_statistics(self, strategy: str, *, rtp: float | None = None) -> Statistics:
        """``crashlog.analytics.strategy_statistics`` (``rtp`` as above)."""
        from crashlog import analytics

        rtp = analytics.DEFAULT_RTP if rtp is None else rtp
        return await analytics.strategy_statistics(self.pool, strategy, rtp=rtp)

    async def bot_summaries(self) -> list[dict[str, Any]]:
        """Every bot's running totals (``crashlog.bot_stats``)."""
        from crashlog import analytics

        return await analytics.bot_summaries(self.pool)

    async def quality(self, game: str, platform: str, **options: Any) -> QualityReport:
        """``crashlog.analytics.quality_report`` of a game's rounds on a platform."""
        from crashlog import analytics

        async with self.pool.acquire() as conn:
            return await analytics.quality_report(conn, game=game, platform=platform, **options)

    async def signals(self, **options: Any) -> SignalReport:
        """``crashlog.analytics.signal_report`` (options: game, platform, bot_id, since, ...)."""
        from crashlog import analytics

        async with self.pool.acquire() as conn:
            return await analytics.signal_report(conn, **options)

    async def fit(self, game: str | None = None, platform: str | None = None, *,
                  since: Any = None, until: Any = None, rtp: float | None = None,
                  alpha: float = 0.01, seed: int = 0) -> FitReport:
        """``crashlog.analytics.fit`` of the multipliers in ``round_multipliers`` (time order)."""
        from crashlog import analytics

        filters = {k: v for k, v in (("game", game), ("platform", platform)) if v is not None}
        query = await self.plan("round_multipliers", since, until, ["multiplier"], "decimal", filters)
        values: list[Any] = []
        async with self.pool.acquire() as conn, aclosing(
            stream_chunks(conn, query.select(), query.args, chunk=BATCH_ROWS)
        ) as chunks:
            async for rows in chunks:
                values.extend(row[0] for row in rows)
        return analytics.fit(values, rtp, alpha=alpha, seed=seed)

    # -- exports ----------------------------------------------------------------------------

    async def export(self, name: str, out: str | Path | IO[bytes], format: str | None = None, *,
                     since: Any = None, until: Any = None, columns: list[str] | None = None,
                     money: str = "decimal", progress: Callable[[int], None] | None = None,
                     **filters: Any) -> int:
        """Write read table ``name`` (or ``events``) to ``out`` as JSON lines, JSON, CSV or
        Parquet (``format`` None: from the file's extension, else JSON lines), in time order,
        streamed; returns the rows written. See ``crashlog.exports``."""
        from crashlog import exports

        fmt = format or (exports.format_of(out) if isinstance(out, (str, Path)) else "jsonl")
        query = await self.plan(name, since, until, columns, money, filters)
        return await exports.export_table(self.pool, query, out, fmt, progress)

    async def export_rounds(self, out: str | Path | IO[bytes], format: str = "jsonl",
                            **filters: Any) -> int:
        """``crashlog.exports.export_rounds``: rows written."""
        from crashlog import exports

        return await exports.export_rounds(self.pool, out, format, **filters)

    async def export_multipliers(self, out: str | Path | IO[bytes], format: str = "jsonl",
                                 **filters: Any) -> int:
        """``crashlog.exports.export_multipliers`` (the ML export): rows written."""
        from crashlog import exports

        return await exports.export_multipliers(self.pool, out, format, **filters)


async def collect(batches: AsyncGenerator[pa.RecordBatch, None], query: Query) -> pa.Table:
    """Every batch of a stream as one table (the batches are its chunks: no copy)."""
    pa = arrow.require()
    parts = []
    async with aclosing(batches):
        async for batch in batches:
            parts.append(batch)
    return pa.Table.from_batches(parts, schema=arrow.schema(query.columns))


# -- the synchronous reader ----------------------------------------------------------------

Call = Callable[[Coroutine[Any, Any, Any]], Any]


class Reader:
    """``AsyncReader``'s methods, blocking: each runs on the reader's loop and waits."""

    def __init__(self, reader: AsyncReader, call: Call, *, on_close: Callable[[], None] | None = None) -> None:
        self._reader = reader
        self._call = call
        self._on_close = on_close

    def close(self) -> None:
        """Release the connections and stop the loop thread (a ``Logger``'s pool stays open)."""
        try:
            self._call(self._reader.aclose())
        finally:
            if self._on_close is not None:
                self._on_close()
                self._on_close = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def asynchronous(self) -> AsyncReader:
        """The ``AsyncReader`` underneath (its coroutines run on this reader's loop only)."""
        return self._reader

    def tables(self) -> dict[str, ReadTable]:
        return self._call(self._reader.tables())  # type: ignore[no-any-return]

    def table(self, name: str, since: Any = None, until: Any = None, columns: list[str] | None = None,
              money: str = "decimal", **filters: Any) -> pa.Table:
        """``AsyncReader.table``: a ``pyarrow.Table``."""
        return self._call(self._reader.table(name, since, until, columns, money, **filters))

    def batches(self, name: str, since: Any = None, until: Any = None, columns: list[str] | None = None,
                money: str = "decimal", **filters: Any) -> pa.RecordBatchReader:
        """A ``pyarrow.RecordBatchReader`` over the rows, fetched as it is read."""
        pa = arrow.require()
        query = self._call(self._reader.plan(name, since, until, columns, money, filters))
        return pa.RecordBatchReader.from_batches(arrow.schema(query.columns), self._pull(query))

    def _pull(self, query: Query) -> Iterator[pa.RecordBatch]:
        stream = self._reader.stream(query)
        try:
            while True:
                try:
                    yield self._call(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:  # read to the end, or dropped early: the cursor and connection go back
            self._call(stream.aclose())

    def events(self, since: Any = None, until: Any = None, columns: list[str] | None = None,
               **filters: Any) -> pa.Table:
        return self._call(self._reader.events(since, until, columns, **filters))

    def count(self, name: str, since: Any = None, until: Any = None, **filters: Any) -> int:
        return self._call(self._reader.count(name, since, until, **filters))  # type: ignore[no-any-return]

    def bot_statistics(self, bot_id: str, strategy: str | None = None, **options: Any) -> Statistics:
        return self._call(self._reader.bot_statistics(bot_id, strategy, **options))

    def strategy_statistics(self, strategy: str, **options: Any) -> Statistics:
        return self._call(self._reader.strategy_statistics(strategy, **options))

    def bot_summaries(self) -> list[dict[str, Any]]:
        return self._call(self._reader.bot_summaries())  # type: ignore[no-any-return]

    def quality(self, game: str, platform: str, **options: Any) -> QualityReport:
        return self._call(self._reader.quality(game, platform, **options))

    def signals(self, **options: Any) -> SignalReport:
        return self._call(self._reader.signals(**options))

    def fit(self, game: str | None = None, platform: str | None = None, **options: Any) -> FitReport:
        return self._call(self._reader.fit(game, platform, **options))

    def export(self, name: str, out: str | Path | IO[bytes], format: str | None = None,
               **options: Any) -> int:
        return self._call(self._reader.export(name, out, format, **options))  # type: ignore[no-any-return]

    def export_rounds(self, out: str | Path | IO[bytes], format: str = "jsonl", **filters: Any) -> int:
        return self._call(self._reader.export_rounds(out, format, **filters))  # type: ignore[no-any-return]

    def export_multipliers(self, out: str | Path | IO[bytes], format: str = "jsonl",
                           **filters: Any) -> int:
        return self._call(self._reader.export_multipliers(out, format, **filters))  # type: ignore[no-any-return]
