"""``connect()`` and ``Logger``: the object a bot emits events into."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from crashlog import migrations, store
from crashlog.appender import is_transient
from crashlog.database import mask_error, open_pool, resolve_dsn
from crashlog.errors import ConnectFailed, InvalidEvent, LoggerClosed, MigrationError, NotFlushed
from crashlog.events import Event, encode_payload
from crashlog.projections import PROJECTIONS, registry
from crashlog.projections.base import Projection
from crashlog.projections.runner import Runner, side_by_side, wait_projected
from crashlog.reading import AsyncReader
from crashlog.settings import Settings
from crashlog.store import copy_tuple
from crashlog.subscriptions import BATCH as SUBSCRIPTION_BATCH
from crashlog.subscriptions import Start, Subscription
from crashlog.writer import BatchWriter, Metrics

if TYPE_CHECKING:
    from crashlog.analytics import Statistics

log = logging.getLogger("crashlog")

# The reading methods (crashlog.reading) import analytics and exports where they are called: a
# bot that only writes never loads them (thousands of lines, and pyarrow for Parquet).


def connect(
    dsn: str | None = None,
    *,
    project: bool = True,
    projections: Sequence[Projection] | None = None,
    **options: Any,
) -> Logger:
    """A logger for the server at ``dsn`` (else ``CRASHLOG_DSN``, else the embedded one).

    Use it as ``async with crashlog.connect() as log:`` or ``log = await crashlog.connect()``;
    ``options`` are the fields of ``Settings``. With ``project=True`` (the default) this
    process also keeps the read tables current; with ``project=False`` it only writes.
    ``projections``: your own (``@projection``), applied beside the built-ins (default: those
    ``CRASHLOG_PROJECTIONS`` names); a bad one raises ``InvalidProjection`` naming it, here or
    at open, before anything is created.
    """
    if projections is None:
        projections = registry.from_environment() if project else []
    return Logger(dsn, Settings(**options), project=project,
                  projections=registry.register(list(projections)))


class Logger:
    """Validates, buffers and appends events. Open it with ``connect()``."""

    def __init__(
        self, dsn: str | None, settings: Settings, *, project: bool = True,
        projections: Sequence[Projection] = (),
    ) -> None:
        self._project = project
        self._user_projections = list(projections)
        self._runners: list[Runner] = []
        self._dsn_argument = dsn
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._writer: BatchWriter | None = None
        self._preparing: asyncio.Task[None] | None = None  # the schema check, with a spool
        self._schema_error: BaseException | None = None  # what that check found, if anything
        self._dsn = ""  # resolved at open; subscriptions connect to it
        self._reader: AsyncReader | None = None

    # -- opening and closing -------------------------------------------------------------

    async def open(self) -> Logger:
        """Reach the server, bring its schema up to date (or refuse), start the writer.

        With ``spool_dir`` set, a server that does not answer does not stop it: the writer
        starts at once and spools; the schema check, then the writes, the spool's replay
        and the projections, wait for the server (see ``_prepare_when_reachable``).
        """
        if self._writer is not None:
            return self
        dsn = self._dsn = await asyncio.to_thread(resolve_dsn, self._dsn_argument)
        lazy = self.settings.spool_dir is not None
        pool = self._pool = await open_pool(
            dsn,
            min_size=0 if lazy else 1,  # with a spool, connect when the server answers
            max_size=self.settings.pool_size,
            init=store.init_connection,
            timeout=self.settings.connect_timeout,
            server_settings={"application_name": "crashlog"},
        )
        ready = True
        try:
            try:
                async with pool.acquire() as conn:
                    await self._prepare_schema(conn)
            except Exception as error:
                if not (lazy and _unreachable(error)):
                    raise
                ready = False
                log.warning("crashlog: the server does not answer (%s); events go to the spool "
                            "until it does", mask_error(error, dsn))
            self._writer = BatchWriter(pool, self.settings, ready=ready)
        except BaseException:  # e.g. the spool folder is another process's
            await pool.close()
            raise
        self._writer.start()
        if ready:
            self._start_projections(dsn)
        else:
            self._preparing = asyncio.get_running_loop().create_task(
                self._prepare_when_reachable(dsn, self._writer), name="crashlog-schema-check")
        return self

    def _start_projections(self, dsn: str) -> None:
        if self._project:  # the projections, in-process, on connections of their own
            self._runners = side_by_side(dsn, [*PROJECTIONS, *self._user_projections],
                                         connections=self.settings.projection_connections)
            for runner in self._runners:
                runner.start()

    async def _prepare_when_reachable(self, dsn: str, writer: BatchWriter) -> None:
        """Check the schema once the server answers; then open the gate to it."""
        delay = 0.1
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await self._prepare_schema(conn)
                break
            except Exception as error:
                if _unreachable(error):
                    log.info("crashlog: the server does not answer yet: %s", mask_error(error, dsn))
                else:  # surfaces at the next flush, sync or aclose too
                    self._schema_error = error
                    log.error("crashlog: the schema cannot be used, events stay in the spool: %s",
                              mask_error(error, dsn))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        self._schema_error = None
        log.info("crashlog: the server answers; the spool is replayed")
        writer.ready.set()
        self._start_projections(dsn)

    def _raise_schema_error(self) -> None:
        error = self._schema_error
        if error is not None:
            raise MigrationError("the schema cannot be used, events wait in the spool: "
                                 f"{mask_error(error, self._dsn)}")

    async def _prepare_schema(self, conn: asyncpg.Connection) -> None:
        if self.settings.migrate:
            await migrations.migrate(conn)
        else:
            pending = await migrations.pending_migrations(conn)
            if pending:
                names = ", ".join(m.name for m in pending)
                raise MigrationError(
                    f"the database needs migrations first: {names} (crashlog migrate)")
        if self._project and self._user_projections:
            await registry.check(conn, self._user_projections)

    async def aclose(self, timeout: float | None = None) -> None:
        """Commit everything emitted, then release the connections.

        Raises ``NotFlushed`` (saying how many events and where) if that takes
        longer than ``timeout`` seconds (default ``Settings.close_timeout``); the
        events it names were not acknowledged and are given up with the logger.
        """
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        if self._preparing is not None:
            self._preparing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._preparing
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
        self._raise_schema_error()

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

        Raises ``NotFlushed`` saying how many are pending, and where, after ``timeout`` seconds;
        ``WriterFailed`` if the writer stopped for good; ``MigrationError`` if the schema
        check (deferred while the server was away, with a spool) failed.
        """
        writer = self._open_writer()
        self._raise_schema_error()
        await writer.flush(timeout)

    async def sync(self, timeout: float | None = None) -> None:
        """Return once every event emitted before this call is committed and applied by
        every projection (in this process or any other runner).

        Raises ``NotFlushed`` saying how many events are not yet committed, or not yet
        projected, after ``timeout`` seconds. An open transaction anywhere on the server
        holds the projections back, and with them this call.
        """
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        await self.flush(timeout)
        writer = self._open_writer()
        if not writer.ready.is_set():  # connected with the server away: wait for it
            remaining = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
            try:
                await asyncio.wait_for(writer.ready.wait(), remaining)
            except TimeoutError:
                where = writer.where()
                raise NotFlushed("sync", timeout or 0, sum(where.values()), where) from None
        for runner in self._runners:
            runner.wake()
        remaining = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
        async with self.pool.acquire() as conn:
            await wait_projected(conn, remaining,
                                 also=[p.name for p in self._user_projections if self._project])

    def metrics(self) -> Metrics:
        """Counters: emitted, committed, duplicates, retried, rejected, spooled, buffered, ..."""
        return self._open_writer().metrics()

    # -- consuming the log ---------------------------------------------------------------

    def subscribe(
        self,
        name: str | None,
        events: Iterable[type[Event] | str] | None = None,
        start: Start = "beginning",
        *,
        batch_size: int = SUBSCRIPTION_BATCH,
    ) -> Subscription:
        """A consumer of the log: ``async with log.subscribe("alerts", events=[...]) as sub:
        async for batch in sub: ...; await batch.ack()`` (see ``crashlog.subscriptions``).

        Batches of decoded, upcast events in commit-safe order, at least once, one consumer
        per ``name`` at a time (a second waits and takes over); ``start`` ("beginning",
        "end" or a position) applies to a name never seen. ``name=None``: an ephemeral
        follower (no checkpoint, no exclusion). It runs on a connection of its own.
        """
        if not self._dsn or self._writer is None:
            raise LoggerClosed("the logger is not open (use 'async with crashlog.connect()')")
        return Subscription(
            self._dsn, name, events=events, start=start, batch_size=batch_size,
            connect_options={"timeout": self.settings.connect_timeout},
        )

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


def _unreachable(error: BaseException) -> bool:
    """True when the server did not answer (or not yet), rather than answered with a refusal."""
    if isinstance(error, ConnectFailed):
        return True
    if isinstance(error, asyncpg.PostgresError):  # shutting down, starting up, out of slots
        return (error.sqlstate or "")[:2] in ("08", "57", "53")
    return is_transient(error)  # the network, a timeout
