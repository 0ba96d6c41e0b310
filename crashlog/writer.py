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
  the server answers again and at the next start (see ``crashlog.spool``). A disk
  error of the spool keeps the batch in memory (``spool_errors``) until the disk or
  the server takes it.
- A batch leaves memory only once it is committed or spooled: a lane's task that ends
  unexpectedly is restarted (``writer_restarts``) and takes up its batch again. Past
  ``max_lane_restarts`` restarts within ``lane_restart_window`` seconds the writer
  fails: ``offer``, ``enqueue`` and ``flush`` raise ``WriterFailed`` saying why.
- Nothing goes to the server before ``ready`` is set (the schema is in place); until
  then, batches go to the spool.
- The pool's sessions are replaced every ``connection_max_age`` seconds, and after a
  server error, so a setting changed on the server reaches the writer.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import time
from collections import deque
from typing import cast

import asyncpg
import attrs

from crashlog import spool_folders
from crashlog.appender import Appender, may_pass_later
from crashlog.appender import is_transient as is_transient  # its home before the appender
from crashlog.errors import BufferFull, LoggerClosed, NotFlushed, WriterFailed
from crashlog.rows import Row
from crashlog.settings import Settings
from crashlog.spool import Spooler, SpoolFull
from crashlog.store import DecodedRows

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
    #: Attempts the server refused for the whole batch (privilege, missing table): kept, retried.
    refused_batches: int = 0
    #: Spool writes that failed (a disk error, or the byte cap); their batches were kept.
    spool_errors: int = 0
    #: Writer lanes restarted after their task ended unexpectedly.
    writer_restarts: int = 0
    #: Commit latency of batches as a histogram: per upper bound in ``FLUSH_BUCKETS``
    #: (seconds), how many batches took at most that long (cumulative, as Prometheus counts).
    flush_seconds_buckets: tuple[int, ...] = ()
    flush_seconds_sum: float = 0.0
    flush_seconds_count: int = 0
    #: Bytes on disk in the spool, not yet replayed (0 without a spool).
    spool_bytes: int = 0


#: Upper bounds (seconds) of the commit-latency histogram; the last catches everything.
FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                 30.0, float("inf"))


