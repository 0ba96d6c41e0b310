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
- ``replay`` appends each record with an idempotent append (the writer's
  ``crashlog.appender.Appender``), so a record replayed twice (a crash after its
  commit, before its segment's removal) is stored once; a segment is deleted only
  after all its records are committed.
- The disk format (``encode_batch``/``decode_batch``, ``frame``/``read_records``) is
  plain Python: reading or writing a spool needs neither a driver nor a server.
- One owner at a time holds a spool folder (a lock the operating system releases
  when the owner dies, even by SIGKILL: ``crashlog.files.FileLock``). Writes reach the
  disk each platform's way (``crashlog.files.sync_file``/``sync_dir``).
- A folder shared by every logger of a host: ``crashlog.spool_folders.claim``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal
from uuid import UUID

import attrs
import orjson

from crashlog.errors import SpoolError as SpoolError  # also importable from here
from crashlog.errors import SpoolFull as SpoolFull
from crashlog.files import FileLock, LockHeld, sync_dir, sync_file, write_all
from crashlog.rows import Row

log = logging.getLogger("crashlog.spool")

MAGIC = b"CRASHLOG-SPOOL-1\n"
_HEADER = struct.Struct(">II")  # payload length, CRC32 of the payload
_SUFFIX = ".spool"
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
LOCK_NAME = "lock"
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation

Append = Callable[[list[Row]], Awaitable[object]]
Outcome = Literal["committed", "spooled"]


@attrs.frozen
class SpoolStats:
    """Counters of one spool: what this process wrote and replayed, and what is still on disk."""

    spooled_events: int  # written to the spool by this process
    spooled_batches: int
    pending_events: int  # on disk, not yet replayed
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
        self, directory: Path, *, max_bytes: int, segment_bytes: int, lock: FileLock
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._folder_lock = lock
        self._active: tuple[Path, int] | None = None  # the segment being written, and its fd
        self._active_size = 0
        self._counts = {"spooled_events": 0, "spooled_batches": 0, "replayed_events": 0}
        self._torn_bytes = 0
        self._pending_bytes = 0
        self._pending_events = 0
        self._committed_records: dict[Path, int] = {}  # segment -> records already replayed
        # append runs in a worker thread while the event loop may seal or replay: one lock.
        self._lock = threading.Lock()
        existing = self.segments()
        self._next_number = int(existing[-1].stem) + 1 if existing else 1
        for segment in existing:
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
        path.mkdir(mode=0o700, parents=True, exist_ok=True)  # payloads are the bots' own data
        lock = FileLock(path / LOCK_NAME)
        try:
            lock.acquire()
        except LockHeld:
            raise SpoolError(f"the spool at {path} is in use by another process") from None
        return cls.locked(path, lock, max_bytes=max_bytes, segment_bytes=segment_bytes)

    @classmethod
    def locked(cls, path: Path, lock: FileLock, *, max_bytes: int = DEFAULT_MAX_BYTES,
               segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> Spool:
        """The spool in ``path``, whose ``lock`` the caller holds (released on failure)."""
        try:
            return cls(path, max_bytes=max_bytes, segment_bytes=segment_bytes, lock=lock)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        """Close the active segment and release the folder (segments stay for the next owner)."""
        self.seal()
        self._folder_lock.release()

    # -- writing -------------------------------------------------------------------------

    def append(self, rows: list[Row]) -> None:
        """Write a batch and fsync it. Blocking: call it from a thread in async code.

        Raises ``SpoolFull`` (writing nothing) when the cap would be passed.
        """
        if not rows:
            return
        record = frame(encode_batch(rows))
        with self._lock:
            self._append_record(record, len(rows))

    def _append_record(self, record: bytes, events: int) -> None:
        if self._pending_bytes + len(record) > self.max_bytes:
            raise SpoolFull(
                f"the spool at {self.directory} holds {self._pending_bytes} bytes and its cap is "
                f"{self.max_bytes} (spool_max_bytes): a batch of {events} events "
                f"({len(record)} bytes) does not fit; those events stay in memory"
            )
        path, fd = self._segment_for(len(record))
        try:
            write_all(fd, record)
            sync_file(fd)
        except BaseException:
            # Leave no half record behind a later one: cut back to the last whole record.
            os.ftruncate(fd, self._active_size)
            raise
        self._active_size += len(record)
        self._pending_bytes += len(record)
        self._pending_events += events
        self._counts["spooled_events"] += events
        self._counts["spooled_batches"] += 1

    def seal(self) -> None:
        """Close the active segment; the next ``append`` starts a new one."""
        with self._lock:
            self._seal()

    def _seal(self) -> None:
        if self._active is not None:
            os.close(self._active[1])
            self._active = None
            self._active_size = 0

    def _segment_for(self, record_bytes: int) -> tuple[Path, int]:
        if self._active is not None and self._active_size + record_bytes > self.segment_bytes:
            self._seal()
        if self._active is None:
            path = self.directory / f"{self._next_number:012d}{_SUFFIX}"
            self._next_number += 1
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _BINARY, 0o600)
            try:
                write_all(fd, MAGIC)
                sync_file(fd)
                sync_dir(self.directory)  # the new file's name must survive a crash too
            except BaseException:  # a full disk: leave neither a descriptor nor a stub behind
                os.close(fd)
                with contextlib.suppress(OSError):
                    path.unlink()
                raise
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

    @property
    def pending_events(self) -> int:
        """Events on disk not yet replayed."""
        return self._pending_events

    def batches(self, segment: Path) -> Iterator[list[Row]]:
        """The batches of one segment, in the order written."""
        records, _ = read_records(segment)
        for record in records:
            yield decode_batch(record)

    async def replay(self, append: Append) -> int:
        """Append every spooled batch with ``append`` (which must be idempotent), oldest first.

        A segment is deleted once all its batches are appended. Returns the number of
        events replayed. An error from ``append`` stops the replay and propagates; what is
        left stays on disk for the next attempt.
        """
        with self._lock:  # only sealed segments are replayed; later appends start new ones
            self._seal()
            sealed = self.segments()
        replayed = 0
        for segment in sealed:
            for index, batch in enumerate(self.batches(segment)):
                if index < self._committed_records.get(segment, 0):
                    continue  # committed by an earlier, interrupted replay of this process
                await append(batch)
                self._committed_records[segment] = index + 1
                replayed += len(batch)
                self._counts["replayed_events"] += len(batch)
                with self._lock:
                    self._pending_events = max(0, self._pending_events - len(batch))
            size = segment.stat().st_size
            segment.unlink()
            sync_dir(self.directory)
            self._committed_records.pop(segment, None)
            with self._lock:
                self._pending_bytes = max(0, self._pending_bytes - size)
        return replayed

    def stats(self) -> SpoolStats:
        segments = self.segments()
        return SpoolStats(
            pending_segments=len(segments),
            pending_bytes=self._pending_bytes,
            pending_events=self._pending_events,
            torn_bytes=self._torn_bytes,
            **self._counts,
        )

    def _recover(self, segment: Path) -> int:
        """Cut a torn tail off a segment left by a previous owner; returns its intact size."""
        records, end = read_records(segment)
        self._pending_events += sum(len(orjson.loads(record)) for record in records)
        size = segment.stat().st_size
        if end == 0:  # not even the header made it: an empty segment
            segment.unlink()
            sync_dir(self.directory)
            self._torn_bytes += size
            return 0
        if end < size:
            log.warning(
                "crashlog: cutting a torn tail of %d bytes off %s (a write cut short by a crash;"
                " it was never acknowledged)", size - end, segment,
                extra={"spool_dir": str(self.directory), "torn_bytes": size - end})
            with segment.open("r+b") as file:
                file.truncate(end)
                file.flush()
                sync_file(file.fileno())
            self._torn_bytes += size - end
        return end


class Spooler:
    """Sends each batch to the server or, when it cannot take it, to the spool; replays the spool.

    Promises, on top of ``Spool``'s:
    - ``write`` returns once the batch is committed or spooled (acknowledged either way);
      a full spool (``SpoolFull``) or a disk error (``ENOSPC``, ``EIO``: any ``OSError``)
      makes it log, count (``errors``) and try again, never drop the batch; it recovers
      by itself once the disk has room or the server answers.
    - Nothing is replayed before ``ready`` is set (the schema is known to be in place).
    - Order: while the spool holds anything (the *backlog*), no batch is written
      directly: each goes to the spool (server unreachable) or waits for the replayer
      (server reachable again), so a lane's batches reach the log in the order written.
    - The replayer drains the spool in order, in the background, as soon as the server
      answers again; the backlog ends when the spool is empty.
    """

    def __init__(self, spool: Spool, append: Append, *, ready: asyncio.Event | None = None) -> None:
        self.spool = spool
        self._append = append  # idempotent store of one batch (the replay path)
        self._ready = ready
        #: Spool writes that failed (a disk error or the byte cap); the batch was kept.
        self.errors = 0
        self.backlog = not spool.is_empty()
        #: Set when batches should go to the spool without waiting out the retry deadline.
        self.spill_event = threading.Event()
        self._server_ok = False  # the replayer's last attempt reached the server
        self._spooling = 0  # spool appends in progress
        self._drained = asyncio.Event()
        self._replayer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Replay what an earlier process left, if anything."""
        if self.backlog:
            self._kick()

    def spill(self) -> None:
        """The buffer is full and the policy says spool: stop waiting for the server."""
        if not self.spill_event.is_set():
            log.warning("crashlog: the buffer is full; batches go to the spool at %s",
                        self.spool.directory, extra={"spool_dir": str(self.spool.directory)})
            self.spill_event.set()
        self.backlog = True  # the lanes spool from now on; their first append starts the replayer

    async def write(self, batch: list[Row], direct: Append) -> Outcome:
        """Commit ``batch`` with ``direct`` or spool it; returns which ("committed": the
        server has it; "spooled": the disk has it, and the replayer will send it)."""
        while True:
            if not self.backlog:
                try:
                    await direct(batch)
                    return "committed"
                except Exception as error:  # past the retry deadline (or spilling): spool it
                    log.warning("crashlog: %d events go to the spool: %s", len(batch), error,
                                extra={"events": len(batch), "spool_dir": str(self.spool.directory)})
                    self.backlog = True
            elif self._server_ok and not self.spill_event.is_set():
                await self._wait_drained(1.0)  # the replayer is catching up: keep order
                continue
            if await self._spool(batch):
                return "spooled"
            await asyncio.sleep(1.0)

    async def _spool(self, batch: list[Row]) -> bool:
        self._spooling += 1
        try:
            await asyncio.to_thread(self.spool.append, batch)
            return True
        except (SpoolFull, OSError) as error:  # the disk is full or failing: keep the batch
            self.errors += 1
            stats = self.spool.stats()
            log.error(
                "crashlog: %d events could not be spooled (%s); they stay in memory and are"
                " tried again", len(batch), error,
                extra={"spool_dir": str(self.spool.directory), "events": len(batch),
                       "errno": getattr(error, "errno", None), "spool_errors": self.errors,
                       "pending_bytes": stats.pending_bytes, "pending_events": stats.pending_events},
            )
            return False
        finally:
            self._spooling -= 1
            self._kick()

    async def _wait_drained(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)

    def _kick(self) -> None:
        if self._replayer is None or self._replayer.done():
            self._drained.clear()
            self._replayer = asyncio.get_running_loop().create_task(
                self._replay_until_empty(), name="crashlog-spool-replayer"
            )

    async def _replay_until_empty(self) -> None:
        if self._ready is not None:
            await self._ready.wait()  # never send a batch to a database without the tables
        pause = 0.1
        while True:
            try:
                replayed = await self.spool.replay(self._append)
            except Exception as error:  # the server is still away: try again later
                self._server_ok = False
                log.info("crashlog: spool replay paused (%d events wait on disk): %s",
                         self.spool.pending_events, error, extra={"pending_events": self.spool.pending_events})
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            self._server_ok = True
            pause = 0.1
            if replayed:  # the server took writes again: the pressure that made us spill is gone
                self.spill_event.clear()
            if self._spooling == 0 and self.spool.is_empty():
                self.backlog = False
                self._drained.set()
                return
            await asyncio.sleep(0.01)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the replayer after one last bounded attempt to drain, and release the spool."""
        if self._replayer is not None:
            self._replayer.cancel()
            await asyncio.gather(self._replayer, return_exceptions=True)
        if not self.spool.is_empty() and (self._ready is None or self._ready.is_set()):
            try:
                await asyncio.wait_for(self.spool.replay(self._append), timeout)
            except Exception as error:
                log.warning("crashlog: %d events stay in the spool at %s for the next start: %s",
                            self.spool.pending_events, self.spool.directory, error,
                            extra={"pending_events": self.spool.pending_events})
        self.spool.close()


# -- a read-only look at a folder, for `crashlog doctor` -----------------------------------


@attrs.frozen
class SpoolSummary:
    """What a spool folder holds: events not yet replayed, in how many segments and bytes."""

    folder: Path
    exists: bool
    events: int
    segments: int
    bytes: int


def inspect_folder(folder: str | Path) -> SpoolSummary:
    """The events waiting in ``folder``'s segments (and its loggers' subfolders), read
    without taking the spool's lock.

    Promises: nothing is written, locked or deleted, so it is safe beside the logger that
    owns the folder; a torn tail counts for nothing (it was never acknowledged).
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        return SpoolSummary(folder, False, 0, 0, 0)
    segments = sorted([*folder.glob(f"*{_SUFFIX}"), *folder.glob(f"*/*{_SUFFIX}")])
    events = sum(len(decode_batch(r)) for s in segments for r in read_records(s)[0])
    size = sum(s.stat().st_size for s in segments)
    return SpoolSummary(folder, True, events, len(segments), size)
