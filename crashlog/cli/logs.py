"""The command line's logging: ``--log-level`` and ``--log-format text|json`` on every verb.

Promises:
- Everything crashlog logs (the ``crashlog`` logger and its children) goes to stderr, one
  line per record, with a timestamp: ``text`` is ``TIME LEVEL LOGGER: message key=value``,
  ``json`` is one JSON object per line with ``time``, ``level``, ``logger``, ``message`` and
  every ``extra`` field the call gave (the figures: events, lag, ports...).
- The level is ``--log-level``, else ``CRASHLOG_LOG_LEVEL``, else INFO; the format
  ``--log-format``, else ``CRASHLOG_LOG_FORMAT``, else text. Only the ``crashlog`` logger
  is configured: an application's own logging is left alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import orjson

from crashlog.errors import CrashlogError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
# The attributes every LogRecord has: whatever else a record carries came as ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields a log call gave, by name."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the extras."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **extra_fields(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: message key=value ...``, on one line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in extra_fields(record).items())
        return f"{line} {extras}" if extras else line


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is at the time of the record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(level: str | None, form: str | None) -> Callable[[], None]:
    """Send the ``crashlog`` logger's records to stderr at ``level`` in ``form``; returns a
    function that puts the logger back as it was (``main`` may run inside another program)."""
    level = (level or os.environ.get("CRASHLOG_LOG_LEVEL") or "INFO").upper()
    form = (form or os.environ.get("CRASHLOG_LOG_FORMAT") or "text").lower()
    if level not in LEVELS:
        raise CrashlogError(f"invalid log level {level!r}: one of {', '.join(LEVELS)}")
    if form not in FORMATS:
        raise CrashlogError(f"invalid log format {form!r}: text or json")
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    logger = logging.getLogger("crashlog")
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(before)

    return restore
