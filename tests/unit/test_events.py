"""``crashlog.events`` without a database: every valid event survives the codec; every bad value is
refused at construction with an ``InvalidEvent`` that names the field and shows the value.
(Stored and read back through a logger: tests/integration/test_events_stored.py.)"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import attrs
import orjson
import pytest
from helpers.events import SCALE
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    FIELD_KINDS,
    INVALID,
    Bad,
    applicable,
    event_kwargs,
    kinds_of,
    plain_kwargs,
    required_fields,
    valid_events,
)

import crashlog
from crashlog.events import (
    EVENT_TYPES,
    BotErrorRaised,
    Event,
    Outcome,
    RoundSettled,
    SignalRaised,
    decode_event,
    encode_payload,
)


def decoded(event: Event, payload: bytes) -> Event:
    """What ``decode_event`` rebuilds from the envelope of ``event`` and ``payload``."""
    return decode_event(
        event.event_type,
        event.schema_version,
        bot_id=event.bot_id,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        session_id=getattr(event, "session_id", None),
        payload=payload,
    )


def a_round(**changes: Any) -> RoundSettled:
    values: dict[str, Any] = dict(
        bot_id="b1", session_id="s1", game="aviator", platform="demo", round_number=1,
        stake=Decimal("10.00"), crash_multiplier=Decimal("2.45"),
        cashout_multiplier=Decimal("1.33"), outcome=Outcome.WIN, profit_loss=Decimal("3.30"),
    )
    return RoundSettled(**{**values, **changes})


# -- the strategies describe the catalogue exactly ----------------------------------------------


def test_the_strategies_cover_every_event_type_and_every_field() -> None:
    assert set(FIELD_KINDS) == set(EVENT_TYPES.values())
    for cls in FIELD_KINDS:
        assert set(kinds_of(cls)) == {a.name for a in attrs.fields(cls)}, cls.__name__


def test_every_mistake_applies_to_some_field() -> None:
    for mistake in INVALID:
        assert applicable(mistake), mistake


# -- round trips ---------------------------------------------------------------------------------


@settings(max_examples=200 * SCALE, deadline=None)
@given(valid_events())
def test_decoding_the_encoded_payload_gives_back_an_equal_event(event: Event) -> None:
    assert decoded(event, encode_payload(event)) == event


@settings(max_examples=50 * SCALE, deadline=None)
@given(valid_events())
def test_decimals_are_json_strings_and_absent_fields_are_omitted(event: Event) -> None:
    payload = orjson.loads(encode_payload(event))
    for name in event.payload_fields:
        value = getattr(event, name)
        if value is None:
            assert name not in payload
        elif isinstance(value, Decimal):
            assert payload[name] == str(value)  # exact digits, never through a float


def test_a_float_given_for_money_is_taken_by_its_shortest_repr() -> None:
    event = a_round(stake=2.45, profit_loss=3, crash_multiplier="1.10")
    assert (event.stake, event.profit_loss, event.crash_multiplier) == (
        Decimal("2.45"), Decimal("3"), Decimal("1.10"))
    assert orjson.loads(encode_payload(event))["crash_multiplier"] == "1.10"


@pytest.mark.parametrize("name", ["WIN", "win", "Win", " loss ", "SKIP", "skip"])
def test_outcome_accepts_its_names_as_strings(name: str) -> None:
    event = a_round(outcome=name)
    assert event.outcome is Outcome[name.strip().upper()]
    assert decoded(event, encode_payload(event)).outcome is event.outcome


def test_events_are_frozen() -> None:
    event = a_round()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.stake = Decimal("1")  # type: ignore[misc]


def test_an_optional_field_given_as_none_is_the_same_as_leaving_it_out() -> None:
    # encode omits None fields, so None must mean "not given" or the decoded event would differ.
    error = BotErrorRaised(bot_id="b", error_type="Timeout", message="m", severity=None, context=None)
    assert error == BotErrorRaised(
        bot_id="b", error_type="Timeout", message="m", event_id=error.event_id,
        occurred_at=error.occurred_at,
    )
    assert error.severity == "error" and error.context == {}
    fresh = RoundSettled(**{**attrs.asdict(a_round(), recurse=False), "event_id": None,
                            "occurred_at": None})
    assert fresh.event_id is not None and fresh.occurred_at is not None


# -- invalid values ------------------------------------------------------------------------------


def assert_refused(info: pytest.ExceptionInfo[crashlog.InvalidEvent], field: str, bad: Bad) -> None:
    error = info.value
    if bad.where is None:
        assert error.field.startswith(f"{field}."), error.field
    else:
        assert error.field == field + bad.where
    assert bad.must_show in str(error)
    assert isinstance(error, ValueError)  # InvalidEvent is a ValueError, as DESIGN promises


@pytest.mark.parametrize("mistake", sorted(INVALID))
@settings(max_examples=20 * SCALE, deadline=None)
@given(data=st.data())
def test_each_kind_of_bad_value_is_refused_naming_the_field_and_the_value(
    mistake: str, data: st.DataObject
) -> None:
    cls, field = data.draw(st.sampled_from(applicable(mistake)), label="field")
    bad = data.draw(INVALID[mistake][1], label="bad")
    with pytest.raises(crashlog.InvalidEvent) as info:
        cls(**{**plain_kwargs(cls), field: bad.value})
    assert_refused(info, field, bad)


@settings(max_examples=60 * SCALE, deadline=None)
@given(data=st.data())
def test_an_unknown_field_is_refused_by_name(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(sorted(FIELD_KINDS, key=lambda c: c.__name__)))
    name = data.draw(st.from_regex(r"[a-z_]{1,20}", fullmatch=True).filter(
        lambda n: n not in kinds_of(cls)))
    value = data.draw(st.integers() | st.text(max_size=10))
    kwargs = data.draw(event_kwargs(cls))
    with pytest.raises(crashlog.InvalidEvent) as info:
        cls(**kwargs, **{name: value})
    assert info.value.field == name
    assert repr(value)[:60] in str(info.value) and cls.__name__ in str(info.value)


@pytest.mark.parametrize(
    ("cls", "name"),
    [(cls, name) for cls in FIELD_KINDS for name in sorted(required_fields(cls))],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_a_missing_required_field_is_refused_by_name(cls: type[Event], name: str) -> None:
    kwargs = plain_kwargs(cls)
    del kwargs[name]
    with pytest.raises(crashlog.InvalidEvent) as info:
        cls(**kwargs)
    assert info.value.field == name and name in str(info.value)


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(crashlog.InvalidEvent, match="keyword"):
        SignalRaised("b1")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"stake": Decimal("-0.01")}, "stake"),
        ({"crash_multiplier": Decimal("0.99")}, "crash_multiplier"),
        ({"cashout_multiplier": Decimal("1000000.01")}, "cashout_multiplier"),
        ({"ocr_confidence": 1.01}, "ocr_confidence"),
        ({"ocr_confidence": -0.01}, "ocr_confidence"),
        ({"started_at": datetime(2024, 1, 1, 12, 0)}, "started_at"),
        ({"occurred_at": datetime(2024, 1, 1, 12, 0)}, "occurred_at"),
        ({"bot_id": ""}, "bot_id"),
        ({"bot_id": "x" * 129}, "bot_id"),
        ({"game": "avi\x00ator"}, "game"),
        ({"error": "bad \ud800 text"}, "error"),
        ({"profit_loss": Decimal("NaN")}, "profit_loss"),
        ({"profit_loss": float("inf")}, "profit_loss"),
        ({"round_number": 2**63}, "round_number"),
        ({"metadata": {"n": 2**64}}, "metadata.n"),
        ({"metadata": {"a\x00b": 1}}, "metadata.'a\\x00b'"),
        ({"metadata": {"list": [1, "ok\x00"]}}, "metadata.list[1]"),
    ],
)
def test_the_documented_refusals_name_the_field(changes: dict[str, Any], field: str) -> None:
    """The examples of DESIGN "Events", one by one, as a reader would try them."""
    with pytest.raises(crashlog.InvalidEvent) as info:
        a_round(**changes)
    assert info.value.field == field
    assert repr(info.value.value)[:60] in str(info.value)


@given(valid_events())
@settings(max_examples=30 * SCALE, deadline=None)
def test_a_payload_over_the_limit_is_refused_and_one_at_the_limit_is_not(event: Event) -> None:
    size = len(encode_payload(event))
    assert len(encode_payload(event, max_bytes=size)) == size
    with pytest.raises(crashlog.InvalidEvent) as info:
        encode_payload(event, max_bytes=size - 1)
    assert info.value.field == "payload"
    assert f"{size} bytes" in str(info.value) and f"{size - 1} bytes" in str(info.value)


def test_timezones_are_kept_as_instants() -> None:
    # orjson writes an offset to the minute; an instant must survive whatever the offset.
    from datetime import timedelta

    odd = timezone(timedelta(hours=5, minutes=30, seconds=15))
    event = a_round(started_at=datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=odd))
    assert decoded(event, encode_payload(event)).started_at == event.started_at
