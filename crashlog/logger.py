"""``connect()`` and ``Logger``: the object a bot emits events into."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from crashlog import migrations, store
from crashlog.database import open_pool, resolve_dsn
from crashlog.errors import InvalidEvent, LoggerClosed, MigrationError
from crashlog.events import Event, encode_payload
from crashlog.projections.runner import Runner, side_by_side, wait_projected
from crashlog.reading import AsyncReader
from crashlog.settings import Settings
from crashlog.store import copy_tuple
from crashlog.writer import BatchWriter, Metrics

if TYPE_CHECKING:
    from crashlog.analytics import Statistics

# The reading methods (crashlog.reading) import analytics and exports where they are called: a
# bot that only writes never loads them (thousands of lines, and pyarrow for Parquet).


def connect(dsn: str | None = None, *, project: bool = True, **options: Any) -> Logger:
    """A logger for the server at ``dsn`` (else ``CRASHLOG_DSN``, else the embedded one).

    Use it as ``async with crashlog.connect() as log:`` or ``log = await crashlog.connect()``;
    ``options`` are the fields of ``Settings``. With ``project=True`` (the default) this
    process also keeps the read tables current; with ``project=False`` it only writes.
    """
    return Logger(dsn, Settings(**options), project=project)


class Logger:
    """Validates, buffers and appends events. Open it with ``connect()``."""

    def __init__(self, dsn: str | None, settings: Settings, *, project: bool = True) -> None:
        self._project = project
        self._runners: list[Runner] = []
        self._dsn_argument = dsn
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._writer: BatchWriter | None = None
        self._reader: AsyncReader | None = None

    # -- opening and closing -------------------------------------------------------------

    async def open(self) -> Logger:
        """Reach the server, bring its schema up to date (or refuse), start the writer."""
        if self._writer is not None:
            return self
        dsn = await asyncio.to_thread(resolve_dsn, self._dsn_argument)
        self._pool = await open_pool(
            dsn,
            min_size=1,
            max_size=self.settings.pool_size,
            init=store.init_connection,
            timeout=self.settings.connect_timeout,
            server_settings={"application_name": "crashlog"},
        )
        try:
            async with self._pool.acquire() as conn:
                await self._prepare_schema(conn)
        except BaseException:
            await self._pool.close()
            raise
        try:
            self._writer = BatchWriter(self._pool, self.settings)
        except BaseException:  # e.g. the spool folder is another process's
            await self._pool.close()
            raise
        self._writer.start()
        if self._project:  # the projections, in-process, on connections of their own
            self._runners = side_by_side(dsn, connections=self.settings.projection_connections)
            for runner in self._runners:
                runner.start()
        return self

    async def _prepare_schema(self, conn: asyncpg.Connection) -> None:
        if self.settings.migrate:
            await migrations.migrate(conn)
            return
        pending = await migrations.pending_migrations(conn)
        if pending:
            names = ", ".join(m.name for m in pending)
            raise MigrationError(f"the database needs migrations first: {names} (crashlog migrate)")

    async def aclose(self, timeout: float | None = None) -> None:
        """Commit everything emitted, then release the connections.

        Raises ``NotFlushed`` (saying how many events and where) if that takes
        longer than ``timeout`` seconds (default ``Settings.close_timeout``); the
        events it names were not acknowledged and are given up with the logger.
        """
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        closed_cleanly = False
        try:
            await writer.close(self.settings.close_timeout if timeout is None else timeout)
            closed_cleanly = True
        finally:
            runners, self._runners = self._runners, []
            for runner in runners:
                # Abort rather than wait: a batch cut short rolls back with its checkpoint, and
                # a runner stuck behind a lock must not hold up closing.
                runner.abort()
            for runner in runners:
                await runner.stop()
            if self._pool is not None:
                if closed_cleanly:
                    await self._pool.close()
                else:  # a connection may be stuck behind the very thing that timed out
                    self._pool.terminate()

    def __await__(self) -> Generator[Any, None, Logger]:
        return self.open().__await__()

    async def __aenter__(self) -> Logger:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- writing -------------------------------------------------------------------------

    async def emit(self, event: Event) -> UUID:
        """Validate and buffer ``event``; returns its id. No I/O while the buffer has room.

        Raises ``InvalidEvent`` for anything the log could not store; the logger
        and every other event are unaffected.
        """
        if not isinstance(event, Event):
            raise InvalidEvent("event", event, "must be a crashlog event (crashlog.events)")
        writer = self._writer or self._open_writer()  # the call only to raise when closed
        bot_id = event.bot_id
        # Encoded once, here, straight into its COPY tuple: the payload's own bytes are not
        # kept, and the writer only joins tuples.
        row = copy_tuple(
            event.event_id,
            event.event_type,
            event.schema_version,
            bot_id,
            getattr(event, "session_id", None),
            event.occurred_at,
            encode_payload(event, self.settings.max_payload_bytes),
        )
        # The common case stays synchronous: room in the buffer, nothing to await.
        if not writer.offer(row, bot_id):
            await writer.enqueue(row, bot_id)
        elif writer.wants_turn():
            await asyncio.sleep(0)
        return event.event_id

    async def flush(self, timeout: float | None = None) -> None:
        """Return once every event emitted before this call is committed.

        Raises ``NotFlushed`` saying how many are pending, and where, after ``timeout`` seconds.
        """
        await self._open_writer().flush(timeout)

    async def sync(self, timeout: float | None = None) -> None:
        """Return once every event emitted before this call is committed and applied by
        every projection (in this process or any other runner).

        Raises ``NotFlushed`` saying how many events are not yet committed, or not yet
        projected, after ``timeout`` seconds. An open transaction anywhere on the server
        holds the projections back, and with them this call.
        """
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        await self.flush(timeout)
        for runner in self._runners:
            runner.wake()
        remaining = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
        async with self.pool.acquire() as conn:
            await wait_projected(conn, remaining)

    def metrics(self) -> Metrics:
        """Counters: emitted, committed, duplicates, retried, rejected, spooled, buffered, ..."""
        return self._open_writer().metrics()

    # -- reading -------------------------------------------------------------------------
    # The reading side is ``crashlog.reading``'s; these are thin calls into ``reader``, kept
    # for the code written against them. Call ``sync()`` first to include what was just emitted.

    @property
    def reader(self) -> AsyncReader:
        """An ``AsyncReader`` over this logger's pool (tables, statistics, reports, exports)."""
        if self._reader is None or self._reader.pool is not self.pool:
            self._reader = AsyncReader(self.pool)
        return self._reader

    async def bot_statistics(
        self, bot_id: str, strategy: str | None = None, *, rtp: float | None = None
    ) -> Statistics:
        """``reader.bot_statistics``: statistics of one bot's settled rounds."""
        return await self.reader.bot_statistics(bot_id, strategy, rtp=rtp)

    async def strategy_statistics(self, strategy: str, *, rtp: float | None = None) -> Statistics:
        """``reader.strategy_statistics``: every bot's rounds played with ``strategy``."""
        return await self.reader.strategy_statistics(strategy, rtp=rtp)

    async def export_rounds(
        self, out: str | Path | IO[bytes], format: str = "jsonl", **filters: Any
    ) -> int:
        """``reader.export_rounds``: the rounds, in time order, to ``out``; rows written."""
        return await self.reader.export_rounds(out, format, **filters)

    async def export_multipliers(
        self, out: str | Path | IO[bytes], format: str = "jsonl", **filters: Any
    ) -> int:
        """``reader.export_multipliers``: the multipliers (for ML), in time order; rows written."""
        return await self.reader.export_multipliers(out, format, **filters)

    @property
    def pool(self) -> asyncpg.Pool:
        """The logger's connection pool, for queries of your own."""
        if self._pool is None:
            raise LoggerClosed("the logger is not open")
        return self._pool

    def _open_writer(self) -> BatchWriter:
        if self._writer is None:
            raise LoggerClosed("the logger is not open (use 'async with crashlog.connect()')")
        return self._writer
