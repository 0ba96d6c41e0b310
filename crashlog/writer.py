"""The buffered writer: events wait in memory and are appended in batches by one background task.

Promises:
- ``enqueue`` does no I/O while the buffer has room; when it is full it waits
  (or raises, by policy). Nothing is dropped.
- Each bot's events land in the log in the order it emitted them. Bots are
  spread by a hash of ``bot_id`` over a few lanes; a lane writes one batch at a
  time, so while the server stores one lane's batch another lane's is on its way.
- Each batch is stored by the ``crashlog.appender.Appender``: a transient failure
  is retried (exponential backoff with jitter) with conflict handling, so an append
  that committed before its reply was lost adds nothing twice; a row the server
  refuses is isolated by bisection into ``crashlog.rejected_events`` while the rest
  of its batch commits.
- With ``spool_dir`` set, a batch still not stored at the retry deadline (or at
  once, when the buffer is full and ``on_full="spool"``) is written to the local
  spool and counts as done; the spool is replayed in order, idempotently, when
  the server answers again and at the next start (see ``crashlog.spool``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import cast

import asyncpg
import attrs

from crashlog.appender import Appender
from crashlog.appender import is_transient as is_transient  # its home before the appender
from crashlog.errors import BufferFull, LoggerClosed, NotFlushed
from crashlog.settings import Settings
from crashlog.spool import Spool, Spooler
from crashlog.store import DecodedRows, Row

log = logging.getLogger("crashlog.writer")

# emit() hands the event loop to the writer once per this many events (a few microseconds each time).
_YIELD_EVERY = 1024


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
    """Owns the buffer (split into lanes) and the tasks that drain it into the store."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._settings = settings
        self.appender = Appender(pool, retry_deadline=settings.retry_deadline)
        self._lanes = [
            _Lane(self, index, batch_size=settings.batch_size, flush_interval=settings.flush_interval)
            for index in range(settings.writer_lanes)
        ]
        self._held = 0  # events accepted and not yet done, over all lanes
        self._emitted = 0
        self._batches = 0
        self.last_latency: float | None = None
        self._room = asyncio.Event()  # the buffer has room again
        self.closing = False
        self.spooler: Spooler | None = None
        if settings.spool_dir is not None:
            spool = Spool.open(settings.spool_dir, max_bytes=settings.spool_max_bytes)
            # Replay takes the COPY fast path too: a batch already stored (spooled after an
            # ambiguous failure, or replayed before a crash) fails whole, then goes idempotent.
            self.spooler = Spooler(spool, self.appender.append_rows)

    # -- the caller's side ---------------------------------------------------------------

    def start(self) -> None:
        for lane in self._lanes:
            lane.start()
        if self.spooler is not None:
            self.spooler.start()  # replay what an earlier process left

    def offer(self, row: bytes, bot_id: str) -> bool:
        """Accept a row (a COPY tuple, see ``store.copy_tuple``) of ``bot_id`` if the buffer
        has room (no I/O, no waiting); False when it is full."""
        if self.closing:
            raise LoggerClosed("the logger is closed; no more events are accepted")
        if self._held >= self._settings.buffer_size:
            return False
        self._held += 1
        self._emitted += 1
        lanes = self._lanes
        lanes[hash(bot_id) % len(lanes) if len(lanes) > 1 else 0].accept(row)
        return True

    def wants_turn(self) -> bool:
        """True once per ``_YIELD_EVERY`` events: the caller should give the event loop a turn.

        A caller that never awaits anything else would starve the writer, whose COPY
        needs several turns of the loop (a reply to read, data to send).
        """
        return self._emitted % _YIELD_EVERY == 0

    async def enqueue(self, row: bytes, bot_id: str) -> None:
        """Accept a row, waiting for room while the buffer is full (or raising, by policy)."""
        while not self.offer(row, bot_id):
            if self._settings.on_full == "raise":
                raise BufferFull(f"{self._settings.buffer_size} events are already waiting")
            if self._settings.on_full == "spool" and self.spooler is not None:
                self.spooler.spill()
            self._room.clear()
            await self._room.wait()
        if self.wants_turn():
            await asyncio.sleep(0)

    async def flush(self, timeout: float | None = None, *, action: str = "flush") -> None:
        """Return once every row accepted before this call is committed (or rejected)."""
        targets = [(lane, lane.accepted) for lane in self._lanes if lane.done < lane.accepted]
        if not targets:
            return
        try:
            await asyncio.wait_for(
                asyncio.gather(*(lane.reached(target) for lane, target in targets)), timeout
            )
        except TimeoutError:
            pending = sum(max(0, target - lane.done) for lane, target in targets)
            raise NotFlushed(action, timeout or 0, pending, self.where()) from None

    async def close(self, timeout: float | None) -> None:
        """Drain the buffer within ``timeout``, then stop. Raises ``NotFlushed`` if it could not."""
        self.closing = True
        self._room.set()
        for lane in self._lanes:
            lane.wake()
        try:
            await self.flush(timeout, action="close")
        finally:
            await asyncio.gather(*(lane.stop() for lane in self._lanes))
            if self.spooler is not None:
                await self.spooler.close()

    def where(self) -> dict[str, int]:
        """Where the events not yet done are."""
        where = {
            "buffer": sum(len(lane.buffer) for lane in self._lanes),
            "in_flight": sum(lane.in_flight for lane in self._lanes),
        }
        if self.spooler is not None:
            where["spool"] = self.spooler.spool.pending_events
        return where

    def metrics(self) -> Metrics:
        where = self.where()
        return Metrics(
            emitted=self._emitted,
            spooled=self.spooler.spool.stats().spooled_events if self.spooler else 0,
            buffered=where["buffer"],
            in_flight=where["in_flight"],
            last_flush_latency=self.last_latency,
            batches=self._batches,
            **attrs.asdict(self.appender.counts),
        )

    # -- called by the lanes -------------------------------------------------------------

    def batch_done(self, size: int, latency: float | None) -> None:
        """``size`` rows of a lane are done; ``latency``: how long their commit took (None
        when they went to the spool instead)."""
        if latency is not None:
            self.last_latency = latency
        self._batches += 1
        self._held -= size
        if self._held < self._settings.buffer_size:
            self._room.set()

    async def append_with_retries(self, batch: list[bytes]) -> None:
        """Store ``batch`` through the appender, retrying transient failures until the retry
        deadline, or until the buffer is full and the policy says spool."""
        stop = self.spooler.spill_event if self.spooler is not None else None
        await self.appender.append_with_retries(batch, stop=stop)


