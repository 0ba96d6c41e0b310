"""Rows of the log a projection cannot read (written by SQL, not the SDK): each built-in
records them in crashlog.projection_errors and moves past them, live and in a rebuild;
a stop-mode projection stops at one and says so; nothing else is ever skipped."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from conftest import new_database
from helpers.log import row_of
from helpers.log import until as helpers_until
from strategies import plain_kwargs

import crashlog
from crashlog import health, store
from crashlog.cli.project import lag_table
from crashlog.errors import ProjectionStopped
from crashlog.events import EVENT_TYPES, Event, Outcome, RoundSettled, encode_payload
from crashlog.projections import ALIASES, NAMES, PROJECTIONS, checkpoints, guard, progress, runner
from crashlog.projections.base import IN_SPAN, Projection, Span, Tables
from crashlog.projections.rebuild import rebuild_projections
from crashlog.store import Row

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TABLES = [t for p in PROJECTIONS for t in p.tables]
#: round_outcomes is a view over rounds (migration 016): what rounds skips, it lacks too.
ROUND_READERS = {"rounds", "round_multipliers", "bot_stats"}
#: Malformed rows, and the projections that cannot read them. round_signals reads only
#: rounds that name a round (``game_round_id`` or ``round_number``), which these do not:
#: it has nothing to read in them, so nothing to record.
BAD = [
    ("RoundSettled", "{}", ROUND_READERS),
    ("RoundSettled", '{"stake": "abc"}', ROUND_READERS),
    ("RoundObserved", "[1, 2]", {"round_multipliers"}),
    ("FairnessRecorded", '"not an object"', {"fairness_records"}),
]
FILLER = "TestFiller"  # a type no projection reads: the clean log's stand-in for a bad row

_RAW = """
INSERT INTO crashlog.events (event_id, event_type, schema_version, bot_id, occurred_at, payload)
VALUES ($1, $2, 1, 'b1', $3, $4::text::jsonb)
"""


# This module's bound on waiting for a condition.
until = functools.partial(helpers_until, timeout=60.0, poll=0.05)


def settled(bot: str, n: int, stake: str = "10.00") -> RoundSettled:
    return RoundSettled(
        bot_id=bot, session_id="s1", game="aviator", platform="demo", round_number=n,
        game_round_id=f"r{n}", strategy_name="fixed", stake=Decimal(stake),
        crash_multiplier=Decimal("2.00"), cashout_multiplier=Decimal("1.50"), outcome=Outcome.WIN,
        profit_loss=Decimal(stake) / 2, balance_before=Decimal("1000.00"),
        balance_after=Decimal("1000.00") + Decimal(stake) / 2,
        occurred_at=T0 + timedelta(seconds=n))


def good_chunks() -> list[list[Event]]:
    """Every event type of the catalogue (plain values) and rounds of two bots."""
    catalogue = [cls(**{**plain_kwargs(cls), "bot_id": "b1", "occurred_at": T0})
                 for cls in EVENT_TYPES.values()]
    rounds = [settled(bot, n) for n in range(1, 13) for bot in ("b1", "b2")]
    return [catalogue, rounds[:8], rounds[8:16], rounds[16:]]


async def append(
    conn: asyncpg.Connection, chunks: list[list[Event]], *, bad: bool
) -> dict[uuid.UUID, set[str]]:
    """The good events in chunks, a malformed row after each chunk (``bad``) or a filler
    row in its place, and one malformed row inside a chunk's own transaction. Returns the
    bad rows' event ids and the projections that cannot read each."""
    expected = {}
    for chunk, (event_type, payload, readers) in zip(chunks, BAD, strict=True):
        event_id = uuid.uuid4()
        async with conn.transaction():
            await store.insert_rows_idempotent(conn, [row_of(e) for e in chunk[:-1]])
            await conn.execute(_RAW, event_id, event_type if bad else FILLER, T0, payload)
            await store.insert_rows_idempotent(conn, [row_of(chunk[-1])])
        expected[event_id] = readers
    return expected


