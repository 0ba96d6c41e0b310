"""Field kinds of events (the catalogue's and users' own): each converts what a bot passes and refuses what it must not.

Every kind is an attrs converter that receives the field, so a refusal raises
``InvalidEvent`` naming the field and the value. The rules are strict on
purpose: nothing that passes construction may later fail in PostgreSQL or in a
projection (NUL characters, NaN, naive datetimes, integers beyond 64 bits ...).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import attrs

from crashlog.errors import InvalidEvent

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MULTIPLIER_MIN = Decimal("1.00")
MULTIPLIER_CAP = Decimal("1000000")
DECIMAL_MAX_PLACES = 100
ID_MAX_CHARS = 128
NAME_MAX_CHARS = 256
TEXT_MAX_CHARS = 100_000
FEATURE_VECTOR_MAX = 10_000
JSON_MAX_DEPTH = 32

Convert = Callable[[Any, "attrs.Attribute[Any]"], Any]


class Outcome(str, enum.Enum):
    """How a round ended for the bot. Also accepts its names as strings ("win", "LOSS")."""

    WIN = "WIN"
    LOSS = "LOSS"
    SKIP = "SKIP"


def _refuse(field: attrs.Attribute[Any], value: Any, reason: str) -> InvalidEvent:
    return InvalidEvent(field.name, value, reason)


def _optional(convert: Convert, default: Callable[[], Any] | None = None) -> Convert:
    """``convert``, taking ``None`` as "not given": the field's default, else None.

    The codec leaves None fields out of the payload, so None must mean the same
    as leaving the field out (and a field with a default is never None).
    """

    def optional(value: Any, field: attrs.Attribute[Any]) -> Any:
        if value is None:
            return None if default is None else default()
        return convert(value, field)

    return optional


def _check_text(value: str, where: str) -> str | None:
    """Return why ``value`` cannot be stored as PostgreSQL text, or None when it can."""
    if "\x00" in value:
        return "contains a NUL character, which PostgreSQL cannot store"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{where} is not valid Unicode (lone surrogate)"
    return None


def _text(max_chars: int, *, allow_empty: bool) -> Convert:
    def text(value: Any, field: attrs.Attribute[Any]) -> str:
        if not isinstance(value, str):
            raise _refuse(field, value, f"must be a string, not {type(value).__name__}")
        if not value and not allow_empty:
            raise _refuse(field, value, "must not be empty")
        if len(value) > max_chars:
            raise _refuse(field, value, f"is {len(value)} characters long, over the limit {max_chars}")
        problem = _check_text(value, "text")
        if problem:
            raise _refuse(field, value, problem)
        return value

    return text


def _decimal(value: Any, field: attrs.Attribute[Any]) -> Decimal:
    """Any exact number, as a Decimal. A float is taken by its shortest repr (2.45 -> '2.45')."""
    if isinstance(value, bool):
        raise _refuse(field, value, "must be a number, not a bool")
    try:
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, (int, str)):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        else:
            raise _refuse(field, value, f"must be a decimal number, not {type(value).__name__}")
    except (InvalidOperation, ValueError):
        raise _refuse(field, value, "is not a decimal number") from None
    if not number.is_finite():
        raise _refuse(field, value, "must be finite (not NaN or infinite)")
    if abs(number.adjusted()) > 100:
        raise _refuse(field, value, "is out of range (more than 100 digits of magnitude)")
    if -number.as_tuple().exponent > DECIMAL_MAX_PLACES:  # type: ignore[operator]
        # PostgreSQL's numeric, which SQL casts these to, holds at most 16383 places.
        raise _refuse(field, value, f"has over {DECIMAL_MAX_PLACES} digits after the decimal point")
    return number


def _non_negative_decimal(value: Any, field: attrs.Attribute[Any]) -> Decimal:
    number = _decimal(value, field)
    if number < 0:
        raise _refuse(field, value, "must not be negative")
    return number


def _multiplier(value: Any, field: attrs.Attribute[Any]) -> Decimal:
    number = _decimal(value, field)
    if number < MULTIPLIER_MIN:
        raise _refuse(field, value, "a multiplier cannot be below 1.00")
    if number > MULTIPLIER_CAP:
        raise _refuse(field, value, f"is above the multiplier cap {MULTIPLIER_CAP}")
    return number


def _percent(value: Any, field: attrs.Attribute[Any]) -> Decimal:
    number = _decimal(value, field)
    if not 0 < number <= 100:
        raise _refuse(field, value, "must be a percentage in (0, 100]")
    return number


def _finite_float(value: Any, field: attrs.Attribute[Any], where: str | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise InvalidEvent(where or field.name, value, "must be a number")
    if isinstance(value, Decimal) and not value.is_finite():  # float() raises on a signaling NaN
        raise InvalidEvent(where or field.name, value, "must be finite (not NaN or infinite)")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidEvent(where or field.name, value, "is too large for a float") from None
    if not math.isfinite(number):
        raise InvalidEvent(where or field.name, value, "must be finite (not NaN or infinite)")
    return number


def _probability(value: Any, field: attrs.Attribute[Any]) -> float:
    number = _finite_float(value, field)
    if not 0.0 <= number <= 1.0:
        raise _refuse(field, value, "must be between 0 and 1")
    return number


def _int64(minimum: int) -> Convert:
    def integer(value: Any, field: attrs.Attribute[Any]) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _refuse(field, value, f"must be an integer, not {type(value).__name__}")
        if not minimum <= value <= INT64_MAX:
            raise _refuse(field, value, f"must be between {minimum} and {INT64_MAX}")
        return value

    return integer


def _aware_datetime(value: Any, field: attrs.Attribute[Any]) -> datetime:
    """An aware datetime (or its ISO 8601 text, as the codec stores it), kept in UTC.

    UTC because JSON offsets stop at the minute: an offset with seconds (old IANA
    zones have them) would come back as another instant. Equality is by instant,
    so the event still equals what the bot passed.
    """
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _refuse(field, value, "is not an ISO 8601 datetime") from None
    elif not isinstance(value, datetime):
        raise _refuse(field, value, f"must be a datetime, not {type(value).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _refuse(field, value, "must be timezone-aware (a naive datetime is ambiguous)")
    if moment.tzinfo is UTC:
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _refuse(field, value, "is out of range once converted to UTC") from None


def _uuid(value: Any, field: attrs.Attribute[Any]) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise _refuse(field, value, "must be a UUID")


def _outcome(value: Any, field: attrs.Attribute[Any]) -> Outcome:
    if isinstance(value, Outcome):
        return value
    if isinstance(value, str):
        try:
            return Outcome[value.strip().upper()]
        except KeyError:
            pass
    raise _refuse(field, value, f"must be one of {', '.join(o.name for o in Outcome)}")


def _feature_vector(value: Any, field: attrs.Attribute[Any]) -> tuple[float, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise _refuse(field, value, "must be a list of finite numbers")
    items = list(value)
    if len(items) > FEATURE_VECTOR_MAX:
        raise _refuse(field, f"<{len(items)} numbers>", f"has over {FEATURE_VECTOR_MAX} numbers")
    return tuple(
        _finite_float(item, field, f"{field.name}[{index}]") for index, item in enumerate(items)
    )


def _json_object(value: Any, field: attrs.Attribute[Any]) -> dict[str, Any]:
    """A JSON object of plain values; checked all the way down, returned as a fresh dict."""
    if not isinstance(value, Mapping):
        raise _refuse(field, value, f"must be a mapping, not {type(value).__name__}")
    return _json_value(value, field.name, 0)  # type: ignore[no-any-return]


def _json_value(value: Any, where: str, depth: int) -> Any:
    if depth > JSON_MAX_DEPTH:
        raise InvalidEvent(where, "...", f"nests deeper than {JSON_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidEvent(where, value, "an integer must fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEvent(where, value, "must be finite (not NaN or infinite)")
        return _json_float(value, where)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidEvent(where, value, "must be finite (not NaN or infinite)")
        return str(value)
    if isinstance(value, str):
        if len(value) > TEXT_MAX_CHARS:
            raise InvalidEvent(where, value, f"is over {TEXT_MAX_CHARS} characters")
        problem = _check_text(value, "text")
        if problem:
            raise InvalidEvent(where, value, problem)
        return value
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEvent(f"{where}.{key!r}", key, "keys must be strings")
            problem = _check_text(key, "key")
            if problem:
                raise InvalidEvent(f"{where}.{key!r}", key, problem)
            result[key] = _json_value(item, f"{where}.{key}", depth + 1)
        return result
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise InvalidEvent(where, value, f"{type(value).__name__} is not a JSON value")


def _json_float(value: float, where: str) -> float | int:
    """A float as jsonb will give it back.

    JSON writes a large float in exponent form ("6.107331154662631e+16"); jsonb
    keeps it as the integer those digits spell (61073311546626310), which reads
    back as an int that is not the float's value. An integral float that large
    is therefore kept as its exact int. Between 2**63 and 2**64 that int would
    break the 64-bit rule, yet it would still come back as an int: refused.
    """
    if abs(value) < _EXACT_FLOAT_INTS or not value.is_integer():
        return value
    if INT64_MIN <= value <= INT64_MAX:
        return int(value)
    if INT64_MAX < value < 2**64:  # orjson reads these digits back as an unsigned int
        raise InvalidEvent(
            where, value, "a float between 2**63 and 2**64 cannot be stored exactly (pass a string)"
        )
    return value


_EXACT_FLOAT_INTS = 2.0**53


def field(convert: Convert, *, required: bool = False, default: Any = None) -> Any:
    """An event field of the given kind; optional fields default to None.

    The field's metadata records whether it holds a ``Decimal`` and whether it
    can be ``None``, so the codec can encode it without looking at the value.
    """
    metadata = {
        "decimal": convert in DECIMAL_KINDS,
        "nullable": not required and default is None,
        "kind": kind_name(convert),
    }
    if required:
        return attrs.field(
            converter=attrs.Converter(convert, takes_field=True),  # type: ignore[call-overload]
            metadata=metadata,
        )
    factory = None if default is None else default if callable(default) else lambda: default
    return attrs.field(
        converter=attrs.Converter(_optional(convert, factory), takes_field=True),  # type: ignore[call-overload]
        default=attrs.Factory(factory) if factory else None,
        metadata=metadata,
    )


# The kinds, by what the catalogue calls them.
identifier = _text(ID_MAX_CHARS, allow_empty=False)
name = _text(NAME_MAX_CHARS, allow_empty=False)
text = _text(TEXT_MAX_CHARS, allow_empty=True)
money = _decimal
stake = _non_negative_decimal
multiplier = _multiplier
percent = _percent
probability = _probability
count = _int64(0)
integer = _int64(INT64_MIN)
aware_datetime = _aware_datetime
uuid = _uuid
outcome = _outcome
feature_vector = _feature_vector
json_object = _json_object

#: The kinds whose values are ``Decimal``.
DECIMAL_KINDS = (money, stake, multiplier, percent)

#: Every public kind, by its name here.
KINDS: dict[str, Convert] = {
    "identifier": identifier, "name": name, "text": text, "money": money, "stake": stake,
    "multiplier": multiplier, "percent": percent, "probability": probability, "count": count,
    "integer": integer, "aware_datetime": aware_datetime, "uuid": uuid, "outcome": outcome,
    "feature_vector": feature_vector, "json_object": json_object,
}


def kind_name(convert: Convert) -> str:
    """A kind's public name, or for a converter of one's own, where it is defined: what
    tells two declarations of a field apart."""
    for known, kind in KINDS.items():
        if kind is convert:
            return known
    return f"{getattr(convert, '__module__', '?')}.{getattr(convert, '__qualname__', repr(convert))}"


def utc_now() -> datetime:
    return datetime.now(UTC)
