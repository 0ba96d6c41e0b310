"""Hypothesis strategies: every valid event of the catalogue, and invalid values of every kind.

``FIELD_KINDS`` is the catalogue as a bot author reads it: each event type's own
fields and the kind of value each one takes. A test checks that it matches the
classes exactly, so a field added to the catalogue without a strategy fails loudly.

``valid_events()`` builds any valid event: optional fields present, ``None`` or
absent; decimals, integers, ids and confidences at their bounds as well as in
between; unicode text of every plane (no NUL, no lone surrogates); nested JSON
objects; feature vectors; aware datetimes in fixed offsets and IANA zones.

``INVALID`` maps a kind of mistake to the kinds of field it applies to and a
strategy of ``Bad`` values: what to pass, and what the resulting error must say.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import strategies as st

from crashlog.events import (
    BotErrorRaised,
    BotRegistered,
    Event,
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
from crashlog.events.fields import (
    FEATURE_VECTOR_MAX,
    ID_MAX_CHARS,
    INT64_MAX,
    INT64_MIN,
    JSON_MAX_DEPTH,
    MULTIPLIER_CAP,
    NAME_MAX_CHARS,
)

# -- the catalogue, by kind of field ----------------------------------------------------------

ENVELOPE_KINDS = {"bot_id": "identifier", "event_id": "uuid", "occurred_at": "datetime"}

FIELD_KINDS: dict[type[Event], dict[str, str]] = {
    BotRegistered: {
        "bot_name": "name", "vm_provider": "name", "region": "name",
        "strategy_name": "identifier", "initial_balance": "money", "currency": "identifier",
        "metadata": "json_object",
    },
    GameConfigured: {
        "game": "identifier", "platform": "identifier", "min_stake": "stake",
        "max_stake": "stake", "max_multiplier": "multiplier", "rtp_percent": "percent",
        "currency": "identifier",
    },
    SessionStarted: {
        "session_id": "identifier", "game": "identifier", "platform": "identifier",
        "balance": "money", "strategy_name": "identifier",
    },
    SessionEnded: {"session_id": "identifier", "balance": "money", "reason": "text"},
    RoundObserved: {
        "game": "identifier", "platform": "identifier", "crash_multiplier": "multiplier",
        "game_round_id": "identifier", "round_number": "count", "session_id": "identifier",
    },
    RoundSettled: {
        "session_id": "identifier", "game": "identifier", "platform": "identifier",
        "round_number": "count", "game_round_id": "identifier", "strategy_name": "identifier",
        "stake": "stake", "target_multiplier": "multiplier", "crash_multiplier": "multiplier",
        "cashout_multiplier": "multiplier", "outcome": "outcome", "profit_loss": "money",
        "balance_before": "money", "balance_after": "money", "started_at": "datetime",
        "crashed_at": "datetime", "cashed_out_at": "datetime", "ocr_confidence": "probability",
        "detection_latency_ms": "count", "error": "text", "metadata": "json_object",
    },
    SignalRaised: {
        "session_id": "identifier", "game": "identifier", "platform": "identifier",
        "signal_id": "identifier", "signal_type": "identifier",
        "confidence_score": "probability", "pattern_match": "name",
        "predicted_multiplier": "multiplier", "feature_vector": "feature_vector",
        "for_game_round_id": "identifier", "for_round_number": "count",
    },
    OcrRead: {
        "session_id": "identifier", "field": "identifier", "raw_text": "text",
        "parsed_value": "money", "confidence": "probability", "latency_ms": "count",
    },
    BotErrorRaised: {
        "session_id": "identifier", "error_type": "identifier", "message": "text",
        "severity": "identifier", "traceback": "text", "context": "json_object",
    },
    FairnessRecorded: {
        "game": "identifier", "platform": "identifier", "game_round_id": "identifier",
        "session_id": "identifier", "server_seed": "name", "server_seed_sha256": "name",
        "client_seed_1": "name", "client_seed_2": "name", "client_seed_3": "name",
        "combined_sha512": "name", "hex": "name", "decimal": "count", "result": "multiplier",
    },
}


def kinds_of(cls: type[Event]) -> dict[str, str]:
    """Every field of ``cls`` (envelope included) -> its kind."""
    return {**ENVELOPE_KINDS, **FIELD_KINDS[cls]}


def required_fields(cls: type[Event]) -> frozenset[str]:
    """The fields a bot must give (no default)."""
    return frozenset(a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING)


DECIMAL_KINDS = ("money", "stake", "multiplier", "percent")


def fields_of_kind(*kinds: str) -> list[tuple[type[Event], str]]:
    """Every (event class, field name) whose kind is one of ``kinds``."""
    return [
        (cls, name)
        for cls in FIELD_KINDS
        for name, kind in kinds_of(cls).items()
        if kind in kinds
    ]


# -- valid values, per kind ---------------------------------------------------------------------

#: Every code point PostgreSQL text can hold: all planes, minus NUL and lone surrogates.
STORABLE_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def storable_text(min_size: int = 0, max_size: int = 24) -> st.SearchStrategy[str]:
    return st.text(STORABLE_CHARS, min_size=min_size, max_size=max_size)


def _bounded_text(max_chars: int) -> st.SearchStrategy[str]:
    """Short text, or text of exactly the longest allowed length."""
    return st.one_of(
        storable_text(1, 16),
        storable_text(max_chars, max_chars),
        st.sampled_from(["b1", "aviator", "ünïcødé", "🚀 crash", "a" * max_chars]),
    )


def _exact_decimals(max_digits: int = 30, max_exponent: int = 60) -> st.SearchStrategy[Decimal]:
    """Decimals built exactly from digits and an exponent (never rounded by a context)."""
    return st.builds(
        lambda m, e: Decimal(f"{m}E{e}"),
        st.integers(-(10**max_digits), 10**max_digits),
        st.integers(-max_exponent, max_exponent),
    )


_DECIMAL_EDGES = [
    Decimal("0"), Decimal("-0"), Decimal("0.00"), Decimal("-0.01"), Decimal("1E+100"),
    Decimal("-9.99E+100"), Decimal("1E-100"), Decimal("0." + "9" * 100),
    Decimal("123456789012345678901234567890.123456789"),
]

money = st.one_of(
    _exact_decimals(),
    st.sampled_from(_DECIMAL_EDGES),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9),
)
stake = money.map(abs)
multiplier = st.one_of(
    st.sampled_from(
        [Decimal("1.00"), Decimal("1"), Decimal("1.0000001"), MULTIPLIER_CAP,
         Decimal("1000000.00"), Decimal("1E+6"), Decimal("999999.99")]
    ),
    st.decimals(min_value=Decimal("1.00"), max_value=MULTIPLIER_CAP, places=2),
    st.decimals(min_value=Decimal("1"), max_value=Decimal("50"), places=6),
)
percent = st.one_of(
    st.sampled_from([Decimal("100"), Decimal("100.00"), Decimal("0.01"), Decimal("97.3")]),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2),
)
probability = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([0.0, 1.0, -0.0, 5e-324, 0.9999999999999999]),
)
count = st.one_of(st.integers(0, 10**6), st.sampled_from([0, 1, INT64_MAX]), st.integers(0, INT64_MAX))

#: Fixed offsets (some with seconds, as old IANA zones have) and real zones.
_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)
_zones = st.one_of(st.just(UTC), _offsets, st.timezones())
aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_zones
)

finite_floats = st.floats(allow_nan=False, allow_infinity=False)


def _comes_back_as_another_int(value: float) -> bool:
    """Floats JSON spells as digits that jsonb and orjson read back as a different integer."""
    return value.is_integer() and INT64_MAX < value < 2**64


#: Floats a JSON object may hold (crashlog refuses the others, see INVALID).
json_floats = st.one_of(
    finite_floats.filter(lambda v: not _comes_back_as_another_int(v)),
    st.sampled_from([6.107331154662631e16, -1e19, 1e300, 2.0**53, -0.0, 5e-324]),
)
_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MAX, 0, -1]),
    json_floats,
    storable_text(0, 12),
)
json_values = st.recursive(
    _json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(storable_text(0, 8), children, max_size=4),
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(storable_text(0, 10), json_values, max_size=5)

feature_vectors = st.lists(
    st.one_of(finite_floats, st.integers(-(2**53), 2**53)), max_size=24
).map(tuple)

outcomes = st.one_of(
    st.sampled_from(Outcome),
    st.sampled_from(["WIN", "win", "Loss", " skip "]),
)

VALID: dict[str, st.SearchStrategy[Any]] = {
    "identifier": _bounded_text(ID_MAX_CHARS),
    "name": _bounded_text(NAME_MAX_CHARS),
    "text": st.one_of(storable_text(0, 40), st.just("")),
    "money": money,
    "stake": stake,
    "multiplier": multiplier,
    "percent": percent,
    "probability": probability,
    "count": count,
    "datetime": aware_datetimes,
    "uuid": st.uuids(),
    "outcome": outcomes,
    "feature_vector": feature_vectors,
    "json_object": json_objects,
}


# -- valid events -------------------------------------------------------------------------------


def event_kwargs(cls: type[Event]) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for a valid ``cls``: required fields always, optional ones sometimes.

    An optional field is either left out, given as ``None``, or given a value.
    """
    required = required_fields(cls)
    kinds = kinds_of(cls)
    return st.fixed_dictionaries(
        {name: VALID[kinds[name]] for name in kinds if name in required},
        optional={
            name: st.one_of(st.none(), VALID[kinds[name]])
            for name in kinds
            if name not in required
        },
    )


