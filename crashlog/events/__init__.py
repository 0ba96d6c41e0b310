"""The event catalogue: frozen, validated facts, and their codec.

Construct an event with keyword arguments; a bad value raises
``crashlog.InvalidEvent`` naming the field and the value. Declare a type of your own
with ``@event`` over a subclass of ``Event`` whose fields use the kinds of ``fields``
(``from crashlog.events import Event, event, fields as f``); a stored event of a type
with no class here decodes as a ``RawEvent``.
"""

from crashlog.events import fields
from crashlog.events.base import EVENT_TYPES, Event, event, register
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
from crashlog.events.codec import RawEvent, decode_event, encode_payload, upcaster
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
    "RawEvent",
    "RoundObserved",
    "RoundSettled",
    "SessionEnded",
    "SessionStarted",
    "SignalRaised",
    "decode_event",
    "encode_payload",
    "event",
    "fields",
    "register",
    "upcaster",
    "uuid7",
]
