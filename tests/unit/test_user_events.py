"""Users' own event types: declared with @event, validated, registered once per definition."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from crashlog.errors import EventTypeConflict, InvalidEvent
from crashlog.events import EVENT_TYPES, Event, RoundSettled, event, register
from crashlog.events import fields as f
from crashlog.events.codec import encode_payload


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    """Event types declared by a test are forgotten after it."""
    known = dict(EVENT_TYPES)
    yield
    EVENT_TYPES.clear()
    EVENT_TYPES.update(known)


def declare(name: str | None = None, **extra: Any) -> type[Event]:
    """The same declaration each call (as a notebook cell run again)."""

    class TopUp(Event):
        amount: Decimal = f.field(f.money, required=True)
        note: str | None = f.field(f.text)

    for key, value in extra.items():
        setattr(TopUp, key, value)
    return event(TopUp) if name is None else event(name=name)(TopUp)


def test_a_declared_event_is_frozen_keyword_only_validated_and_registered() -> None:
    TopUp = declare()
    assert EVENT_TYPES["TopUp"] is TopUp and TopUp.event_type == "TopUp"
    top_up = TopUp(bot_id="b1", amount="2.50")
    assert top_up.amount == Decimal("2.50")  # type: ignore[attr-defined]
    assert encode_payload(top_up) == b'{"amount":"2.50"}'
    with pytest.raises(AttributeError):
        top_up.amount = Decimal(1)  # type: ignore[attr-defined]
    with pytest.raises(InvalidEvent, match=r"invalid amount='lots': is not a decimal number"):
        TopUp(bot_id="b1", amount="lots")
    with pytest.raises(InvalidEvent, match="amount.*required"):
        TopUp(bot_id="b1")
    with pytest.raises(InvalidEvent, match="keyword arguments only"):
        TopUp("b1", "2.50")


def test_event_takes_a_name() -> None:
    TopUp = declare(name="bankroll.topped_up")
    assert EVENT_TYPES["bankroll.topped_up"] is TopUp
    assert "TopUp" not in EVENT_TYPES


def test_the_same_definition_again_is_fine_and_the_newest_class_decodes() -> None:
    declare()
    again = declare()
    assert EVENT_TYPES["TopUp"] is again


def test_a_different_class_under_a_taken_name_is_refused_naming_it() -> None:
    with pytest.raises(EventTypeConflict, match="'RoundSettled' is already registered by "
                       "crashlog.events.catalogue.RoundSettled"):
        declare(name="RoundSettled")
    assert EVENT_TYPES["RoundSettled"] is RoundSettled
    declare()
    with pytest.raises(EventTypeConflict, match="'TopUp' is already registered"):
        declare(schema_version=2)  # another definition under the same name


@pytest.mark.parametrize("name", ["", "x" * 129, "tab\there", 7])
def test_a_bad_type_name_is_refused(name: Any) -> None:
    with pytest.raises(EventTypeConflict, match="event type name"):
        declare(name=name)


def test_a_field_without_a_kind_is_refused_naming_it() -> None:
    with pytest.raises(EventTypeConflict, match="field 'amount' has no kind"):

        @event
        class Loose(Event):
            amount: int = 0

    assert "Loose" not in EVENT_TYPES


def test_only_event_classes_are_declared_or_registered() -> None:
    class NotAnEvent:
        pass

    with pytest.raises(EventTypeConflict, match="subclass of crashlog.events.Event"):
        event(NotAnEvent)  # type: ignore[type-var]
    with pytest.raises(EventTypeConflict, match="not an event class"):
        register(NotAnEvent)  # type: ignore[type-var]


def test_every_public_kind_is_in_fields() -> None:
    for kind in ("identifier", "name", "text", "money", "stake", "multiplier", "percent",
                 "probability", "count", "integer", "aware_datetime", "uuid", "outcome",
                 "feature_vector", "json_object"):
        assert f.KINDS[kind] is getattr(f, kind)
