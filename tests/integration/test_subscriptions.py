"""Subscriptions (real PostgreSQL): users' events round-trip, batches arrive in commit-safe
order, at least once, one consumer per name, from where ``start`` says."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal

import asyncpg
import pytest

import crashlog
from crashlog import subscriptions
from crashlog.errors import SubscriptionError
from crashlog.events import (
    EVENT_TYPES,
    Event,
    RawEvent,
    RoundObserved,
    SessionEnded,
    codec,
    event,
    upcaster,
)
from crashlog.events import fields as f
from crashlog.projections.checkpoints import Position
from crashlog.subscriptions import Subscription, SubscriptionBatch

_RAW_INSERT = """
INSERT INTO crashlog.events (event_id, event_type, schema_version, bot_id, occurred_at, payload)
VALUES ($1, $2, $3, $4, now(), $5::text::jsonb)
"""


@pytest.fixture
def registry() -> Iterator[None]:
    """Event types and upcasters declared by a test are forgotten after it."""
    types, upcasters = dict(EVENT_TYPES), dict(codec.UPCASTERS)
    yield
    EVENT_TYPES.clear()
    EVENT_TYPES.update(types)
    codec.UPCASTERS.clear()
    codec.UPCASTERS.update(upcasters)


def observed(bot: str, n: int) -> RoundObserved:
    return RoundObserved(bot_id=bot, game="aviator", platform="demo",
                         crash_multiplier=Decimal("1.50"), round_number=n)


async def emit_rounds(log: crashlog.Logger, bots: list[str], rounds: int) -> list[uuid.UUID]:
    """Emit and commit ``rounds`` rounds of each bot; their ids in the log's reading order
    (the writer keeps each bot's order, not the order across bots)."""
    ids = [await log.emit(observed(bot, n)) for n in range(rounds) for bot in bots]
    await log.flush()
    async with log.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_id FROM crashlog.events WHERE event_id = ANY($1::uuid[]) "
            "ORDER BY tx_id, position", ids)
    return [r["event_id"] for r in rows]


async def below_horizon(log: crashlog.Logger, ids: list[uuid.UUID]) -> None:
    """Wait until ``ids`` are below the reading horizon (another test's open transaction on a
    shared server holds it back for a moment)."""
    async with log.subscribe(None) as sub:
        seen: set[uuid.UUID] = set()
        async with asyncio.timeout(60):
            async for batch in sub:
                seen.update(e.event_id for e in batch.events)
                if seen >= set(ids):
                    return


async def take(sub: Subscription, count: int, *, ack: bool = True) -> list[SubscriptionBatch]:
    """Batches of ``sub`` until they hold ``count`` events (acknowledged unless ``ack=False``)."""
    got: list[SubscriptionBatch] = []
    async with asyncio.timeout(60):
        async for batch in sub:
            got.append(batch)
            if ack:
                await batch.ack()
            if sum(len(b) for b in got) >= count:
                break
    return got


def ids_of(batches: list[SubscriptionBatch]) -> list[uuid.UUID]:
    return [e.event_id for b in batches for e in b.events]


# -- users' own events ------------------------------------------------------------------------


async def test_a_user_event_round_trips_through_the_database_and_an_upcaster(
    log: crashlog.Logger, conn: asyncpg.Connection, registry: None
) -> None:
    @event
    class BankrollToppedUp(Event):
        amount: Decimal = f.field(f.money, required=True)
        note: str | None = f.field(f.text)

    first = BankrollToppedUp(bot_id="b1", amount=Decimal("12.50"), note="weekly")
    await log.emit(first)
    await log.flush()
    async with log.subscribe(None, events=[BankrollToppedUp]) as sub:
        (batch,) = await take(sub, 1)
    assert batch.events == [first]

    # Version 2 (in the next release: this process forgets version 1's class) turns the note
    # into a required reason; version 1 rows are upcast on the way out.
    del EVENT_TYPES["BankrollToppedUp"]

    @event(name="BankrollToppedUp")
    class BankrollToppedUpV2(Event):
        schema_version = 2
        amount: Decimal = f.field(f.money, required=True)
        reason: str = f.field(f.identifier, required=True)

    @upcaster(BankrollToppedUpV2, 1)
    def _v1_to_v2(payload: dict[str, object]) -> dict[str, object]:
        note = payload.pop("note", None)
        return {**payload, "reason": note or "unknown"}

    second = BankrollToppedUpV2(bot_id="b1", amount="3", reason="bonus")
    await log.emit(second)
    await log.flush()
    versions = await conn.fetch("SELECT schema_version FROM crashlog.events ORDER BY position")
    assert [r["schema_version"] for r in versions] == [1, 2]
    async with log.subscribe(None, events=["BankrollToppedUp"]) as sub:
        got = [e for b in await take(sub, 2) for e in b.events]
    assert got == [
        BankrollToppedUpV2(bot_id="b1", event_id=first.event_id, occurred_at=first.occurred_at,
                           amount=Decimal("12.50"), reason="weekly"),
        second,
    ]


