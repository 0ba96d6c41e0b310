"""The buffered writer: events wait in memory and are appended in batches by one background task.

Promises:
- ``enqueue`` does no I/O while the buffer has room; when it is full it waits
  (or raises, by policy). Nothing is dropped.
- Batches are written one at a time, in emit order, so each bot's events land
  in the log in the order it emitted them.
- A transient failure is retried (exponential backoff with jitter) with
  conflict handling, so an append that committed before its reply was lost adds
  nothing twice. A row the server refuses is isolated by bisection into
  ``crashlog.rejected_events`` while the rest of its batch commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
import asyncpg
import attrs
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from crashlog import store
from crashlog.errors import BufferFull, LoggerClosed, NotFlushed
from crashlog.settings import Settings
from crashlog.store import Row

log = logging.getLogger("crashlog.writer")

# SQLSTATE classes worth retrying: connection (08), resources (53), operator
# intervention such as a restart (57), transaction rollback such as deadlock (40).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")

# emit() hands the event loop to the writer once per this many events (a few microseconds each time).
_YIELD_EVERY = 256


def is_transient(error: BaseException) -> bool:
    """True for failures that a later attempt of the same batch may get past."""
    if isinstance(error, asyncpg.PostgresError):
        return (error.sqlstate or "")[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if isinstance(error, asyncpg.DataError):  # asyncpg could not encode a value: retrying won't help
        return False
    return isinstance(error, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError))


# What a single row can be refused with: an error from the server, or from asyncpg encoding it.
_REFUSALS = (asyncpg.PostgresError, asyncpg.DataError)


@attrs.frozen
class Metrics:
    """A snapshot of a logger's counters."""

    emitted: int
    committed: int
    duplicates: int
    retried: int
    rejected: int
    spooled: int
    buffered: int
    in_flight: int
    batches: int
    last_flush_latency: float | None


