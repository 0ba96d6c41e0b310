"""One spool folder shared by every logger of a host (``CRASHLOG_SPOOL_DIR`` fleet-wide).

Promises:
- ``claim(folder)`` gives each logger a subfolder of its own, ``p<pid>-<random>``, locked
  for as long as it lives (``crashlog.files.FileLock``): loggers of one host, or of one
  process, never write the same segments.
- Before it writes anything, it adopts what dead owners left: every subfolder whose lock
  it can take, and the segments at the top of ``folder`` itself (written by a logger that
  used the folder directly, as ``Spool.open`` does). Their segments are moved (an atomic
  rename) into the new subfolder, in their order and ahead of anything new, so they are
  replayed first; a crash midway leaves each segment in one of the two folders, and both
  are adopted by the next logger. An adopted subfolder is removed once empty.
- A live owner's subfolder is never touched: its lock is held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from crashlog.errors import SpoolError
from crashlog.files import FileLock, LockHeld, sync_dir
from crashlog.spool import _SUFFIX, DEFAULT_MAX_BYTES, DEFAULT_SEGMENT_BYTES, LOCK_NAME, Spool

log = logging.getLogger("crashlog.spool")
_PREFIX = "p"


def claim(folder: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
          segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> Spool:
    """This logger's spool: a new subfolder of ``folder`` holding first what dead owners left."""
    path, lock = claim_subfolder(Path(folder).expanduser())
    return Spool.locked(path, lock, max_bytes=max_bytes, segment_bytes=segment_bytes)


def claim_subfolder(folder: Path) -> tuple[Path, FileLock]:
    """A new subfolder of ``folder``, locked, with the dead owners' segments moved in."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # payloads are the bots' own data
    for _ in range(5):  # another logger may adopt (remove) the new folder before it is locked
        own = folder / f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        own.mkdir(mode=0o700)
        lock = FileLock(own / LOCK_NAME)
        try:
            lock.acquire()
        except (LockHeld, FileNotFoundError):
            continue
        if lock.at_path():
            adopt_orphans(folder, own)
            return own, lock
        lock.release()
    raise SpoolError(f"could not take a spool subfolder in {folder} (other loggers kept removing it)")


def adopt_orphans(folder: Path, own: Path) -> int:
    """Move the segments of dead owners into ``own`` (empty); returns how many were moved."""
    number = 0
    candidates = [folder, *sorted(p for p in folder.iterdir()
                                  if p.is_dir() and p.name.startswith(_PREFIX) and p != own)]
    for orphan in candidates:
        lock = FileLock(orphan / LOCK_NAME, create=orphan is not folder)
        try:
            lock.acquire()
        except (LockHeld, FileNotFoundError):
            continue  # alive, or still being made, or removed by another adopter
        try:
            if not lock.at_path():
                continue
            moved = _move_segments(orphan, own, number)
            if moved:
                log.info("crashlog: replaying %d spool segments left by a dead owner in %s",
                         moved, orphan, extra={"spool_dir": str(orphan), "segments": moved})
            number += moved
            if orphan is not folder:
                _remove(orphan, lock)
        finally:
            lock.release()
    if number:
        sync_dir(own)
        sync_dir(folder)
    return number


def _move_segments(orphan: Path, own: Path, start: int) -> int:
    segments = sorted(orphan.glob(f"*{_SUFFIX}"), key=lambda p: int(p.stem))
    for offset, segment in enumerate(segments, start=start + 1):
        os.replace(segment, own / f"{offset:012d}{_SUFFIX}")
    if segments:
        sync_dir(orphan)
    return len(segments)


def _remove(orphan: Path, lock: FileLock) -> None:
    """Remove an emptied subfolder: its lock file first (on Windows, after releasing it)."""
    if os.name == "nt":  # pragma: no cover - an open file cannot be removed there
        lock.release()
    with contextlib.suppress(OSError):
        (orphan / LOCK_NAME).unlink()
        orphan.rmdir()
