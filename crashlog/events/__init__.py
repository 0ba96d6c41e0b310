"""The event catalogue: frozen, validated facts, and their codec.

Construct an event with keyword arguments; a bad value raises
``crashlog.InvalidEvent`` naming the field and the value.
"""

from crashlog.events.base import EVENT_TYPES, Event, register
from crashlog.events.catalogue import (
    BotErrorRaised,
    BotRegistered,
    FairnessRecorded,
    GameConfigured,
    OcrRead,
    Outcome,
    RoundObserved,
    RoundSettled,
    SessionEnded,
    SessionStarted,
    SignalRaised,
)
from crashlog.events.codec import decode_event, encode_payload, upcaster
from crashlog.events.uuid7 import uuid7

__all__ = [
    "EVENT_TYPES",
    "BotErrorRaised",
    "BotRegistered",
    "Event",
    "FairnessRecorded",
    "GameConfigured",
    "OcrRead",
    "Outcome",
    "RoundObserved",
    "RoundSettled",
    "SessionEnded",
    "SessionStarted",
    "SignalRaised",
    "decode_event",
    "encode_payload",
    "register",
    "upcaster",
    "uuid7",
]