class _Lane:
    """An ordered stream of batches: one task, one batch in flight at a time."""

    def __init__(self, writer: BatchWriter, index: int, *, batch_size: int, flush_interval: float) -> None:
        self._writer = writer
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._index = index
        self.buffer: deque[bytes] = deque()  # COPY tuples, see store.copy_tuple
        self.in_flight = 0
        self.accepted = 0  # rows accepted so far; the n-th row has sequence number n
        self.done = 0  # rows whose fate is sealed (committed, duplicate or rejected), in order
        self._arrived = asyncio.Event()  # the buffer went from empty to non-empty
        self._batch_ready = asyncio.Event()  # a full batch is waiting, or someone is flushing
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"crashlog-writer-{self._index}"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def accept(self, row: bytes) -> None:
        self.buffer.append(row)
        self.accepted += 1
        size = len(self.buffer)
        if size == 1:
            self._arrived.set()
        elif size >= self._batch_size:
            self._batch_ready.set()

    def wake(self) -> None:
        self._arrived.set()
        self._batch_ready.set()

    async def reached(self, target: int) -> None:
        """Return once the first ``target`` rows of this lane are done."""
        if self.done >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self.wake()
        try:
            await future
        finally:
            self._waiters = [(t, f) for t, f in self._waiters if f is not future]

    async def _run(self) -> None:
        while True:
            if not self.buffer:
                if self._writer.closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if len(self.buffer) < self._batch_size and not self._urgent():
                # Linger briefly so a trickle of events still goes out in few transactions.
                self._batch_ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_ready.wait(), self._flush_interval)
            await self._write(self._take_batch())

    def _urgent(self) -> bool:
        return self._writer.closing or bool(self._waiters)

    def _take_batch(self) -> list[bytes]:
        count = min(len(self.buffer), self._batch_size)
        buffer = self.buffer
        batch = [buffer.popleft() for _ in range(count)]
        self.in_flight = count
        return batch

    async def _write(self, batch: list[bytes]) -> None:
        started = time.perf_counter()
        spooler = self._writer.spooler
        committed = True
        if spooler is not None:  # committed, or spooled (acknowledged) when it cannot be
            # The spool reads rows, decoded only if it takes the batch; the direct path sends
            # the encoded batch as it is.
            rows = cast("list[Row]", DecodedRows(batch))
            outcome = await spooler.write(rows, lambda _rows: self._writer.append_with_retries(batch))
            committed = outcome == "committed"
        else:
            while True:
                try:
                    await self._writer.append_with_retries(batch)
                    break
                except Exception as error:  # past the retry deadline: keep the batch, never drop it
                    log.warning(
                        "crashlog: %d events not yet written, still retrying: %s",
                        len(batch) + len(self.buffer),
                        error,
                    )
                    await asyncio.sleep(1.0)
        self.in_flight = 0
        self.done += len(batch)
        self._writer.batch_done(len(batch), time.perf_counter() - started if committed else None)
        for target, future in self._waiters:
            if target <= self.done and not future.done():
                future.set_result(None)
