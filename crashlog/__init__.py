"""crashlog: an asynchronous, event-sourced logger for crash-game bots, on PostgreSQL.

    async with crashlog.connect() as log:
        await log.emit(RoundSettled(...))
        await log.flush()

    with crashlog.reader() as r:                  # read-only: tables as Arrow, statistics
        df = r.table("rounds", bot_id="b1").to_pandas()
"""

from typing import Any

from crashlog.database import mask_dsn
from crashlog.errors import (
    BufferFull,
    ConnectFailed,
    CrashlogError,
    InvalidEvent,
    LoggerClosed,
    MigrationError,
    NotFlushed,
    SpoolError,
    SpoolFull,
    WriterFailed,
)
from crashlog.logger import Logger, connect
from crashlog.settings import Settings
from crashlog.writer import Metrics

__version__ = "0.2.0"

# The reading side loads where it is first used: `import crashlog` stays light for a bot.
_READING = ("reader", "Reader", "AsyncReader")


def __getattr__(name: str) -> Any:
    if name in _READING:
        from crashlog import reading

        return getattr(reading, name)
    raise AttributeError(f"module 'crashlog' has no attribute {name!r}")


__all__ = [
    "AsyncReader",
    "BufferFull",
    "ConnectFailed",
    "CrashlogError",
    "InvalidEvent",
    "Logger",
    "LoggerClosed",
    "Metrics",
    "MigrationError",
    "NotFlushed",
    "Reader",
    "Settings",
    "SpoolError",
    "SpoolFull",
    "WriterFailed",
    "__version__",
    "connect",
    "mask_dsn",
    "reader",
]
