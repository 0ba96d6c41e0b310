"""The envelope every event shares, and the registry of event types."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import attrs

from crashlog.errors import InvalidEvent
from crashlog.events import fields as f
from crashlog.events.uuid7 import uuid7

#: Fields stored in their own columns of ``crashlog.events`` rather than in ``payload``.
ENVELOPE_FIELDS = frozenset({"bot_id", "event_id", "occurred_at", "session_id"})

EVENT_TYPES: dict[str, type[Event]] = {}

E = TypeVar("E", bound="Event")


@attrs.frozen(kw_only=True)
class Event:
    """An immutable fact a bot reports. Construction validates every field.

    ``event_id`` is the idempotency key: emitting the same id twice stores it once.
    """

    event_type: ClassVar[str] = "Event"
    #: Version of this type's payload layout; bump it and add an upcaster when it changes.
    schema_version: ClassVar[int] = 1
    #: Names of the fields that go into ``payload`` (all but the envelope), in order.
    payload_fields: ClassVar[tuple[str, ...]] = ()

    bot_id: str = f.field(f.identifier, required=True)
    event_id: UUID = f.field(f.uuid, default=uuid7)
    occurred_at: datetime = f.field(f.aware_datetime, default=f.utc_now)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # attrs would raise TypeError for these; users get a named InvalidEvent instead.
        if args:
            raise InvalidEvent("<positional>", args, f"{cls.__name__} takes keyword arguments only")
        accepted, required = _signature(cls)
        unknown = kwargs.keys() - accepted
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidEvent(name, kwargs[name], f"is not a field of {cls.__name__}")
        missing = required - kwargs.keys()
        if missing:
            raise InvalidEvent(sorted(missing)[0], None, f"is required by {cls.__name__}")
        return super().__new__(cls)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__


_SIGNATURES: dict[type, tuple[frozenset[str], frozenset[str]]] = {}


def _signature(cls: type[Event]) -> tuple[frozenset[str], frozenset[str]]:
    """The field names an event class accepts, and those it requires (cached per class)."""
    try:
        return _SIGNATURES[cls]
    except KeyError:
        fields = attrs.fields(cls)
        accepted = frozenset(a.name for a in fields)
        required = frozenset(a.name for a in fields if a.default is attrs.NOTHING)
        _SIGNATURES[cls] = (accepted, required)
        return accepted, required


def register(cls: type[E]) -> type[E]:
    """Add an event class to the catalogue that the decoder knows."""
    cls.payload_fields = tuple(
        a.name for a in attrs.fields(cls) if a.name not in ENVELOPE_FIELDS
    )
    EVENT_TYPES[cls.event_type] = cls
    return cls