class BatchWriter:
    """Owns the buffer (split into lanes) and the tasks that drain it into the store."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, *, ready: bool = True) -> None:
        self._settings = settings
        self._pool = pool
        self.appender = Appender(pool, retry_deadline=settings.retry_deadline)
        #: Set once the schema is known to be in place; nothing reaches the server before.
        self.ready = asyncio.Event()
        if ready:
            self.ready.set()
        #: Why the writer stopped for good, once it has.
        self.failure: WriterFailed | None = None
        self.restarts = 0
        self._endings: deque[float] = deque()  # when lanes ended unexpectedly, within the window
        self._recycler: asyncio.Task[None] | None = None
        self._lanes = [
            _Lane(self, index, batch_size=settings.batch_size, flush_interval=settings.flush_interval)
            for index in range(settings.writer_lanes)
        ]
        self._held = 0  # events accepted and not yet done, over all lanes
        self._emitted = 0
        self._batches = 0
        self.last_latency: float | None = None
        self._latency_counts = [0] * len(FLUSH_BUCKETS)  # per bucket, not cumulative: O(log n) each
        self._latency_sum = 0.0
        self._room = asyncio.Event()  # the buffer has room again
        self.closing = False
        self.spooler: Spooler | None = None
        if settings.spool_dir is not None:
            # A subfolder of its own: one folder serves every logger of the host.
            spool = spool_folders.claim(settings.spool_dir, max_bytes=settings.spool_max_bytes)
            # Replay takes the COPY fast path too: a batch already stored (spooled after an
            # ambiguous failure, or replayed before a crash) fails whole, then goes idempotent.
            self.spooler = Spooler(spool, self._replay, ready=self.ready)

    # -- the caller's side ---------------------------------------------------------------

    def start(self) -> None:
        for lane in self._lanes:
            lane.start()
        if self.spooler is not None:
            self.spooler.start()  # replay what an earlier process left
        self._recycler = asyncio.get_running_loop().create_task(
            self._recycle_sessions(), name="crashlog-session-recycler")

    async def _recycle_sessions(self) -> None:
        while True:  # ALTER DATABASE/ROLE ... SET reaches only sessions opened after it
            await asyncio.sleep(self._settings.connection_max_age)
            await self._pool.expire_connections()

    def offer(self, row: bytes, bot_id: str) -> bool:
        """Accept a row (a COPY tuple, see ``store.copy_tuple``) of ``bot_id`` if the buffer
        has room (no I/O, no waiting); False when it is full."""
        if self.failure is not None:
            raise self.failure
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
        if self.failure is not None:
            raise self.failure
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
            if self._recycler is not None:
                self._recycler.cancel()
            if self.spooler is not None:
                if self.failure is not None:
                    await self._spool_leftovers(self.spooler)
                await self.spooler.close()

    async def _spool_leftovers(self, spooler: Spooler) -> None:
        """A failed writer's rows still in memory go to the spool at close, to be replayed at
        the next start (a batch that was committed after all adds nothing twice)."""
        for lane in self._lanes:
            rows = [*(lane.batch or ()), *lane.buffer]
            if not rows:
                continue
            try:
                await asyncio.to_thread(spooler.spool.append, list(DecodedRows(rows)))
            except (SpoolFull, OSError) as error:
                log.critical("crashlog: %d events of a failed writer could not be spooled at "
                             "close and are lost: %s", len(rows), error,
                             extra={"events": len(rows), "lane": lane.index})
                continue
            log.error("crashlog: %d events of a failed writer were spooled at close; the next "
                      "logger on this spool replays them", len(rows),
                      extra={"events": len(rows), "lane": lane.index})
            lane.batch = None
            lane.buffer.clear()

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
            spool_errors=self.spooler.errors if self.spooler else 0,
            writer_restarts=self.restarts,
            flush_seconds_buckets=tuple(itertools.accumulate(self._latency_counts)),
            flush_seconds_sum=self._latency_sum,
            flush_seconds_count=sum(self._latency_counts),
            spool_bytes=self.spooler.spool.stats().pending_bytes if self.spooler else 0,
            **attrs.asdict(self.appender.counts),
        )

    # -- the supervisor ------------------------------------------------------------------

    def lane_ended(self, lane: _Lane, task: asyncio.Task[None]) -> None:
        """A lane's task ended: restart it, unless it was stopped, or ended too often."""
        if lane.stopping:
            return
        error = None if task.cancelled() else task.exception()
        if not task.cancelled() and error is None and self.closing:
            return  # drained at close: its normal end
        how = "was cancelled" if task.cancelled() else f"failed: {error!r}" if error else "returned"
        now = time.monotonic()
        self._endings.append(now)
        window = self._settings.lane_restart_window
        while self._endings and self._endings[0] < now - window:
            self._endings.popleft()
        if len(self._endings) > self._settings.max_lane_restarts:
            self.fail(f"writer lane {lane.index} {how}, after {len(self._endings) - 1} restarts "
                      f"within {window:g}s (max_lane_restarts={self._settings.max_lane_restarts})")
            return
        self.restarts += 1
        log.error("crashlog: writer lane %d %s; restarting it (its batch is kept)", lane.index, how,
                  exc_info=error, extra={"lane": lane.index, "writer_restarts": self.restarts})
        lane.start()

    def fail(self, reason: str) -> None:
        """Stop for good: every waiting and later ``emit``/``flush`` raises ``WriterFailed``."""
        self.failure = WriterFailed(
            f"the writer stopped: {reason}; {sum(self.where().values())} events not yet written")
        log.critical("crashlog: %s", self.failure, extra={"writer_restarts": self.restarts})
        for lane in self._lanes:
            lane.fail(self.failure)
        self._room.set()

    # -- called by the lanes -------------------------------------------------------------

    def batch_done(self, size: int, latency: float | None) -> None:
        """``size`` rows of a lane are done; ``latency``: how long their commit took (None
        when they went to the spool instead)."""
        if latency is not None:
            self.last_latency = latency
            self._latency_counts[bisect.bisect_left(FLUSH_BUCKETS, latency)] += 1
            self._latency_sum += latency
        self._batches += 1
        self._held -= size
        if self._held < self._settings.buffer_size:
            self._room.set()

    async def append_with_retries(self, batch: list[bytes], *, first_try: bool = True) -> None:
        """Store ``batch`` through the appender, retrying transient failures until the retry
        deadline, or until the buffer is full and the policy says spool."""
        if not self.ready.is_set():  # the spooler takes the batch instead
            raise ConnectionError("the server has not answered yet (schema not checked)")
        stop = self.spooler.spill_event if self.spooler is not None else None
        await self.appender.append_with_retries(batch, stop=stop, first_try=first_try)

    async def _replay(self, rows: list[Row]) -> None:
        """The spool's replay: as the lanes append, logged and counted alike."""
        try:
            await self.appender.append_rows(rows)
        except Exception as error:
            if may_pass_later(error) and isinstance(error, asyncpg.PostgresError):
                await self.appender.note_failure(error, len(rows))
            raise


class _Lane:
    """An ordered stream of batches: one task, one batch in flight at a time."""

    def __init__(self, writer: BatchWriter, index: int, *, batch_size: int, flush_interval: float) -> None:
        self._writer = writer
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self.index = index
        self.stopping = False
        #: The batch taken from the buffer and not yet committed or spooled: a restarted
        #: task takes it up again.
        self.batch: list[bytes] | None = None
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
            self._run(), name=f"crashlog-writer-{self.index}"
        )
        self._task.add_done_callback(lambda task: self._writer.lane_ended(self, task))

    async def stop(self) -> None:
        self.stopping = True
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

    def fail(self, error: BaseException) -> None:
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(error)

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
        if self.batch is not None:  # restarted: the batch may have committed already
            await self._write(self.batch, first_try=False)
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
        self.batch = batch
        return batch

    async def _write(self, batch: list[bytes], *, first_try: bool = True) -> None:
        started = time.perf_counter()
        spooler = self._writer.spooler
        committed = True
        if spooler is not None:  # committed, or spooled (acknowledged) when it cannot be
            # The spool reads rows, decoded only if it takes the batch; the direct path sends
            # the encoded batch as it is.
            rows = cast("list[Row]", DecodedRows(batch))
            outcome = await spooler.write(
                rows, lambda _rows: self._writer.append_with_retries(batch, first_try=first_try))
            committed = outcome == "committed"
        else:
            while True:
                try:
                    await self._writer.append_with_retries(batch, first_try=first_try)
                    break
                except Exception as error:  # past the retry deadline: keep the batch, never drop it
                    log.warning(
                        "crashlog: %d events not yet written, still retrying: %s",
                        len(batch) + len(self.buffer),
                        error,
                    )
                    await asyncio.sleep(1.0)
        self.batch = None
        self.in_flight = 0
        self.done += len(batch)
        self._writer.batch_done(len(batch), time.perf_counter() - started if committed else None)
        for target, future in self._waiters:
            if target <= self.done and not future.done():
                future.set_result(None)
