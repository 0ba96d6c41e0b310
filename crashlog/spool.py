"""The local spool: batches the server could not take yet, kept on disk until they are committed.

Promises:
- ``Spool.append(rows)`` returns only once the batch is on disk (written and
  fsynced): from then on the batch is acknowledged and survives a crash of the
  process. When the spool would grow past its byte cap it raises ``SpoolFull``
  and stores nothing.
- Segments are append-only files ``NNNNNNNNNNNN.spool`` replayed in order of
  their number; within a segment, records are replayed in the order written.
- A record is ``length (4 bytes) + CRC32 (4 bytes) + payload``. A torn tail (a
  crash mid-write: short header, short payload or a bad CRC) is cut off when the
  segment is read; it was never acknowledged, so nothing acknowledged is lost.
- ``replay`` appends each record idempotently (``ON CONFLICT DO NOTHING``), so a
  record replayed twice (a crash after its commit, before its segment's removal)
  is stored once; a segment is deleted only after all its records are committed.
- One process at a time owns a spool folder (an ``flock`` that the kernel
  releases when the owner dies, even by SIGKILL).
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import attrs
import orjson

from crashlog import store
from crashlog.errors import CrashlogError
from crashlog.store import Row

log = logging.getLogger("crashlog.spool")

MAGIC = b"CRASHLOG-SPOOL-1\n"
_HEADER = struct.Struct(">II")  # payload length, CRC32 of the payload
_SUFFIX = ".spool"
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024

Append = Callable[[list[Row]], Awaitable[object]]


class SpoolError(CrashlogError):
    """The spool folder cannot be used (locked by another process, or not a spool)."""


class SpoolFull(SpoolError):
    """A batch would take the spool past its byte cap; nothing of it was written."""


@attrs.frozen
class SpoolStats:
    """Counters of one spool: what this process wrote and replayed, and what is still on disk."""

    spooled_events: int  # written to the spool by this process
    spooled_batches: int
    replayed_events: int  # committed from the spool by this process (new or already stored)
    pending_segments: int
    pending_bytes: int
    torn_bytes: int  # bytes cut from torn tails on recovery


def encode_batch(rows: list[Row]) -> bytes:
    """A batch of rows as JSON: ids and times as strings, the payload as its JSON text."""
    return orjson.dumps(
        [
            (
                str(r.event_id),
                r.event_type,
                r.schema_version,
                r.bot_id,
                r.session_id,
                r.occurred_at.isoformat(),
                r.payload.decode("utf-8"),
            )
            for r in rows
        ]
    )


def decode_batch(data: bytes) -> list[Row]:
    """The rows ``encode_batch`` wrote, exactly as they were."""
    return [
        Row(UUID(e), t, v, b, s, datetime.fromisoformat(o), p.encode("utf-8"))
        for e, t, v, b, s, o, p in orjson.loads(data)
    ]


def frame(payload: bytes) -> bytes:
    """One record: length, CRC32, payload."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(path: Path) -> tuple[list[bytes], int]:
    """The intact records of a segment, and the offset where they end (the rest is torn)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        # A crash while the file was being created can leave it empty or partial: nothing in it.
        if MAGIC.startswith(data):
            return [], 0
        raise SpoolError(f"{path} is not a crashlog spool segment")
    records, offset = [], len(MAGIC)
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start, end = offset + _HEADER.size, offset + _HEADER.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        records.append(data[start:end])
        offset = end
    return records, offset


class Spool:
    """A folder of append-only segment files. Open it with ``Spool.open(directory)``."""

    def __init__(
        self, directory: Path, *, max_bytes: int, segment_bytes: int, lock_fd: int
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock_fd = lock_fd
        self._active: tuple[Path, int] | None = None  # the segment being written, and its fd
        self._active_size = 0
        self._counts = {"spooled_events": 0, "spooled_batches": 0, "replayed_events": 0}
        self._torn_bytes = 0
        self._pending_bytes = 0
        for segment in self.segments():
            self._pending_bytes += self._recover(segment)

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> Spool:
        """Take the spool folder for this process (creating it), recovering torn tails.

        Raises ``SpoolError`` if another live process holds it.
        """
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        path = Path(directory).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolError(f"the spool at {path} is in use by another process") from None
        try:
            return cls(path, max_bytes=max_bytes, segment_bytes=segment_bytes, lock_fd=fd)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        """Close the active segment and release the folder (segments stay for the next owner)."""
        self.seal()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    # -- writing -------------------------------------------------------------------------

    def append(self, rows: list[Row]) -> None:
        """Write a batch and fsync it. Blocking: call it from a thread in async code.

        Raises ``SpoolFull`` (writing nothing) when the cap would be passed.
        """
        if not rows:
            return
        record = frame(encode_batch(rows))
        if self._pending_bytes + len(record) > self.max_bytes:
            raise SpoolFull(
                f"the spool at {self.directory} holds {self._pending_bytes} bytes and its cap is "
                f"{self.max_bytes} (spool_max_bytes): a batch of {len(rows)} events "
                f"({len(record)} bytes) does not fit; those events stay in memory"
            )
        path, fd = self._segment_for(len(record))
        try:
            _write_all(fd, record)
            os.fdatasync(fd)
        except BaseException:
            # Leave no half record behind a later one: cut back to the last whole record.
            os.ftruncate(fd, self._active_size)
            raise
        self._active_size += len(record)
        self._pending_bytes += len(record)
        self._counts["spooled_events"] += len(rows)
        self._counts["spooled_batches"] += 1

    def seal(self) -> None:
        """Close the active segment; the next ``append`` starts a new one."""
        if self._active is not None:
            os.close(self._active[1])
            self._active = None
            self._active_size = 0

    def _segment_for(self, record_bytes: int) -> tuple[Path, int]:
        if self._active is not None and self._active_size + record_bytes > self.segment_bytes:
            self.seal()
        if self._active is None:
            existing = self.segments()
            number = int(existing[-1].stem) + 1 if existing else 1
            path = self.directory / f"{number:012d}{_SUFFIX}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            _write_all(fd, MAGIC)
            os.fsync(fd)
            _fsync_dir(self.directory)  # the new file's name must survive a crash too
            self._active = (path, fd)
            self._active_size = len(MAGIC)
            self._pending_bytes += len(MAGIC)
        return self._active

    # -- reading and replaying -----------------------------------------------------------

    def segments(self) -> list[Path]:
        """The segment files, oldest first."""
        return sorted(self.directory.glob(f"*{_SUFFIX}"), key=lambda p: int(p.stem))

    def is_empty(self) -> bool:
        return not self.segments()

    def batches(self, segment: Path) -> Iterator[list[Row]]:
        """The batches of one segment, in the order written."""
        records, _ = read_records(segment)
        for record in records:
            yield decode_batch(record)

    def pending_events(self) -> int:
        """Events on disk not yet replayed (reads every segment: for reports, not hot paths)."""
        return sum(len(batch) for segment in self.segments() for batch in self.batches(segment))

    async def replay(self, append: Append) -> int:
        """Append every spooled batch with ``append`` (which must be idempotent), oldest first.

        A segment is deleted once all its batches are appended. Returns the number of
        events replayed. An error from ``append`` stops the replay and propagates; what is
        left stays on disk for the next attempt.
        """
        self.seal()
        replayed = 0
        for segment in self.segments():
            for batch in self.batches(segment):
                await append(batch)
                replayed += len(batch)
                self._counts["replayed_events"] += len(batch)
            size = segment.stat().st_size
            segment.unlink()
            _fsync_dir(self.directory)
            self._pending_bytes = max(0, self._pending_bytes - size)
        return replayed

    def stats(self) -> SpoolStats:
        segments = self.segments()
        return SpoolStats(
            pending_segments=len(segments),
            pending_bytes=self._pending_bytes,
            torn_bytes=self._torn_bytes,
            **self._counts,
        )

    def _recover(self, segment: Path) -> int:
        """Cut a torn tail off a segment left by a previous owner; returns its intact size."""
        _, end = read_records(segment)
        size = segment.stat().st_size
        if end == 0:  # not even the header made it: an empty segment
            segment.unlink()
            _fsync_dir(self.directory)
            self._torn_bytes += size
            return 0
        if end < size:
            log.warning(
                "crashlog: cutting a torn tail of %d bytes off %s (a write cut short by a crash;"
                " it was never acknowledged)", size - end, segment,
            )
            with segment.open("r+b") as file:
                file.truncate(end)
                file.flush()
                os.fsync(file.fileno())
            self._torn_bytes += size - end
        return end


async def append_idempotent(pool: asyncpg.Pool, rows: list[Row]) -> None:
    """Store rows once each; a row the server refuses goes to ``crashlog.rejected_events``.

    The replayer's default ``append`` when no writer provides one.
    """
    async with pool.acquire() as conn:
        await _insert_isolating(conn, rows)


async def _insert_isolating(conn: asyncpg.Connection, rows: list[Row]) -> None:
    try:
        await store.insert_rows_idempotent(conn, rows)
    except (asyncpg.PostgresError, asyncpg.DataError) as error:
        if _is_transient(error):
            raise
        if len(rows) == 1:
            await store.reject_row(conn, rows[0], error)
            return
        middle = len(rows) // 2
        await _insert_isolating(conn, rows[:middle])
        await _insert_isolating(conn, rows[middle:])


def _is_transient(error: BaseException) -> bool:
    # Connection, resources, operator intervention, rollback: a later attempt may succeed.
    sqlstate = getattr(error, "sqlstate", None) or ""
    return sqlstate[:2] in ("08", "53", "57", "40")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
