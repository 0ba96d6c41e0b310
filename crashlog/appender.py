"""The appender: the one way a batch of events enters the log, for the writer's lanes and
the spool's replay alike.

Promises:
- ``append`` stores a batch once. Its first attempt is one binary COPY, the fastest
  append; a batch that may meet rows already stored (a retry after an ambiguous
  failure, an id already in the log) takes the idempotent path, which skips them. No
  event is ever stored twice.
- A batch the server refuses because of a row's own data (``refuses_a_row``: SQLSTATE
  classes 22 and 23) is halved until the refused rows stand alone: each goes to
  ``crashlog.rejected_events`` with its error and the rest of the batch commits.
- Every other failure propagates from ``append`` with the whole batch: a transient one
  (``is_transient``: the connection, the server's resources or state, read-only, a
  deadlock) and a refusal of the whole batch (``refuses_the_batch``: a privilege, a
  missing table) alike. ``append_with_retries`` retries both with exponential backoff
  and jitter until the retry deadline (or until asked to stop early), recycling the
  pool's sessions after a server error; a refusal of the batch is logged as an error.
- ``counts`` add up what became of every row: committed, duplicates, rejected, how
  many retries it took, and how many attempts the server refused whole.

It lives apart from ``crashlog.store`` (the SQL of each path) and from the writer (the
buffer and its lanes): the spool's replay uses it without a writer, and the policy of
what is retried, what is isolated and what is rejected is read in one place.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

import asyncpg
import attrs
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    stop_when_event_set,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from crashlog import store
from crashlog.rows import Row

log = logging.getLogger("crashlog.writer")

#: SQLSTATE classes worth retrying: connection (08), resources (53), operator intervention
#: such as a restart or "cannot connect now" (57), transaction rollback such as a deadlock
#: (40), system errors such as an I/O error on the server (58).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40", "58")
#: Single SQLSTATEs of a passing state of the server: read-only (25006: a managed server
#: whose disk filled, a failover), a lock or object busy (55P03, 55006), a transaction or
#: idle timeout (25P03, 25P04).
TRANSIENT_SQLSTATES = frozenset({"25006", "55P03", "55006", "25P03", "25P04"})
#: SQLSTATE classes of a row's own data: a bad value (22) or a broken constraint (23). Only
#: these are worth halving a batch for; every other refusal concerns the whole batch.
ROW_SQLSTATE_CLASSES = ("22", "23")


def _sqlstate(error: BaseException) -> str:
    return (getattr(error, "sqlstate", None) or "") if isinstance(error, asyncpg.PostgresError) else ""


def is_transient(error: BaseException) -> bool:
    """True for failures that a later attempt of the same batch may get past by itself."""
    if isinstance(error, asyncpg.PostgresError):  # asyncpg.DataError (22xxx) is one too
        state = _sqlstate(error)
        return state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in TRANSIENT_SQLSTATES
    return isinstance(error, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError))


def refuses_a_row(error: BaseException) -> bool:
    """True for a refusal that may be one row's doing (its data: classes 22 and 23), so
    that halving the batch finds it. Nothing else ever sends a row to ``rejected_events``."""
    return _sqlstate(error)[:2] in ROW_SQLSTATE_CLASSES and not is_transient(error)


def refuses_the_batch(error: BaseException) -> bool:
    """True for a refusal of the whole batch that only an operator can lift: a privilege
    (42501), a missing table or column (42P01, 42703), a missing database (3D000), ...

    Such a batch is kept (in memory or in the spool) and retried with backoff, loudly;
    it is never halved into per-row rejections.
    """
    return isinstance(error, asyncpg.PostgresError) and not (
        is_transient(error) or refuses_a_row(error))


def may_pass_later(error: BaseException) -> bool:
    """True for every failure a batch is kept and retried for (all but a row's own data)."""
    return is_transient(error) or refuses_the_batch(error)


@attrs.define
class AppendCounts:
    """What became of the rows given to an appender (``retried`` counts attempts)."""

    committed: int = 0
    duplicates: int = 0
    retried: int = 0
    rejected: int = 0
    #: Attempts the server refused for the whole batch (privilege, missing table, ...).
    refused_batches: int = 0


class Appender:
    """Appends batches of encoded rows (``crashlog.rows.copy_tuple``) over ``pool``."""

    def __init__(self, pool: asyncpg.Pool, *, retry_deadline: float = 30.0) -> None:
        self._pool = pool
        self._retry_deadline = retry_deadline
        self.counts = AppendCounts()

    async def append(self, batch: list[bytes], *, first_try: bool = True) -> None:
        """Store ``batch`` once, refused rows aside; a transient failure propagates.

        ``first_try=False`` (a batch that may have committed already) skips the COPY.
        """
        async with self._pool.acquire() as conn:
            if first_try:
                try:
                    stored = await store.copy_tuples(conn, batch)
                except asyncpg.UniqueViolationError:
                    pass  # an id that is already stored: take the path that skips it
                except asyncpg.PostgresError as error:
                    if not refuses_a_row(error):
                        raise
                else:
                    # Count after the await: "x += await f()" would read x before other lanes update it.
                    self.counts.committed += stored
                    return
            await self._append_isolating(conn, batch)

    async def append_rows(self, rows: Sequence[Row], *, first_try: bool = True) -> None:
        """Store rows (e.g. read back from the spool) as ``append`` does; a row that cannot
        even be encoded goes to ``crashlog.rejected_events`` at once."""
        batch = []
        for row in rows:
            try:
                batch.append(store.encode_row(row))
            except asyncpg.DataError as error:
                async with self._pool.acquire() as conn:
                    await self._reject(conn, row, error)
        if batch:
            await self.append(batch, first_try=first_try)

    async def append_with_retries(
        self, batch: list[bytes], *, stop: threading.Event | None = None, first_try: bool = True
    ) -> None:
        """Store ``batch``, retrying what may pass later (``may_pass_later``) until the retry
        deadline, or until ``stop`` is set; then the last failure propagates and the batch
        is not stored. ``first_try=False``: the batch may have committed already."""
        attempt_number = 0 if first_try else 1
        give_up: stop_base = stop_after_delay(self._retry_deadline)
        if stop is not None:
            give_up = give_up | stop_when_event_set(stop)

        retrying = AsyncRetrying(
            retry=retry_if_exception(may_pass_later),
            wait=wait_random_exponential(multiplier=0.05, max=5.0),
            stop=give_up,
            before_sleep=self._count_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                attempt_number += 1
                # Only a retry can meet its own earlier rows, so only a retry pays for conflict handling.
                try:
                    await self.append(batch, first_try=attempt_number == 1)
                except Exception as error:
                    await self.note_failure(error, len(batch))
                    raise

    def _count_retry(self, state: RetryCallState) -> None:
        self.counts.retried += 1

    async def note_failure(self, error: BaseException, events: int) -> None:
        """Log and count a failed attempt, and recycle the pool's sessions: a session may
        keep a setting the server has dropped since (``default_transaction_read_only``)."""
        if isinstance(error, asyncpg.PostgresError) and _sqlstate(error)[:2] != "40":
            await self._pool.expire_connections()
        if refuses_the_batch(error):
            self.counts.refused_batches += 1
            log.error(
                "crashlog: the server refuses a whole batch of %d events (SQLSTATE %s): %s;"
                " they are kept and retried until an operator fixes it (see docs/operations.md)",
                events, _sqlstate(error), error,
                extra={"sqlstate": _sqlstate(error), "events": events},
            )
        elif may_pass_later(error):
            log.info("crashlog: a batch will be retried after: %s", error)

    async def _append_isolating(self, conn: asyncpg.Connection, batch: list[bytes]) -> None:
        """Append idempotently; a refused batch is halved until the refused rows stand alone."""
        try:
            inserted = await store.insert_tuples_idempotent(conn, batch)
        except asyncpg.PostgresError as error:
            if not refuses_a_row(error):
                raise
            if len(batch) == 1:
                await self._reject(conn, store.decode_row(batch[0]), error)
                return
            middle = len(batch) // 2
            await self._append_isolating(conn, batch[:middle])
            await self._append_isolating(conn, batch[middle:])
            return
        self.counts.committed += inserted
        self.counts.duplicates += len(batch) - inserted

    async def _reject(self, conn: asyncpg.Connection, row: Row, error: BaseException) -> None:
        await store.reject_row(conn, row, error)
        self.counts.rejected += 1
        log.error("crashlog: event %s refused by the server: %s", row.event_id, error)


async def append_idempotent(pool: asyncpg.Pool, rows: Sequence[Row]) -> None:
    """Store rows once each, refused rows aside: a spool's replay where no writer runs
    (tools, tests). The writer's replay goes through its own ``Appender``."""
    await Appender(pool).append_rows(rows, first_try=False)