@asynccontextmanager
async def database(server_dsn: str) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    async with new_database(server_dsn) as dsn:
        conn = await asyncpg.connect(dsn)
        await store.init_connection(conn)
        try:
            yield dsn, conn
        finally:
            await conn.close()


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every built-in read table, sorted, without transaction ids (each database has its own)."""
    tables = {}
    for table in TABLES:
        rows = [{k: v for k, v in r.items() if not k.endswith("tx_id")}
                for r in await conn.fetch(f"SELECT * FROM crashlog.{table}")]
        tables[table] = sorted(repr(r) for r in rows)
    return tables


async def recorded(conn: asyncpg.Connection) -> dict[uuid.UUID, set[str]]:
    found: dict[uuid.UUID, set[str]] = {}
    for r in await conn.fetch("SELECT projection, event_id FROM crashlog.projection_errors"):
        found.setdefault(r["event_id"], set()).add(r["projection"])
    return found


async def below_the_horizon(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(
        "SELECT coalesce(max(tx_id) < pg_snapshot_xmin(pg_current_snapshot()), true)"
        " FROM crashlog.events"))


async def caught_up(conn: asyncpg.Connection, names=NAMES) -> bool:
    lag = await checkpoints.lag(conn, list(names))
    return all(events == 0 for events, _ in lag.values())


async def test_malformed_rows_are_recorded_and_skipped_live_and_in_a_rebuild(server_dsn, template_dsn):
    async with database(server_dsn) as (clean_dsn, clean), database(server_dsn) as (dsn, conn):
        chunks = good_chunks()
        await append(clean, chunks, bad=False)
        expected = await append(conn, chunks, bad=True)
        await until(lambda: below_the_horizon(clean))  # a rebuild reads only below it
        await rebuild_projections(clean, PROJECTIONS)
        reference = await snapshot(clean)
        assert [t for t in TABLES if not reference[t]] == []

        # Live: small batches, so that bad rows sit in spans among good ones.
        live = runner.Runner(dsn, batch_size=7, poll_interval=0.02)
        live.start()
        try:
            await until(lambda: caught_up(conn))
        finally:
            await live.stop()
        assert await snapshot(conn) == reference
        assert await recorded(conn) == expected
        assert live.skipped_events == sum(len(r) for r in expected.values())
        errors = await conn.fetch("SELECT * FROM crashlog.projection_errors")
        assert {r["sqlstate"] for r in errors if r["projection"] == "rounds"} <= {"23502", "22P02"}
        positions = dict(await conn.fetch("SELECT event_id, position FROM crashlog.events"))
        assert all(r["position"] == positions[r["event_id"]] for r in errors)

        # A rebuild of everything meets them again: same tables, nothing recorded twice.
        await runner.rebuild(dsn, ["all"])
        assert await snapshot(conn) == reference
        assert await recorded(conn) == expected
        assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_errors") == len(errors)

        # doctor fails and names them; project --lag counts them.
        check = await health.projection_errors_check(conn)
        assert not check.ok and f"{len(errors)} events skipped" in check.detail
        assert str(errors[0]["event_id"]) in check.detail or "more" in check.detail
        assert not all(c.ok for c in await health.diagnose(dsn))
        states = await runner.states(conn)
        assert states["rounds"].skipped == 2 and states["fairness_records"].skipped == 1
        assert states["round_signals"].skipped == 0 and states["rounds"].stopped_at is None
        assert lag_table(await progress.lag_listing(conn)).row_count == len(NAMES) + len(ALIASES)


async def test_a_readable_field_is_kept_by_the_projections_that_read_only_it(conn):
    """A settled round with stake "abc" and every other field right: the projections that
    read the stake skip it; those that read only its crash multiplier keep that reading."""
    event = settled("b1", 1)
    bad = {**row_of(event)._asdict(), "payload": encode_payload(event).replace(b'"10.00"', b'"abc"')}
    await store.insert_rows_idempotent(conn, [Row(**bad), row_of(settled("b1", 2))])
    for p in PROJECTIONS:
        await checkpoints.ensure(conn, p)
    while not await caught_up(conn):
        await checkpoints.apply_next_batches(conn, PROJECTIONS, 100)
        await asyncio.sleep(0.01)
    assert (await recorded(conn))[event.event_id] == {"rounds", "bot_stats"}
    assert await conn.fetchval("SELECT count(*) FROM crashlog.round_outcomes") == 1
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 1
    assert await conn.fetchval(
        "SELECT count(*) FROM crashlog.round_multiplier_readings WHERE event_id = $1",
        event.event_id) == 1


# -- a projection that stops -------------------------------------------------------------

_STAKES = f"""
INSERT INTO {{stakes}} (event_id, stake)
SELECT e.event_id, (e.payload->>'stake')::numeric FROM {IN_SPAN} AND e.event_type = 'RoundSettled'
ON CONFLICT DO NOTHING
"""


async def _stakes(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_STAKES.format(stakes=tables["test_stakes"]), *span)


STOPPER = Projection(name="test_stakes", version=1, event_types=("RoundSettled",),
                     tables=("test_stakes",), handler=_stakes, on_error="stop")


async def test_a_stop_mode_projection_stops_at_the_event_and_sync_says_so(dsn, conn):
    await conn.execute("CREATE TABLE crashlog.test_stakes (event_id uuid PRIMARY KEY, stake numeric)")
    before = [settled("b1", n) for n in range(1, 4)]
    await store.insert_rows_idempotent(conn, [row_of(e) for e in before])
    bad_id = uuid.uuid4()
    await conn.execute(_RAW, bad_id, "RoundSettled", T0, '{"stake": "abc"}')
    after = [settled("b1", n) for n in range(4, 6)]
    await store.insert_rows_idempotent(conn, [row_of(e) for e in after])
    bad_position = await conn.fetchval("SELECT position FROM crashlog.events WHERE event_id = $1", bad_id)

    live = runner.Runner(dsn, [*PROJECTIONS, STOPPER], batch_size=1000, poll_interval=0.02)
    live.start()
    try:
        await until(lambda: caught_up(conn))
        await until(lambda: _stopped(conn))
        row = await conn.fetchrow(
            "SELECT * FROM crashlog.projection_checkpoints WHERE name = 'test_stakes'")
        assert row["stopped_event_id"] == bad_id and row["stopped_position"] == bad_position
        assert "22P02" in row["stopped_error"] or "abc" in row["stopped_error"]
        assert row["position"] < bad_position  # its checkpoint stays before the event
        stakes = {r[0] for r in await conn.fetch("SELECT event_id FROM crashlog.test_stakes")}
        assert stakes == {e.event_id for e in before}
        assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_errors "
                                   "WHERE projection = 'test_stakes'") == 0

        with pytest.raises(ProjectionStopped, match="test_stakes") as caught:
            await runner.wait_projected(conn, 5)
        assert caught.value.event_id == bad_id and caught.value.position == bad_position
        async with crashlog.connect(dsn, project=False) as log:
            await log.emit(settled("b2", 9))
            with pytest.raises(ProjectionStopped, match=str(bad_id)):
                await log.sync(timeout=10)
        await until(lambda: caught_up(conn))  # the others stay current ...
        assert await conn.fetchval("SELECT count(*) FROM crashlog.test_stakes") == len(before)
        check = await health.stopped_check(conn)  # ... and it stays stopped, and says so
        assert not check.ok and "test_stakes" in check.detail and str(bad_id) in check.detail
        assert (await runner.states(conn))["test_stakes"].stopped_event_id == bad_id
    finally:
        await live.stop()


async def _stopped(conn: asyncpg.Connection) -> bool:
    return bool(await checkpoints.stopped(conn))


# -- failures that are not the data's ----------------------------------------------------

async def test_a_connection_cut_during_passes_is_retried_and_skips_nothing(dsn, conn):
    await store.insert_rows_idempotent(
        conn, [row_of(settled(f"b{i % 3}", i)) for i in range(1, 400)])
    live = runner.Runner(dsn, batch_size=20, poll_interval=0.02)
    live.start()
    cuts = 0
    try:
        while not await caught_up(conn):
            cuts += await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'crashlog-projections'")
            await asyncio.sleep(0.05)
            assert cuts < 2000, "the runner never caught up"
    finally:
        await live.stop()
    assert cuts > 0
    assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_errors") == 0
    live_tables = await snapshot(conn)
    await until(lambda: below_the_horizon(conn))
    await rebuild_projections(conn, PROJECTIONS)
    assert await snapshot(conn) == live_tables
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 399


async def test_a_failure_that_is_not_the_data_s_rolls_back_that_projection_only(dsn, conn):
    await store.insert_rows_idempotent(conn, [row_of(settled("b1", n)) for n in range(1, 6)])
    calls = []

    async def flaky(c: asyncpg.Connection, tables: Tables, span: Span) -> None:
        await _stakes(c, tables, span)
        calls.append(span)
        if len(calls) == 1:
            raise asyncpg.DeadlockDetectedError("deadlock detected")

    await conn.execute("CREATE TABLE crashlog.test_stakes (event_id uuid PRIMARY KEY, stake numeric)")
    p = Projection(name="test_stakes", version=1, event_types=("RoundSettled",),
                   tables=("test_stakes",), handler=flaky)
    for q in [*PROJECTIONS, p]:
        await checkpoints.ensure(conn, q)
    done = await checkpoints.apply_next_batches(conn, [*PROJECTIONS, p], 100)
    assert isinstance(done["test_stakes"].failure, asyncpg.DeadlockDetectedError)
    assert done["test_stakes"].passed == 0 and done["rounds"].passed == 5
    assert await conn.fetchval("SELECT count(*) FROM crashlog.test_stakes") == 0  # rolled back
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 5
    done = await checkpoints.apply_next_batches(conn, [p], 100)  # retried: nothing skipped
    assert done["test_stakes"].passed == 5 and not done["test_stakes"].skipped
    assert await conn.fetchval("SELECT count(*) FROM crashlog.test_stakes") == 5


# -- the savepoints per transaction ------------------------------------------------------

async def test_many_bad_rows_keep_savepoints_under_the_bound(conn):
    assert guard.MAX_SAVEPOINTS <= 64 // 2  # well under the 64 PostgreSQL caches
    bad = [uuid.uuid4() for _ in range(40)]
    async with conn.transaction():  # one span of 40 bad rows among good ones
        for i, event_id in enumerate(bad):
            await store.insert_rows_idempotent(conn, [row_of(settled("b1", i + 1))])
            await conn.execute(_RAW, event_id, "RoundSettled", T0, "{}")
    for p in PROJECTIONS:
        await checkpoints.ensure(conn, p)
    version = int(await conn.fetchval("SHOW server_version_num"))
    passes = 0
    while not await caught_up(conn):
        budget = guard.Budget()
        async with conn.transaction():
            await checkpoints.apply_next_batches(conn, PROJECTIONS, 5000, budget)
            if version >= 160000:  # the server's own count of this backend's subtransactions
                count, overflowed = await conn.fetchrow(_SUBXACTS)
                assert count <= guard.MAX_SAVEPOINTS + 1 and not overflowed  # +1: the pass's own
        assert budget.kept <= guard.MAX_SAVEPOINTS
        passes += 1 if budget.kept else 0
        await asyncio.sleep(0 if budget.kept else 0.05)  # nothing below the horizon yet
        assert passes < 100
    assert passes > 1  # the bound did cut the work into several transactions
    assert await recorded(conn) == {event_id: ROUND_READERS for event_id in bad}
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 40


_SUBXACTS = """
SELECT s.subxact_count, s.subxact_overflowed
FROM pg_stat_get_backend_idset() AS b(id), pg_stat_get_backend_subxact(b.id) AS s
WHERE pg_stat_get_backend_pid(b.id) = pg_backend_pid()
"""
