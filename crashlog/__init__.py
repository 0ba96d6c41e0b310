"""crashlog: an asynchronous, event-sourced logger for crash-game bots, on PostgreSQL.

    async with crashlog.connect() as log:
        await log.emit(RoundSettled(...))
        await log.flush()
"""

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

__version__ = "0.1.0"

__all__ = [
    "BufferFull",
    "ConnectFailed",
    "CrashlogError",
    "InvalidEvent",
    "Logger",
    "LoggerClosed",
    "Metrics",
    "MigrationError",
    "NotFlushed",
    "Settings",
    "SpoolError",
    "SpoolFull",
    "WriterFailed",
    "__version__",
    "connect",
    "mask_dsn",
]
