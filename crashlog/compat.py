"""The old synchronous API, kept working: change the import, keep the bot.

    from crashlog.compat import (init_db, log_crash_round, get_bot_statistics,
                                 export_multipliers_for_ml, export_rounds_to_json,
                                 get_database_size)

Same function names, argument names and result keys as before, now on the event log:
``log_crash_round`` emits a ``RoundSettled`` event (no I/O on the bot's path), and every
reading function first waits until what was logged is committed and projected, so
``get_bot_statistics`` right after ``log_crash_round`` already counts that round.

One process-wide logger serves every call; ``init_db(dsn)`` opens it (else the first
call does, on ``CRASHLOG_DSN`` or the embedded server) and ``close_db()`` or the
interpreter's exit commits everything and closes it. Safe from several threads.
"""

from __future__ import annotations

import threading
import warnings
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from crashlog.events import RoundSettled
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


def _current() -> SyncLogger:
    return _logger if _logger is not None else init_db()


def log_crash_round(
    bot_id: str,
    session_id: str | None,
    game_name: str,
    platform_code: str,
    round_number: int | None,
    stake_value: Any,
    crash_multiplier: Any,
    cashout_multiplier: Any,
    round_outcome: str,
    profit_loss: Any,
    running_balance_before: Any = None,
    running_balance_after: Any = None,
    *,
    strategy_name: str | None = None,
    game_round_id: str | None = None,
    target_multiplier: Any = None,
    ocr_confidence: float | None = None,
    detection_latency_ms: int | None = None,
    error_message: str | None = None,
    metadata: dict[str, Any] | None = None,
    timestamp: datetime | None = None,
) -> str:
    """Log one settled round; returns its event id. Raises ``crashlog.InvalidEvent`` naming
    the field for a bad value. A cash-out of 0 or None (as old bots passed for a loss) means
    the bot did not cash out."""
    fields: dict[str, Any] = {
        "bot_id": bot_id,
        "session_id": session_id,
        "game": game_name,
        "platform": platform_code,
        "round_number": round_number,
        "game_round_id": game_round_id,
        "strategy_name": strategy_name,
        "stake": stake_value,
        "target_multiplier": target_multiplier,
        "crash_multiplier": crash_multiplier,
        "cashout_multiplier": None if cashout_multiplier in (None, 0, "") else cashout_multiplier,
        "outcome": round_outcome,
        "profit_loss": profit_loss,
        "balance_before": running_balance_before,
        "balance_after": running_balance_after,
        "ocr_confidence": ocr_confidence,
        "detection_latency_ms": detection_latency_ms,
        "error": error_message,
        "metadata": metadata,
    }
    if timestamp is not None:
        fields["occurred_at"] = timestamp
    return str(_current().emit(RoundSettled(**fields)))


def _money(value: Decimal | None) -> float:
    return round(float(value or 0), 2)


def _percent(fraction: float | None) -> float:
    return round(100 * fraction, 2) if fraction is not None else 0.0


def get_bot_statistics(bot_id: str, strategy_name: str | None = None) -> dict[str, Any]:
    """The bot's statistics with the old keys (money rounded to cents, rates in percent).

    ``win_rate_percent`` and ``roi_percent`` count bets (WIN and LOSS; a SKIP places no
    bet); the ``*_interval`` keys and ``warning`` are new.
    """
    logger = _current()
    logger.sync(SYNC_TIMEOUT)
    s = logger.bot_statistics(bot_id, strategy_name)
    ev = s.expected_value_interval
    return {
        "bot_id": bot_id,
        "total_rounds": s.rounds,
        "wins": s.wins,
        "losses": s.losses,
        "skips": s.skips,
        "win_rate_percent": _percent(s.win_rate),
        "win_rate_interval_percent": [
            _percent(s.win_rate_interval.low),
            _percent(s.win_rate_interval.high),
        ],
        "total_staked": _money(s.total_staked),
        "total_profit": _money(s.total_profit),
        "roi_percent": _percent(s.roi),
        "avg_profit_per_round": round(s.expected_value or 0.0, 2),
        "avg_profit_interval": None if ev is None else [round(ev.low, 2), round(ev.high, 2)],
        "max_drawdown": _money(s.max_drawdown),
        "longest_losing_streak": s.longest_losing_streak,
        "expected_longest_losing_streak": s.expected_longest_losing_streak,
        "warning": s.warning,
    }


def _format_of(path: str | Path, default: str) -> str:
    from crashlog.exports import format_of  # the one lookup; loaded when an export runs

    return format_of(path, default)


def export_multipliers_for_ml(
    output_file: str | Path = "multipliers_ml.csv",
    game_name: str | None = None,
    platform_code: str | None = None,
) -> int:
    """Write one row per game round (its crash multiplier, in time order) to ``output_file``;
    the format follows the extension (.csv, .jsonl, .json, .parquet). Returns the row count."""
    logger = _current()
    logger.sync(SYNC_TIMEOUT)
    return logger.export_multipliers(
        output_file, _format_of(output_file, "csv"), game=game_name, platform=platform_code
    )


def export_rounds_to_json(
    output_file: str | Path = "rounds.json", bot_id: str | None = None
) -> int:
    """Write the settled rounds (of one bot if given) as a JSON array, in time order (JSON
    lines if the name ends in .jsonl). Returns the row count."""
    logger = _current()
    logger.sync(SYNC_TIMEOUT)
    return logger.export_rounds(output_file, _format_of(output_file, "json"), bot_id=bot_id)


_SIZE = """
SELECT pg_database_size(current_database()) AS size_bytes,
       (SELECT count(*) FROM crashlog.events) AS total_events,
       (SELECT count(*) FROM crashlog.rounds) AS total_rounds
"""


def get_database_size() -> dict[str, Any]:
    """The database's size on disk and how many events and rounds it holds."""
    logger = _current()
    logger.flush(SYNC_TIMEOUT)
    row = logger.run(logger.pool.fetchrow(_SIZE))
    return {
        "size_bytes": row["size_bytes"],
        "size_mb": round(row["size_bytes"] / 1_048_576, 2),
        "total_events": row["total_events"],
        "total_rounds": row["total_rounds"],
    }