#: One plain valid value per kind: the background against which a single bad value is tried.
PLAIN: dict[str, Any] = {
    "identifier": "b1", "name": "Bot One", "text": "text", "money": Decimal("10.00"),
    "stake": Decimal("1.00"), "multiplier": Decimal("2.00"), "percent": Decimal("97"),
    "probability": 0.5, "count": 1, "datetime": datetime(2024, 1, 1, tzinfo=UTC),
    "uuid": None, "outcome": Outcome.WIN, "feature_vector": (0.5,), "json_object": {"k": 1},
}


def plain_kwargs(cls: type[Event]) -> dict[str, Any]:
    """Valid keyword arguments for ``cls``: its required fields, with plain values."""
    kinds = kinds_of(cls)
    return {name: PLAIN[kinds[name]] for name in sorted(required_fields(cls))}


def events_of(cls: type[Event]) -> st.SearchStrategy[Event]:
    return event_kwargs(cls).map(lambda kwargs: cls(**kwargs))


def valid_events() -> st.SearchStrategy[Event]:
    """Any valid event of the catalogue."""
    return st.one_of([events_of(cls) for cls in FIELD_KINDS])


# -- invalid values -----------------------------------------------------------------------------


@attrs.frozen
class Bad:
    """An invalid value, and what the error must say about it.

    ``where`` is appended to the field's name to give ``InvalidEvent.field``
    (``".key"`` or ``"[2]"`` for a value nested inside the field; ``None`` when
    only the field's name is known to start it, e.g. an offending metadata key).
    ``must_show`` is text the message must contain: by default the start of the
    value's repr.
    """

    value: Any
    where: str | None = ""
    must_show: str = attrs.field()

    @must_show.default
    def _repr_of_value(self) -> str:
        return repr(self.value)[:60]


