"""Rows for the spool's tests: unit (the disk format) and integration (replay into PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from crashlog.events.uuid7 import uuid7
from crashlog.rows import Row


def make_rows(count: int, *, bot: str = "b1", start: int = 0) -> list[Row]:
    """``count`` rows of ``bot``, numbered from ``start``: Berlin times, non-ASCII payloads."""
    tz = ZoneInfo("Europe/Berlin")
    return [
        Row(
            uuid7(),
            "RoundObserved",
            1,
            bot,
            None if i % 2 else f"s{i}",
            datetime(2026, 1, 1, tzinfo=tz) + timedelta(seconds=start + i),
            ('{"game":"aviator","platform":"d\\u00e9mo ✈",'
             f'"crash_multiplier":"{2 + i}.01","n":{start + i}}}').encode(),
        )
        for i in range(count)
    ]
