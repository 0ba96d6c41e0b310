"""A synchronous ``Logger`` for bots that are not async.

    from crashlog.sync import connect

    with connect() as log:                 # dsn: argument, CRASHLOG_DSN, else embedded
        log.emit(RoundSettled(...))
        log.sync()
        print(log.bot_statistics("my_bot"))

The asynchronous logger runs on an event loop in a background thread of its own; each
method hands its work to that loop and waits for the answer. It is safe to call from
several threads at once, and one thread's events keep the order it emitted them in.
Leaving the ``with`` block (or ``close()``) commits everything emitted; a logger still
open when the interpreter exits is closed then too, so an acknowledged event is not
left in memory.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import asyncpg

from crashlog.errors import LoggerClosed
from crashlog.events import Event
from crashlog.logger import Logger
from crashlog.logger import connect as connect_async
from crashlog.loop_thread import LoopThread
from crashlog.reading import Reader
from crashlog.subscriptions import Start, Subscription, SubscriptionBatch
from crashlog.writer import Metrics

if TYPE_CHECKING:
    from crashlog.analytics import Statistics

T = TypeVar("T")


def connect(dsn: str | None = None, **options: Any) -> SyncLogger:
    """An open synchronous logger; ``options`` are those of ``crashlog.connect``."""
    return SyncLogger(dsn, **options)


class SyncLogger:
    """The ``Logger``'s methods, blocking, from any thread."""

    def __init__(self, dsn: str | None = None, **options: Any) -> None:
        self._loop_thread = LoopThread("a SyncLogger")
        self._lock = threading.Lock()
        self._closed = False
        try:
            self._logger: Logger = self._call(connect_async(dsn, **options).open())
        except BaseException:
            self._stop_loop()
            raise
        atexit.register(self._close_at_exit)

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._loop_thread.call(coroutine, timeout)

    def _live(self) -> Logger:
        if self._closed:
            raise LoggerClosed("the logger is closed")
        return self._logger

    # -- writing -------------------------------------------------------------------------

    def emit(self, event: Event) -> UUID:
        """Validate and buffer ``event``; returns its id (see ``Logger.emit``)."""
        return self._call(self._live().emit(event))

    def flush(self, timeout: float | None = None) -> None:
        """Return once every event emitted before this call is committed."""
        self._call(self._live().flush(timeout))

    def sync(self, timeout: float | None = None) -> None:
        """Return once every event emitted before this call is committed and projected."""
        self._call(self._live().sync(timeout))

    def metrics(self) -> Metrics:
        return self._live().metrics()

    # -- consuming the log ---------------------------------------------------------------

    def subscribe(
        self,
        name: str | None,
        events: Iterable[type[Event] | str] | None = None,
        start: Start = "beginning",
        **options: Any,
    ) -> SyncSubscription:
        """``Logger.subscribe`` as a plain iterator (and context manager) of batches:
        ``with log.subscribe("alerts") as sub: for batch in sub: ...; batch.ack()``."""
        return SyncSubscription(self, self._live().subscribe(name, events, start, **options))

    # -- reading -------------------------------------------------------------------------

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool; it belongs to the background loop: use it through ``run``."""
        return self._live().pool

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine of your own (e.g. a query on ``pool``) on the logger's loop."""
        return self._call(coroutine, timeout)

    @property
    def reader(self) -> Reader:
        """A ``Reader`` over this logger's pool and loop (tables, statistics, exports)."""
        return Reader(self._live().reader, self._call)

    def bot_statistics(self, bot_id: str, strategy: str | None = None, **options: Any) -> Statistics:
        """``reader.bot_statistics`` of what is projected so far (``sync()`` first)."""
        return self.reader.bot_statistics(bot_id, strategy, **options)

    def strategy_statistics(self, strategy: str, **options: Any) -> Statistics:
        return self.reader.strategy_statistics(strategy, **options)

    def export_rounds(
        self, out: str | Path | IO[bytes], format: str = "jsonl", **filters: Any
    ) -> int:
        """``crashlog.exports.export_rounds``: rows written."""
        return self.reader.export_rounds(out, format, **filters)

    def export_multipliers(
        self, out: str | Path | IO[bytes], format: str = "jsonl", **filters: Any
    ) -> int:
        """``crashlog.exports.export_multipliers``: rows written."""
        return self.reader.export_multipliers(out, format, **filters)

    # -- closing -------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Commit everything emitted, release the connections and stop the loop thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        try:
            self._call(self._logger.aclose(timeout))
        finally:
            self._stop_loop()

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception as exc:  # at exit there is no caller left to raise to
            import logging

            logging.getLogger("crashlog").error("closing the logger at exit: %s", exc)

    def _stop_loop(self) -> None:
        self._loop_thread.stop()

    def __enter__(self) -> SyncLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncSubscription:
    """A subscription's batches, blocking: iterate it (``for batch in sub``), optionally inside
    ``with`` (leaving the block releases the name at once). The promises are the async
    subscription's (``crashlog.subscriptions``): at least once, acknowledged by
    ``batch.ack()`` or by asking for the next batch; a loop left early acknowledges nothing."""

    def __init__(self, logger: SyncLogger, subscription: Subscription) -> None:
        self._call = logger._call  # noqa: SLF001
        self._subscription = subscription

    def __iter__(self) -> Iterator[SyncBatch]:
        batches = self._subscription.__aiter__()
        try:
            while True:
                try:
                    batch = self._call(_next(batches))
                except StopAsyncIteration:
                    return
                yield SyncBatch(batch, self._call)
        finally:  # a loop left early: the iterator (and a name it opened) is closed now
            self._call(batches.aclose())  # type: ignore[attr-defined]

    def close(self) -> None:
        """Release the name and the connection; a batch not acknowledged comes again."""
        self._call(self._subscription.close())

    def __enter__(self) -> SyncSubscription:
        self._call(self._subscription.open())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncBatch:
    """A delivered batch: ``events``, ``rows``, ``start``, ``end`` and a blocking ``ack()``."""

    def __init__(self, batch: SubscriptionBatch, call: Any) -> None:
        self._batch = batch
        self._call = call
        self.rows = batch.rows
        self.start = batch.start
        self.end = batch.end

    @property
    def events(self) -> list[Any]:
        return self._batch.events

    def ack(self) -> None:
        """Record that this batch is handled (see ``SubscriptionBatch.ack``)."""
        self._call(self._batch.ack())

    def __len__(self) -> int:
        return len(self._batch)


async def _next(batches: AsyncIterator[SubscriptionBatch]) -> SubscriptionBatch:
    return await batches.__anext__()
