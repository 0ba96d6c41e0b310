"""The payload codec: events to orjson bytes and back, with exact decimals and upcasting.

Decimals are stored as JSON strings ("2.45"), so no float ever touches money or a
multiplier; SQL reads them back exactly with ``(payload->>'stake')::numeric``.
Fields left as ``None`` are omitted. Older payloads are upcast, one version at a
time, by the functions registered with ``upcaster``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs
import orjson

from crashlog.errors import InvalidEvent
from crashlog.events.base import EVENT_TYPES, Event

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

#: (event_type, from_version) -> function turning that payload into version from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str | type[Event], from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register ``fn`` to turn a ``from_version`` payload of ``event_type`` (a type name or
    an event class) into the next version."""
    name = event_type if isinstance(event_type, str) else event_type.event_type

    def decorate(fn: Upcaster) -> Upcaster:
        UPCASTERS[(name, from_version)] = fn
        return fn

    return decorate


_ENCODERS: dict[type[Event], Callable[[Event], dict[str, Any]]] = {}


def _payload_builder(cls: type[Event]) -> Callable[[Event], dict[str, Any]]:
    """A function, written for ``cls``, that gathers its payload as a dict of JSON-ready values.

    ``emit`` runs this for every event, so instead of a generic loop that inspects
    each value, we generate straight-line code from the field declarations (the
    way attrs writes ``__init__``): decimals become strings, None fields are left out.
    """
    lines = ["def build(event):", "    payload = {}"]
    for attribute in attrs.fields(cls):
        if attribute.name not in cls.payload_fields:
            continue
        name = attribute.name
        value = "str(value)" if attribute.metadata.get("decimal") else "value"
        lines.append(f"    value = event.{name}")
        if attribute.metadata.get("nullable", True):
            lines.append("    if value is not None:")
            lines.append(f"        payload[{name!r}] = {value}")
        else:
            lines.append(f"    payload[{name!r}] = {value}")
    lines.append("    return payload")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<payload of {cls.__name__}>", "exec"), namespace)  # noqa: S102
    return namespace["build"]  # type: ignore[no-any-return]


def payload_dict(event: Event) -> dict[str, Any]:
    """The event's own fields as JSON-ready values (decimals as strings, None fields left out)."""
    cls = type(event)
    build = _ENCODERS.get(cls)
    if build is None:
        build = _ENCODERS[cls] = _payload_builder(cls)
    return build(event)


def encode_payload(event: Event, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> bytes:
    """The event's own fields as compact JSON; refuses a payload over ``max_bytes``."""
    build = _ENCODERS.get(type(event))  # payload_dict's lookup, inline: emit runs this per event
    encoded = orjson.dumps(payload_dict(event) if build is None else build(event))
    if len(encoded) > max_bytes:
        raise InvalidEvent(
            "payload", f"<{len(encoded)} bytes>", f"encodes to over the limit of {max_bytes} bytes"
        )
    return encoded


@attrs.frozen(kw_only=True)
class RawEvent:
    """A row of the log whose event type this process has no class for, as stored: its
    type, schema version, envelope and payload (a dict of JSON values; decimals are the
    strings they were written as). Delivered instead of failing, so a reader of the log
    never stops at a type another program declared."""

    event_type: str
    schema_version: int
    bot_id: str
    event_id: UUID
    occurred_at: datetime
    session_id: str | None
    payload: Payload


def decode_event(
    event_type: str,
    schema_version: int,
    *,
    bot_id: str,
    event_id: UUID,
    occurred_at: datetime,
    session_id: str | None,
    payload: bytes | str | Payload,
) -> Event | RawEvent:
    """Rebuild the event a row of ``crashlog.events`` records, upcasting old payloads.

    A type with no registered class comes back as a ``RawEvent``; a payload its class
    refuses (or a version with no upcaster) raises ``InvalidEvent`` naming the field.
    """
    values = dict(payload) if isinstance(payload, dict) else orjson.loads(payload)
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        return RawEvent(
            event_type=event_type, schema_version=schema_version, bot_id=bot_id,
            event_id=event_id, occurred_at=occurred_at, session_id=session_id, payload=values,
        )
    values = upcast(event_type, schema_version, values)
    if _has_field(cls, "session_id"):
        values["session_id"] = session_id
    return cls(bot_id=bot_id, event_id=event_id, occurred_at=occurred_at, **values)


def upcast(event_type: str, schema_version: int, payload: Payload) -> Payload:
    """Bring a payload written at ``schema_version`` up to its class's current version."""
    current = EVENT_TYPES[event_type].schema_version
    while schema_version < current:
        try:
            step = UPCASTERS[(event_type, schema_version)]
        except KeyError:
            raise InvalidEvent(
                "schema_version", schema_version, f"no upcaster for {event_type} from it"
            ) from None
        payload = step(payload)
        schema_version += 1
    if schema_version > current:
        raise InvalidEvent(
            "schema_version", schema_version, f"is newer than this code's {event_type} v{current}"
        )
    return payload


def _has_field(cls: type[Event], name: str) -> bool:
    return any(a.name == name for a in cls.__attrs_attrs__)
