"""The process-wide logger behind the old API, and ``session_scope`` (the seed's connection.py).

One logger serves every call; ``init_db(dsn)`` opens it (else the first call does, on
``CRASHLOG_DSN`` or the embedded server) and ``close_db()`` or the interpreter's exit
commits everything and closes it. Safe from several threads.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crashlog.events import Event
from crashlog.sync import SyncLogger

#: Seconds a reading call waits for the logged rounds to be projected.
SYNC_TIMEOUT = 60.0

_lock = threading.Lock()
_logger: SyncLogger | None = None


def init_db(dsn: str | None = None, **options: Any) -> SyncLogger:
    """Open the process-wide logger (applying migrations); a second call returns the same one.

    ``dsn`` names the server (else ``CRASHLOG_DSN``, else the embedded one); ``options``
    are those of ``crashlog.connect``. A file name, as the old ``init_db("crash_data.db")``
    took, is ignored with a warning.
    """
    global _logger
    if dsn is not None and not _looks_like_dsn(dsn):
        # The old API took a SQLite file name (init_db("crash_data.db")): keep such a bot
        # running unchanged, on CRASHLOG_DSN or the embedded server, and say so.
        warnings.warn(
            f"init_db({dsn!r}): crashlog stores rounds in PostgreSQL, not in a file; using "
            "CRASHLOG_DSN or the embedded server instead",
            stacklevel=2,
        )
        dsn = None
    with _lock:
        if _logger is None:
            _logger = SyncLogger(dsn, **options)
        return _logger


def _looks_like_dsn(text: str) -> bool:
    return "://" in text or "=" in text


def close_db() -> None:
    """Commit everything logged and close the process-wide logger (``init_db`` may reopen it)."""
    global _logger
    with _lock:
        logger, _logger = _logger, None
    if logger is not None:
        logger.close()


def current() -> SyncLogger:
    """The process-wide logger, opened on first use."""
    return _logger if _logger is not None else init_db()


def synced() -> SyncLogger:
    """The logger, once everything logged so far is committed and projected."""
    logger = current()
    logger.sync(SYNC_TIMEOUT)
    return logger


class Session:
    """What ``session_scope`` yields: ``add`` records (``crashlog.compat.models``); they are
    logged as events when the block ends cleanly, and dropped when it raises."""

    def __init__(self) -> None:
        self.pending: list[Any] = []

    def add(self, record: Any) -> None:
        if not hasattr(record, "to_event"):
            raise TypeError(f"session.add takes a crashlog.compat.models record, not {type(record).__name__}")
        self.pending.append(record)

    def add_all(self, records: Any) -> None:
        for record in records:
            self.add(record)

    def commit(self) -> None:
        """Log what was added so far (the block's end does it too)."""
        events: list[Event] = [record.to_event() for record in self.pending]  # all valid, or none
        logger = current()
        for event in events:
            logger.emit(event)
        self.pending.clear()
        logger.flush(SYNC_TIMEOUT)

    def rollback(self) -> None:
        self.pending.clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    """The seed's unit of work: records added in the block are logged (as events, committed)
    when it ends cleanly; an exception in the block logs none of them and propagates."""
    session = Session()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    session.commit()
