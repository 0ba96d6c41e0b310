"""Durable files on every platform: an exclusive lock on a file, and writes that reach the disk.

Promises:
- ``FileLock(path).acquire()`` takes an exclusive, non-blocking lock that the operating
  system releases when the holder dies (even by SIGKILL), or raises ``LockHeld``. It is
  held per open file, so a second ``FileLock`` on the same path is refused in the same
  process too: ``flock`` on Linux and macOS, ``msvcrt.locking`` on Windows. (The
  maintained library crashlog's dependencies pull in, fasteners, locks with ``lockf``,
  which is per process: a second lock in the same process would be granted, and closing
  any descriptor of the file would drop it. Two loggers of one process must not share a
  spool, hence these few lines of our own.)
- ``sync_file(fd)`` returns once the file's data is on the disk: ``fdatasync`` on Linux,
  ``fcntl(F_FULLFSYNC)`` on macOS (its ``fsync`` stops at the drive's cache), ``fsync``
  (``_commit``) on Windows. ``sync_dir(folder)`` makes a created or removed name durable:
  ``fsync`` of the folder on Linux and macOS; on Windows there is no such call (NTFS
  journals its metadata) and it does nothing.
- Importing this module works everywhere: the platform modules are imported where used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from crashlog.errors import LockHeld as LockHeld  # also importable from here


class FileLock:
    """An exclusive lock on ``path`` (created if missing), held until ``release``."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._create = create  # False: a missing file is FileNotFoundError (an owner is gone)
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> FileLock:
        """Take the lock now, or raise ``LockHeld``."""
        fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if self._create else 0), 0o600)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            raise LockHeld(f"{self.path} is locked by another owner") from None
        self._fd = fd
        return self

    def at_path(self) -> bool:
        """True while the locked file is still the one at ``path`` (not removed by another
        owner between our open and our lock: the usual race of lock files)."""
        try:
            return os.path.samestat(os.fstat(self._fd), os.stat(self.path))
        except OSError:
            return False

    def release(self) -> None:
        """Let the lock go (closing the file releases it on every platform)."""
        if self._fd >= 0:
            if sys.platform == "win32":  # pragma: no cover - Windows only
                import msvcrt

                os.lseek(self._fd, 0, os.SEEK_SET)
                msvcrt.locking(self._fd, msvcrt.LK_UNLCK, 1)
            os.close(self._fd)
            self._fd = -1


def _lock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # one byte: the convention for a whole-file lock
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def sync_file(fd: int) -> None:
    """The file's data on the disk, each platform's way (see the module's promises)."""
    if sys.platform == "darwin":  # pragma: no cover - macOS only
        import fcntl

        try:
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
            return
        except OSError:  # a file system without it (some network mounts): the next best
            pass
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:
        os.fsync(fd)


def sync_dir(folder: Path) -> None:
    """A name created or removed in ``folder`` made durable (nothing to do on Windows)."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
