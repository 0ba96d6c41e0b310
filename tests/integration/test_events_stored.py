"""``crashlog.events`` through the database: every event that passes construction is stored and
read back equal (decimals exact in SQL too); an oversized payload is refused at emit and the
logger keeps going. (The codec and the refusals alone: tests/unit/test_events.py.)"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from helpers.events import SCALE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import DECIMAL_KINDS, fields_of_kind, valid_events

import crashlog
from crashlog.events import BotErrorRaised, Event, decode_event, uuid7

_FETCH = """
SELECT event_type, schema_version, bot_id, event_id, occurred_at, session_id, payload
FROM crashlog.events WHERE event_id = ANY($1::uuid[])
"""


@settings(
    max_examples=25 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
@given(batch=st.lists(valid_events(), min_size=1, max_size=60))
async def test_every_event_accepted_by_construction_is_stored_and_read_back_equal(
    log: crashlog.Logger, conn: Any, batch: list[Event]
) -> None:
    # Fresh ids: examples share one database, and hypothesis may repeat an id across them.
    batch = [attrs.evolve(event, event_id=uuid7()) for event in batch]
    ids = [await log.emit(event) for event in batch]
    await log.flush()
    rows = await conn.fetch(_FETCH, ids)
    stored = [decode_event(r["event_type"], r["schema_version"], bot_id=r["bot_id"],
                           event_id=r["event_id"], occurred_at=r["occurred_at"],
                           session_id=r["session_id"], payload=r["payload"]) for r in rows]
    # Bots may be written through different lanes: the order that holds is per bot (test_writer).
    assert {event.event_id: event for event in stored} == {event.event_id: event for event in batch}
    assert len(stored) == len(batch)
    assert log.metrics().rejected == 0
    # SQL reads the decimals back exactly as numeric, as the projections do.
    decimal_fields = sorted({name for cls, name in fields_of_kind(*DECIMAL_KINDS)})
    casts = await conn.fetch(_CAST_DECIMALS, ids, decimal_fields)
    for row in casts:
        event = next(e for e in batch if e.event_id == row["event_id"])
        assert row["number"] == getattr(event, row["key"])


_CAST_DECIMALS = """
SELECT e.event_id, kv.key, kv.value::numeric AS number
FROM crashlog.events e, jsonb_each_text(e.payload) kv
WHERE e.event_id = ANY($1::uuid[]) AND kv.key = ANY($2::text[])
"""


async def test_emit_refuses_an_oversized_payload_and_keeps_going(log: crashlog.Logger, conn: Any) -> None:
    huge = BotErrorRaised(bot_id="b", error_type="E", message="€" * 90_000)  # 270 kB of UTF-8
    with pytest.raises(crashlog.InvalidEvent) as info:
        await log.emit(huge)
    assert info.value.field == "payload" and "bytes" in str(info.value)
    kept = await log.emit(BotErrorRaised(bot_id="b", error_type="E", message="fine"))
    await log.flush()
    assert await conn.fetchval("SELECT array_agg(event_id) FROM crashlog.events") == [kept]


async def test_max_payload_bytes_is_a_setting(dsn: str) -> None:
    async with crashlog.connect(dsn, max_payload_bytes=100) as log:
        with pytest.raises(crashlog.InvalidEvent, match="100 bytes"):
            await log.emit(BotErrorRaised(bot_id="b", error_type="E", message="x" * 200))
        await log.emit(BotErrorRaised(bot_id="b", error_type="E", message="x"))
        await log.flush()
        assert log.metrics().committed == 1