class BatchWriter:
    """Owns the buffer and the task that drains it into the store."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._buffer: deque[Row] = deque()
        self._in_flight = 0
        self._emitted = 0  # events accepted so far; the n-th has sequence number n
        self._done = 0  # events whose fate is sealed (committed, duplicate or rejected), in order
        self._counts = {"committed": 0, "duplicates": 0, "retried": 0, "rejected": 0, "batches": 0}
        self._last_latency: float | None = None
        self._arrived = asyncio.Event()  # the buffer went from empty to non-empty
        self._batch_ready = asyncio.Event()  # a full batch is waiting, or someone is flushing
        self._room = asyncio.Event()  # the buffer has room again
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # -- the caller's side ---------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="crashlog-writer")

    def offer(self, row: Row) -> bool:
        """Accept a row if the buffer has room (no I/O, no waiting); False when it is full."""
        if self._closing:
            raise LoggerClosed("the logger is closed; no more events are accepted")
        if len(self._buffer) + self._in_flight >= self._settings.buffer_size:
            return False
        self._buffer.append(row)
        self._emitted += 1
        size = len(self._buffer)
        if size == 1:
            self._arrived.set()
        elif size >= self._settings.batch_size:
            self._batch_ready.set()
        return True

    def wants_turn(self) -> bool:
        """True once per ``_YIELD_EVERY`` events: the caller should give the event loop a turn.

        A caller that never awaits anything else would starve the writer, whose COPY
        needs several turns of the loop (a reply to read, data to send).
        """
        return self._emitted % _YIELD_EVERY == 0

    async def enqueue(self, row: Row) -> None:
        """Accept a row, waiting for room while the buffer is full (or raising, by policy)."""
        while not self.offer(row):
            if self._settings.on_full == "raise":
                raise BufferFull(f"{self._settings.buffer_size} events are already waiting")
            self._room.clear()
            await self._room.wait()
        if self.wants_turn():
            await asyncio.sleep(0)

    async def flush(self, timeout: float | None = None, *, action: str = "flush") -> None:
        """Return once every row enqueued before this call is committed (or rejected)."""
        target = self._emitted
        if self._done >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self._batch_ready.set()
        self._arrived.set()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise NotFlushed(action, timeout or 0, target - self._done, self.where()) from None
        finally:
            if not future.done():
                future.cancel()
                self._waiters = [(t, f) for t, f in self._waiters if f is not future]

    async def close(self, timeout: float | None) -> None:
        """Drain the buffer within ``timeout``, then stop. Raises ``NotFlushed`` if it could not."""
        self._closing = True
        self._room.set()
        self._arrived.set()
        self._batch_ready.set()
        try:
            await self.flush(timeout, action="close")
        finally:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)

    def where(self) -> dict[str, int]:
        """Where the events not yet done are."""
        return {"buffer": len(self._buffer), "in_flight": self._in_flight}

    def metrics(self) -> Metrics:
        return Metrics(
            emitted=self._emitted,
            spooled=0,
            buffered=len(self._buffer),
            in_flight=self._in_flight,
            last_flush_latency=self._last_latency,
            **self._counts,
        )

    # -- the background task -------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if len(self._buffer) < self._settings.batch_size and not self._urgent():
                # Linger briefly so a trickle of events still goes out in few transactions.
                self._batch_ready.clear()
                try:
                    await asyncio.wait_for(self._batch_ready.wait(), self._settings.flush_interval)
                except asyncio.TimeoutError:
                    pass
            await self._write_batch(self._take_batch())

    def _urgent(self) -> bool:
        return self._closing or bool(self._waiters)

    def _take_batch(self) -> list[Row]:
        count = min(len(self._buffer), self._settings.batch_size)
        batch = [self._buffer.popleft() for _ in range(count)]
        self._in_flight = count
        return batch

    async def _write_batch(self, batch: list[Row]) -> None:
        started = time.perf_counter()
        while True:
            try:
                await self._append_with_retries(batch)
                break
            except Exception as error:  # past the retry deadline: keep the batch, never drop it
                log.warning(
                    "crashlog: %d events not yet written, still retrying: %s",
                    len(batch) + len(self._buffer),
                    error,
                )
                await asyncio.sleep(1.0)
        self._last_latency = time.perf_counter() - started
        self._counts["batches"] += 1
        self._in_flight = 0
        self._done += len(batch)
        self._release()

    async def _append_with_retries(self, batch: list[Row]) -> None:
        attempt_number = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=0.05, max=5.0),
            stop=stop_after_delay(self._settings.retry_deadline),
            before_sleep=self._count_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                attempt_number += 1
                # Only a retry can meet its own earlier rows, so only a retry pays for conflict handling.
                await self._append(batch, first_try=attempt_number == 1)

    def _count_retry(self, state: RetryCallState) -> None:
        self._counts["retried"] += 1
        error = state.outcome.exception() if state.outcome else None
        log.info("crashlog: retrying a batch of %d events after: %s", self._in_flight, error)

    async def _append(self, batch: list[Row], *, first_try: bool) -> None:
        async with self._pool.acquire() as conn:
            if first_try:
                try:
                    self._counts["committed"] += await store.copy_rows(conn, batch)
                    return
                except asyncpg.UniqueViolationError:
                    pass  # an id that is already stored: take the path that skips it
                except _REFUSALS as error:
                    if is_transient(error):
                        raise
            await self._append_isolating(conn, batch)

    async def _append_isolating(self, conn: asyncpg.Connection, batch: list[Row]) -> None:
        """Append idempotently; a refused batch is halved until the refused rows stand alone."""
        try:
            inserted = await store.insert_rows_idempotent(conn, batch)
        except _REFUSALS as error:
            if is_transient(error):
                raise
            if len(batch) == 1:
                await store.reject_row(conn, batch[0], error)
                self._counts["rejected"] += 1
                log.error("crashlog: event %s refused by the server: %s", batch[0].event_id, error)
                return
            middle = len(batch) // 2
            await self._append_isolating(conn, batch[:middle])
            await self._append_isolating(conn, batch[middle:])
            return
        self._counts["committed"] += inserted
        self._counts["duplicates"] += len(batch) - inserted

    def _release(self) -> None:
        """Wake the flushers whose events are all done, and emitters waiting for room."""
        still_waiting = []
        for target, future in self._waiters:
            if target <= self._done:
                if not future.done():
                    future.set_result(None)
            else:
                still_waiting.append((target, future))
        self._waiters = still_waiting
        if len(self._buffer) < self._settings.buffer_size:
            self._room.set()