def _leaf(value: Any, where: str | None, leaf: Any) -> Bad:
    """A bad value nested inside ``value``: the error names and shows ``leaf``."""
    return Bad(value, where, repr(leaf)[:60])


def _containing(char_strategy: st.SearchStrategy[str], max_size: int = 20) -> st.SearchStrategy[str]:
    """Storable text with one bad character inserted somewhere."""
    return st.builds(
        lambda head, bad, tail: head + bad + tail,
        storable_text(0, max_size // 2),
        char_strategy,
        storable_text(0, max_size // 2),
    )


_nul_text = _containing(st.just("\x00"))
_surrogate_text = _containing(st.characters(categories=("Cs",)))
_safe_key = st.text(string.ascii_letters, min_size=1, max_size=8)


def _in_json(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Bad]:
    """A bad leaf placed as a value in an object, or as an item of a list inside it."""
    as_value = st.builds(lambda k, v: _leaf({k: v}, f".{k}", v), _safe_key, leaf)
    in_list = st.builds(
        lambda k, v: _leaf({"ok": 1, k: [1, "x", v]}, f".{k}[2]", v), _safe_key, leaf
    )
    return st.one_of(as_value, in_list)


def _as_json_key(key: st.SearchStrategy[str]) -> st.SearchStrategy[Bad]:
    return key.map(lambda k: _leaf({k: 1}, None, k))


def _bad_vector_item(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Bad]:
    return st.builds(
        lambda head, bad: _leaf([*head, bad], f"[{len(head)}]", bad),
        st.lists(finite_floats, max_size=5),
        item,
    )


def _plain(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Bad]:
    return values.map(Bad)


_nan_inf = [
    Decimal("NaN"), Decimal("-NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity"),
    float("nan"), float("inf"), float("-inf"), "NaN", "Infinity", "-inf",
]
_too_big = st.one_of(
    st.integers(INT64_MAX + 1, 2**200), st.integers(-(2**200), INT64_MIN - 1),
    st.sampled_from([2**63, -(2**63) - 1, 2**64]),
)


def _deeply_nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value  # type: ignore[no-any-return]


_TEXT_KINDS = ("identifier", "name", "text")
_DECIMAL_KINDS = DECIMAL_KINDS

#: mistake -> (kinds of field it applies to, strategy of Bad values).
INVALID: dict[str, tuple[tuple[str, ...], st.SearchStrategy[Bad]]] = {
    "nul-character": (_TEXT_KINDS, _plain(_nul_text)),
    "nul-in-json-value": (("json_object",), _in_json(_nul_text)),
    "nul-in-json-key": (("json_object",), _as_json_key(_nul_text)),
    "lone-surrogate": (_TEXT_KINDS, _plain(_surrogate_text)),
    "surrogate-in-json-value": (("json_object",), _in_json(_surrogate_text)),
    "surrogate-in-json-key": (("json_object",), _as_json_key(_surrogate_text)),
    "not-a-string": (_TEXT_KINDS, _plain(st.sampled_from([1, 2.5, b"bytes", ["a"], True]))),
    "empty-id": (("identifier", "name"), _plain(st.just(""))),
    "over-long-id": (("identifier",), _plain(storable_text(ID_MAX_CHARS + 1, ID_MAX_CHARS + 40))),
    "over-long-name": (("name",), _plain(storable_text(NAME_MAX_CHARS + 1, NAME_MAX_CHARS + 40))),
    "nan-or-infinite": (_DECIMAL_KINDS + ("probability",), _plain(st.sampled_from(_nan_inf))),
    "nan-or-infinite-in-json": (
        ("json_object",),
        _in_json(st.sampled_from([float("nan"), float("inf"), float("-inf"), Decimal("NaN"),
                                  Decimal("-Infinity")])),
    ),
    "not-a-number": (_DECIMAL_KINDS, _plain(st.sampled_from(["2,45", "abc", "", [1], True, object()]))),
    "too-many-decimal-places": (_DECIMAL_KINDS, _plain(st.sampled_from(
        [Decimal("1." + "1" * 101), Decimal("0." + "1" * 20_000), Decimal("2E-101"), "1." + "0" * 200]
    ))),
    "negative-stake": (("stake",), _plain(st.one_of(
        st.decimals(max_value=Decimal("-0.01"), allow_nan=False, allow_infinity=False, places=2),
        st.sampled_from([Decimal("-1E-100"), -1, -0.5, "-10.00"]),
    ))),
    "multiplier-below-1": (("multiplier",), _plain(st.one_of(
        st.decimals(max_value=Decimal("0.99"), allow_nan=False, allow_infinity=False, places=2),
        st.sampled_from([Decimal("0.999999"), Decimal("0"), Decimal("-1"), 0.5]),
    ))),
    "multiplier-above-cap": (("multiplier",), _plain(st.one_of(
        st.decimals(min_value=MULTIPLIER_CAP + Decimal("0.01"), max_value=Decimal("1E+90"),
                    allow_nan=False, allow_infinity=False),
        st.sampled_from([Decimal("1000000.01"), 10**7, "1E+7"]),
    ))),
    "percent-out-of-range": (("percent",), _plain(st.sampled_from(
        [Decimal("0"), Decimal("-1"), Decimal("100.01"), 150]
    ))),
    "confidence-outside-0-1": (("probability",), _plain(st.one_of(
        st.floats(min_value=1.0, exclude_min=True, allow_nan=False, allow_infinity=False),
        st.floats(max_value=0.0, exclude_max=True, allow_nan=False, allow_infinity=False),
        st.sampled_from([2, -1, Decimal("1.0001")]),
    ))),
    "integer-beyond-64-bits": (("count",), _plain(_too_big)),
    "integer-beyond-64-bits-in-json": (("json_object",), _in_json(_too_big)),
    "float-jsonb-reads-back-as-another-int": (("json_object",), _in_json(
        st.floats(min_value=2.0**63, max_value=2.0**64, exclude_max=True)
        .filter(_comes_back_as_another_int)
    )),
    "negative-count": (("count",), _plain(st.integers(max_value=-1))),
    "not-an-integer": (("count",), _plain(st.sampled_from([1.0, "1", Decimal("1"), True]))),
    "naive-datetime": (("datetime",), _plain(st.datetimes())),
    "not-a-datetime": (("datetime",), _plain(st.sampled_from([0, 1.5, b"2024-01-01"]))),
    "not-a-uuid": (("uuid",), _plain(st.sampled_from(["", "not-a-uuid", 42, b"\x00" * 16]))),
    "unknown-outcome": (("outcome",), _plain(st.sampled_from(["WON", "", "draw", 1, None]))),
    "feature-vector-not-a-list": (("feature_vector",), _plain(st.sampled_from(
        ["1,2,3", b"\x01", {"a": 1.0}, 1.0, 7]
    ))),
    "feature-vector-bad-item": (("feature_vector",), _bad_vector_item(st.sampled_from(
        [float("nan"), float("inf"), float("-inf"), "1.0", None, [1.0], True, 10**400]
    ))),
    "feature-vector-too-long": (("feature_vector",), st.just(
        Bad([0.5] * (FEATURE_VECTOR_MAX + 1), "", f"{FEATURE_VECTOR_MAX + 1} numbers")
    )),
    "json-not-an-object": (("json_object",), _plain(st.sampled_from(["{}", [("a", 1)], 3]))),
    "json-not-a-json-value": (("json_object",), _in_json(st.sampled_from(
        [{1, 2}, b"bytes", object, datetime(2024, 1, 1, tzinfo=UTC)]
    ))),
    "json-key-not-a-string": (("json_object",), st.sampled_from(
        [_leaf({1: "a"}, None, 1), _leaf({None: "a"}, None, None), _leaf({("t",): 1}, None, ("t",))]
    )),
    "json-too-deep": (("json_object",), st.just(
        Bad(_deeply_nested(JSON_MAX_DEPTH + 2), None, f"deeper than {JSON_MAX_DEPTH}")
    )),
}


def applicable(mistake: str) -> list[tuple[type[Event], str]]:
    """The (class, field) pairs a mistake can be made in."""
    kinds, _ = INVALID[mistake]
    return fields_of_kind(*kinds)


def with_value(kwargs: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    return {**kwargs, name: value}

