"""The envelope every event shares, and the registry of event types."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar, overload
from uuid import UUID

import attrs

from crashlog.errors import EventTypeConflict, InvalidEvent
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


#: Longest event type name (it is stored in ``crashlog.events.event_type``).
TYPE_NAME_MAX_CHARS = 128


def register(cls: type[E]) -> type[E]:
    """Add an (attrs) event class to the registry the decoder reads.

    Raises ``EventTypeConflict`` naming the type when a different class holds the name
    already; the same definition again (a module reloaded, a notebook cell run twice)
    takes the name over, so the newest class is the one the decoder builds.
    """
    if not (isinstance(cls, type) and issubclass(cls, Event)) or not hasattr(cls, "__attrs_attrs__"):
        raise EventTypeConflict(f"{cls!r} is not an event class (declare it with @event)")
    cls.payload_fields = tuple(
        a.name for a in attrs.fields(cls) if a.name not in ENVELOPE_FIELDS
    )
    known = EVENT_TYPES.get(cls.event_type)
    if known is not None and known is not cls and definition(known) != definition(cls):
        raise EventTypeConflict(
            f"event type {cls.event_type!r} is already registered by "
            f"{known.__module__}.{known.__qualname__}; {cls.__module__}.{cls.__qualname__} "
            "is a different definition (choose another name with @event(name=...))"
        )
    EVENT_TYPES[cls.event_type] = cls
    return cls


def definition(cls: type[Event]) -> tuple[Any, ...]:
    """What makes two classes the same event type: where they are declared, their version,
    and each field's name, kind, whether it is required and its default."""
    shape = tuple(
        (a.name, a.metadata.get("kind"), a.default is attrs.NOTHING, _default_of(a))
        for a in attrs.fields(cls)
    )
    return cls.__module__, cls.__qualname__, cls.schema_version, shape


def _default_of(attribute: attrs.Attribute[Any]) -> Any:
    default = attribute.default
    factory = getattr(default, "factory", None)
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return getattr(factory, "__qualname__", repr(factory))
    return repr(default)


@overload
def event(cls: type[E], /) -> type[E]: ...
@overload
def event(*, name: str | None = None) -> Callable[[type[E]], type[E]]: ...


def event(cls: type[E] | None = None, /, *, name: str | None = None) -> Any:
    """Declare an event type: ``@event`` or ``@event(name="...")`` over a subclass of ``Event``.

    Promises: the class becomes frozen and keyword-only (stack ``@attrs.frozen(kw_only=True)``
    under ``@event`` to let mypy's attrs plugin check the constructor's arguments); each annotated field must be
    declared with ``fields.field(kind, ...)`` (so it is validated at construction, raising
    ``InvalidEvent`` naming it); the type is registered under ``name`` (default: the class
    name) so the log's rows of that type decode to it and ``@upcaster`` applies. Raises
    ``EventTypeConflict`` naming the type for a bad name, a field without a kind, or a name
    a different class holds.
    """

    def declare(cls: type[E]) -> type[E]:
        if not (isinstance(cls, type) and issubclass(cls, Event)):
            raise EventTypeConflict(f"@event needs a subclass of crashlog.events.Event, not {cls!r}")
        type_name = cls.__name__ if name is None else name
        _check_type_name(type_name)
        cls.event_type = type_name
        # A class attrs made already (``@event`` over ``@attrs.frozen(kw_only=True)``, which
        # lets mypy's attrs plugin see the fields) is taken as it is.
        declared = cls if "__attrs_attrs__" in cls.__dict__ else attrs.frozen(kw_only=True)(cls)
        if not all(a.kw_only for a in attrs.fields(declared)):
            raise EventTypeConflict(f"event type {type_name!r}: its fields must be keyword-only")
        for attribute in attrs.fields(declared):
            if "kind" not in attribute.metadata:
                raise EventTypeConflict(
                    f"event type {type_name!r}: field {attribute.name!r} has no kind (declare it "
                    "as fields.field(fields.<kind>, ...))"
                )
        return register(declared)

    return declare if cls is None else declare(cls)


def _check_type_name(type_name: Any) -> None:
    if (
        not isinstance(type_name, str)
        or not type_name
        or len(type_name) > TYPE_NAME_MAX_CHARS
        or not type_name.isprintable()
    ):
        raise EventTypeConflict(
            f"event type name {type_name!r} must be printable text of 1 to "
            f"{TYPE_NAME_MAX_CHARS} characters"
        )
