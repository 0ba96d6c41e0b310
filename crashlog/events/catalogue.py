"""The event catalogue: every fact a crash-game bot can report.

Money and multipliers are ``Decimal`` (exact), confidences are floats in [0, 1],
ids are non-empty strings of at most 128 characters. Every optional field
defaults to ``None``; ``metadata`` and ``context`` default to an empty dict. Each type is
declared with ``@event``, the same way users declare their own.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from crashlog.events import fields as f
from crashlog.events.base import Event, event
from crashlog.events.fields import Outcome

__all__ = [
    "BotErrorRaised",
    "BotRegistered",
    "FairnessRecorded",
    "GameConfigured",
    "OcrRead",
    "Outcome",
    "RoundObserved",
    "RoundSettled",
    "SessionEnded",
    "SessionStarted",
    "SignalRaised",
]


@event
@attrs.frozen(kw_only=True)  # for mypy's attrs plugin: @event alone makes it so too
class BotRegistered(Event):
    """A bot announces itself: where it runs and what it plays with."""

    bot_name: str | None = f.field(f.name)
    vm_provider: str | None = f.field(f.name)
    region: str | None = f.field(f.name)
    strategy_name: str | None = f.field(f.identifier)
    initial_balance: Decimal | None = f.field(f.money)
    currency: str | None = f.field(f.identifier)
    metadata: dict[str, Any] = f.field(f.json_object, default=dict)


@event
@attrs.frozen(kw_only=True)
class GameConfigured(Event):
    """The rules of a game on a platform, as the bot found them."""

    game: str = f.field(f.identifier, required=True)
    platform: str = f.field(f.identifier, required=True)
    min_stake: Decimal | None = f.field(f.stake)
    max_stake: Decimal | None = f.field(f.stake)
    max_multiplier: Decimal | None = f.field(f.multiplier)
    rtp_percent: Decimal | None = f.field(f.percent)
    currency: str | None = f.field(f.identifier)


@event
@attrs.frozen(kw_only=True)
class SessionStarted(Event):
    """A bot begins a playing session."""

    session_id: str = f.field(f.identifier, required=True)
    game: str | None = f.field(f.identifier)
    platform: str | None = f.field(f.identifier)
    balance: Decimal | None = f.field(f.money)
    strategy_name: str | None = f.field(f.identifier)


@event
@attrs.frozen(kw_only=True)
class SessionEnded(Event):
    """A bot ends a playing session."""

    session_id: str = f.field(f.identifier, required=True)
    balance: Decimal | None = f.field(f.money)
    reason: str | None = f.field(f.text)


@event
@attrs.frozen(kw_only=True)
class RoundObserved(Event):
    """A round watched without betting: only where it crashed."""

    game: str = f.field(f.identifier, required=True)
    platform: str = f.field(f.identifier, required=True)
    crash_multiplier: Decimal = f.field(f.multiplier, required=True)
    game_round_id: str | None = f.field(f.identifier)
    round_number: int | None = f.field(f.count)
    session_id: str | None = f.field(f.identifier)


@event
@attrs.frozen(kw_only=True)
class RoundSettled(Event):
    """A round the bot took part in, settled: stake, multipliers, outcome and balances.

    Contradictions (a WIN cashing out above the crash, a profit that does not
    match the stake) are accepted: they are the bot's record, flagged in the
    read tables.
    """

    session_id: str | None = f.field(f.identifier)
    game: str = f.field(f.identifier, required=True)
    platform: str = f.field(f.identifier, required=True)
    round_number: int | None = f.field(f.count)
    game_round_id: str | None = f.field(f.identifier)
    strategy_name: str | None = f.field(f.identifier)
    stake: Decimal = f.field(f.stake, required=True)
    target_multiplier: Decimal | None = f.field(f.multiplier)
    crash_multiplier: Decimal = f.field(f.multiplier, required=True)
    cashout_multiplier: Decimal | None = f.field(f.multiplier)
    outcome: Outcome = f.field(f.outcome, required=True)
    profit_loss: Decimal = f.field(f.money, required=True)
    balance_before: Decimal | None = f.field(f.money)
    balance_after: Decimal | None = f.field(f.money)
    started_at: datetime | None = f.field(f.aware_datetime)
    crashed_at: datetime | None = f.field(f.aware_datetime)
    cashed_out_at: datetime | None = f.field(f.aware_datetime)
    ocr_confidence: float | None = f.field(f.probability)
    detection_latency_ms: int | None = f.field(f.count)
    error: str | None = f.field(f.text)
    metadata: dict[str, Any] = f.field(f.json_object, default=dict)


@event
@attrs.frozen(kw_only=True)
class SignalRaised(Event):
    """A prediction made before a round, to be scored against what happened."""

    session_id: str | None = f.field(f.identifier)
    game: str = f.field(f.identifier, required=True)
    platform: str = f.field(f.identifier, required=True)
    signal_id: str | None = f.field(f.identifier)
    signal_type: str = f.field(f.identifier, required=True)
    confidence_score: float | None = f.field(f.probability)
    pattern_match: str | None = f.field(f.name)
    predicted_multiplier: Decimal | None = f.field(f.multiplier)
    feature_vector: tuple[float, ...] | None = f.field(f.feature_vector)
    for_game_round_id: str | None = f.field(f.identifier)
    for_round_number: int | None = f.field(f.count)


@event
@attrs.frozen(kw_only=True)
class OcrRead(Event):
    """One screen reading: the raw text, what it parsed to, and how sure the reader was."""

    session_id: str | None = f.field(f.identifier)
    field: str = f.field(f.identifier, required=True)
    raw_text: str | None = f.field(f.text)
    parsed_value: Decimal | None = f.field(f.money)
    confidence: float | None = f.field(f.probability)
    latency_ms: int | None = f.field(f.count)


@event
@attrs.frozen(kw_only=True)
class BotErrorRaised(Event):
    """Something went wrong inside the bot."""

    session_id: str | None = f.field(f.identifier)
    error_type: str = f.field(f.identifier, required=True)
    message: str = f.field(f.text, required=True)
    severity: str = f.field(f.identifier, default="error")
    traceback: str | None = f.field(f.text)
    context: dict[str, Any] = f.field(f.json_object, default=dict)


@event
@attrs.frozen(kw_only=True)
class FairnessRecorded(Event):
    """What a game's provably-fair popup showed for one round (Spribe's Aviator, Aviatrix ...).

    Stored as shown; ``crashlog.fairness.check_spribe_record`` checks what can be checked
    (the server seed against its commitment, the SHA-512 of the seeds, hex to decimal).
    """

    schema_version: ClassVar[int] = 1

    game: str = f.field(f.identifier, required=True)
    platform: str = f.field(f.identifier, required=True)
    game_round_id: str | None = f.field(f.identifier)
    session_id: str | None = f.field(f.identifier)
    server_seed: str | None = f.field(f.name)
    server_seed_sha256: str | None = f.field(f.name)
    client_seed_1: str | None = f.field(f.name)
    client_seed_2: str | None = f.field(f.name)
    client_seed_3: str | None = f.field(f.name)
    combined_sha512: str | None = f.field(f.name)
    hex: str | None = f.field(f.name)
    decimal: int | None = f.field(f.count)
    result: Decimal | None = f.field(f.multiplier)
