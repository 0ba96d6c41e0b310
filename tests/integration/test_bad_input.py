"""Bad input at scale: thousands of invalid events among valid ones, through a live logger.

Every invalid event must raise ``InvalidEvent`` naming its field, at construction or at
``emit``; the logger keeps running; every valid event is committed and nothing is
refused by the server or left unprojected. The hypothesis run executes in a worker
thread and hands each valid event to the test's event loop, where the logger lives.

``CRASHLOG_BAD_INPUTS`` sets how many invalid events the slow run makes (default 1,000, to
keep CI short; the issue's figure is ``CRASHLOG_BAD_INPUTS=10000``, a few minutes here).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import INVALID, applicable, event_kwargs, kinds_of, required_fields, valid_events

from crashlog import InvalidEvent
from crashlog.events import BotErrorRaised, RoundSettled, SignalRaised
from crashlog.events.base import Event
from crashlog.events.fields import TEXT_MAX_CHARS

#: A plain valid value of each kind, to build an event around one bad field cheaply.
SIMPLE: dict[str, Any] = {
    "identifier": "b1", "name": "n", "text": "t", "money": Decimal("1.50"), "stake": 1,
    "multiplier": Decimal("2.00"), "percent": 97, "probability": 0.5, "count": 1,
    "datetime": datetime(2026, 1, 1, tzinfo=UTC), "uuid": None, "outcome": "WIN",
    "feature_vector": (0.5,), "json_object": {},
}


def plain_kwargs(cls: type[Event]) -> dict[str, Any]:
    kinds = kinds_of(cls)
    return {name: SIMPLE[kinds[name]] for name in required_fields(cls)}

BAD_INPUTS = int(os.environ.get("CRASHLOG_BAD_INPUTS", "1000"))


@attrs.frozen
class Invalid:
    cls: type[Event]
    kwargs: dict[str, Any]
    field: str  # what InvalidEvent.field must be ...
    exact: bool  # ... exactly, or only start with


@st.composite
def catalogue_mistakes(draw: st.DrawFn) -> Invalid:
    """One mistake of the shared catalogue (tests/strategies.py) in one field of one event."""
    mistake = draw(st.sampled_from(sorted(INVALID)))
    cls, name = draw(st.sampled_from(applicable(mistake)))
    bad = draw(INVALID[mistake][1])
    # Mostly around a plain event (cheap to draw); sometimes around a fully random one.
    base = draw(st.one_of(st.just(None), st.just(None), st.just(None), event_kwargs(cls)))
    kwargs = {**(plain_kwargs(cls) if base is None else base), name: bad.value}
    return Invalid(cls, kwargs, name if bad.where is None else name + bad.where, bad.where is not None)


_HUGE_TEXT = "x" * (TEXT_MAX_CHARS + 1)
_BIG_METADATA = {f"k{i}": "y" * 1000 for i in range(300)}  # valid piece by piece, too big as a whole


@st.composite
def huge_values(draw: st.DrawFn) -> Invalid:
    """Huge strings, huge payloads and garbage nested deep in metadata."""
    choice = draw(st.integers(0, 4))
    base = dict(bot_id="b", game="aviator", platform="demo", stake=1, crash_multiplier=2,
                outcome="WIN", profit_loss=1)
    if choice == 0:
        return Invalid(BotErrorRaised, dict(bot_id="b", error_type="E", message=_HUGE_TEXT),
                       "message", True)
    if choice == 1:
        return Invalid(RoundSettled, {**base, "error": _HUGE_TEXT}, "error", True)
    if choice == 2:  # refused at emit, when the payload is encoded
        return Invalid(RoundSettled, {**base, "metadata": _BIG_METADATA}, "payload", True)
    if choice == 3:
        garbage = draw(st.sampled_from([float("nan"), "\x00", "\ud800", 2**70, object(), {1: 2}]))
        depth = draw(st.integers(1, 6))
        nested: Any = {"a": [1, garbage]}
        for _ in range(depth):
            nested = {"n": nested}
        return Invalid(RoundSettled, {**base, "metadata": nested}, "metadata", False)
    return Invalid(SignalRaised, dict(bot_id="b", game="g", platform="p", signal_type="t",
                                      feature_vector=[0.1] * 20_000), "feature_vector", True)


#: About one case in eight is a valid event, one in eight a huge value, the rest catalogue mistakes.
cases = st.integers(0, 7).flatmap(
    lambda i: valid_events() if i == 0 else huge_values() if i == 1 else catalogue_mistakes()
)


@attrs.define
class Tally:
    invalid: int = 0
    valid: list[UUID] = attrs.Factory(list)
    wrong: list[str] = attrs.Factory(list)


def check_case(case: Invalid | Event, emit: Callable[[Event], UUID], tally: Tally) -> None:
    if isinstance(case, Event):
        tally.valid.append(emit(case))
        return
    try:
        emit(case.cls(**case.kwargs))
    except InvalidEvent as error:
        tally.invalid += 1
        named = error.field == case.field if case.exact else error.field.startswith(case.field)
        if not named:
            tally.wrong.append(f"{case.cls.__name__}: expected field {case.field!r}, got {error}")
    else:
        tally.wrong.append(f"{case.cls.__name__} accepted {case.field}: {case.kwargs!r:.200}")


def run_hypothesis(emit: Callable[[Event], UUID], tally: Tally, target: int, per_run: int) -> None:
    @settings(max_examples=per_run, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(cases, min_size=1, max_size=30))
    def examples(batch: list[Invalid | Event]) -> None:
        for case in batch:
            check_case(case, emit, tally)

    while tally.invalid < target:
        examples()


async def bad_input_run(log, conn, target: int, per_run: int) -> Tally:
    loop = asyncio.get_running_loop()

    def emit(event: Event) -> UUID:  # called in the hypothesis thread, runs on the logger's loop
        return asyncio.run_coroutine_threadsafe(log.emit(event), loop).result()

    tally = Tally()
    await asyncio.to_thread(run_hypothesis, emit, tally, target, per_run)
    await log.flush(timeout=120)
    assert tally.wrong == [], tally.wrong[:10]
    assert tally.invalid >= target
    stored = await conn.fetchval(
        "SELECT count(*) FROM crashlog.events WHERE event_id = ANY($1::uuid[])", tally.valid
    )
    assert stored == len(set(tally.valid))
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rejected_events") == 0
    metrics = log.metrics()
    assert metrics.rejected == 0
    await log.sync(timeout=120)  # nothing that passed emit fails in a projection
    print(f"\nBAD INPUT: invalid={tally.invalid} (each refused naming its field) "
          f"valid={len(tally.valid)} (distinct ids {len(set(tally.valid))}) committed={stored} "
          f"rejected_by_server={metrics.rejected}")
    return tally


async def test_bad_input_interleaved_with_good_a_quick_run(log, conn):
    await bad_input_run(log, conn, target=150, per_run=10)


@pytest.mark.slow
async def test_thousands_of_invalid_events_interleaved_with_valid_ones(log, conn):
    await bad_input_run(log, conn, target=BAD_INPUTS, per_run=max(10, BAD_INPUTS // 15))
