"""``log_crash_round``: the seed's logging function, now an event (the seed's logger.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crashlog.compat.connection import current
from crashlog.events import RoundSettled


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
    """Log one settled round; returns its id (the event id, which is the round's key in
    ``crashlog.rounds``). Raises ``crashlog.InvalidEvent`` naming
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
    return str(current().emit(RoundSettled(**fields)))