async def test_an_event_of_a_type_with_no_class_arrives_raw(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    event_id = uuid.uuid4()
    await conn.execute(_RAW_INSERT, event_id, "SomeoneElsesEvent", 3, "b9", '{"x": "1.5", "n": 2}')
    async with log.subscribe(None) as sub:
        (batch,) = await take(sub, 1)
    (raw,) = batch.events
    assert isinstance(raw, RawEvent)
    assert (raw.event_type, raw.schema_version, raw.bot_id, raw.event_id, raw.payload) == (
        "SomeoneElsesEvent", 3, "b9", event_id, {"x": "1.5", "n": 2})


# -- order and delivery -----------------------------------------------------------------------


async def test_a_late_commit_is_delivered_once_in_commit_safe_order(
    log: crashlog.Logger, dsn: str
) -> None:
    late = await asyncpg.connect(dsn)
    try:
        before = await emit_rounds(log, ["a"], 1)
        transaction = late.transaction()
        await transaction.start()
        late_id = uuid.uuid4()
        await late.execute(_RAW_INSERT, late_id, "RoundObserved", 1, "late",
                           '{"game": "aviator", "platform": "demo", "crash_multiplier": "2.00"}')
        during = await emit_rounds(log, ["b"], 3)  # committed while the late one is open
        async with log.subscribe("late-watch") as sub:
            seen = ids_of(await take(sub, 1))
            assert seen == before  # the open transaction holds the rest back
            await transaction.commit()
            seen += ids_of(await take(sub, 4))
        assert seen == [*before, late_id, *during]
        async with log.subscribe("late-watch") as sub:  # resumes after all five: nothing new
            after = await emit_rounds(log, ["c"], 1)
            assert ids_of(await take(sub, 1)) == after
    finally:
        await late.close()


async def test_leaving_the_loop_acknowledges_nothing_and_asking_for_more_does(
    log: crashlog.Logger,
) -> None:
    ids = await emit_rounds(log, ["a", "b"], 5)  # 10 events
    await below_horizon(log, ids)  # so that the batches hold 4, 4 and 2
    async with log.subscribe("acks", batch_size=4) as sub:
        async for batch in sub:
            first = [e.event_id for e in batch.events]
            break  # not acknowledged
    assert first == ids[:4]
    async with log.subscribe("acks", batch_size=4) as sub:
        got = await take(sub, 8, ack=False)  # the first batch is acked by asking for the second
    assert ids_of(got) == ids[:8]
    async with log.subscribe("acks", batch_size=4) as sub:
        again = await take(sub, 4)  # the second batch was never acknowledged
    assert ids_of(again) == ids[4:8]


async def test_an_async_for_alone_opens_and_releases_the_name(log: crashlog.Logger) -> None:
    ids = await emit_rounds(log, ["a"], 3)
    got = await take(log.subscribe("alone"), 3)
    assert ids_of(got) == ids
    await asyncio.sleep(0)  # the loop finalises the abandoned iterator, releasing the name
    async with asyncio.timeout(30), log.subscribe("alone") as sub:  # not held any more
        more = await emit_rounds(log, ["a"], 1)
        assert ids_of(await take(sub, 1)) == more


async def test_events_filters_by_type_and_the_lag_counts_only_those(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    await emit_rounds(log, ["a"], 2)
    ended = await log.emit(SessionEnded(bot_id="a", session_id="s1"))
    await log.flush()
    async with log.subscribe("ends", events=[SessionEnded]) as sub:
        batches = await take(sub, 1)
        assert ids_of(batches) == [ended]
        (state,) = await subscriptions.subscriptions(conn)
        assert (state.name, state.event_types, state.lag_events) == ("ends", ("SessionEnded",), 0)
        assert state.consumer_pid is not None and state.events_delivered == 1
    await log.emit(SessionEnded(bot_id="a", session_id="s2"))
    await emit_rounds(log, ["a"], 2)
    (state,) = await subscriptions.subscriptions(conn)
    assert (state.lag_events, state.consumer_pid) == (1, None)


# -- where a subscription starts ---------------------------------------------------------------


async def test_start_end_and_position_apply_only_to_a_name_never_seen(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    old = await emit_rounds(log, ["a"], 4)
    await below_horizon(log, old)  # so that "end" is after them
    third = await conn.fetchval("SELECT position FROM crashlog.events WHERE event_id = $1", old[2])
    async with log.subscribe("from-end", start="end") as at_end, \
            log.subscribe("from-third", start=third) as after_third:
        new = await emit_rounds(log, ["a"], 2)
        assert ids_of(await take(at_end, 2)) == new
        from_third = await take(after_third, 3)
        assert ids_of(from_third) == [old[3], *new]
    end = from_third[-1].end
    assert isinstance(end, Position)
    async with log.subscribe(None, start=Position(*end)) as tail:
        newest = await emit_rounds(log, ["a"], 1)
        assert ids_of(await take(tail, 1)) == newest
    # A known name resumes from its checkpoint whatever start says.
    async with log.subscribe("from-end", start="beginning") as again:
        assert ids_of(await take(again, 1)) == newest


async def test_bad_arguments_are_refused_naming_them(log: crashlog.Logger) -> None:
    for bad, word in ((dict(name=""), "name"), (dict(name="x", events=[42]), "events entry 42"),
                      (dict(name="x", start="middle"), "start='middle'"),
                      (dict(name="x", start=-1), "start=-1")):
        with pytest.raises(SubscriptionError, match=word):
            log.subscribe(**bad)  # type: ignore[arg-type]
    with pytest.raises(SubscriptionError, match="no event has that position"):
        async with log.subscribe("nowhere", start=10**9):
            pass


# -- one consumer per name --------------------------------------------------------------------


async def test_a_second_consumer_waits_and_takes_over_where_the_first_acknowledged(
    log: crashlog.Logger,
) -> None:
    ids = await emit_rounds(log, ["a", "b"], 3)
    first = log.subscribe("one-at-a-time", batch_size=2)
    await first.open()
    await take(first, 2)
    second = log.subscribe("one-at-a-time", batch_size=2)
    opening = asyncio.create_task(second.open())
    await asyncio.sleep(0.5)
    assert not opening.done()  # waiting for the name while the first runs
    await first.close()
    async with asyncio.timeout(30):
        await opening
    try:
        assert ids_of(await take(second, 4)) == ids[2:]
    finally:
        await second.close()


async def test_drop_removes_a_name_unless_its_consumer_runs(
    log: crashlog.Logger, conn: asyncpg.Connection
) -> None:
    ids = await emit_rounds(log, ["a"], 2)
    async with log.subscribe("gone") as sub:
        await take(sub, 2)
        with pytest.raises(SubscriptionError, match="'gone' has a consumer running"):
            await subscriptions.drop(conn, "gone")
    await subscriptions.drop(conn, "gone")
    assert await subscriptions.subscriptions(conn) == []
    with pytest.raises(SubscriptionError, match="no subscription named 'gone'"):
        await subscriptions.drop(conn, "gone")
    async with log.subscribe("gone") as sub:  # a new name again: from the beginning
        assert ids_of(await take(sub, 2)) == ids


# -- the synchronous logger ---------------------------------------------------------------------


async def test_the_sync_logger_subscribes_as_a_plain_iterator(dsn: str) -> None:
    from crashlog.sync import connect

    def work() -> tuple[list[uuid.UUID], list[uuid.UUID], list[uuid.UUID]]:
        with connect(dsn, project=False, flush_interval=0.01) as log:
            ids = [log.emit(observed("s", n)) for n in range(5)]
            log.flush()
            with log.subscribe("sync-sub", batch_size=3) as sub:
                for batch in sub:
                    first = [e.event_id for e in batch.events]
                    batch.ack()
                    break
            rest: list[uuid.UUID] = []
            for batch in log.subscribe("sync-sub"):  # a plain loop, no with
                rest += [e.event_id for e in batch.events]
                break  # not acknowledged: delivered again below
            again: list[uuid.UUID] = []
            with log.subscribe("sync-sub") as sub:
                for batch in sub:
                    again += [e.event_id for e in batch.events]
                    break
            return ids, first + rest, again

    ids, got, again = await asyncio.to_thread(work)
    assert got == ids
    assert again == ids[3:]

