"""Users' projections (``@projection``) against a real PostgreSQL: the same guarantees as a
built-in's — any batching, re-deliveries, late commits, rebuilds, failures, two runners."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from decimal import Decimal

import asyncpg
import pytest
from conftest import new_database
from helpers.log import connect, row_of
from helpers.log import until as helpers_until
from helpers.user_projections import refusing, rounds_per_bot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crashlog
from crashlog.errors import InvalidProjection, ProjectionStopped
from crashlog.events import Outcome, RoundSettled
from crashlog.projections import PROJECTIONS, registry
from crashlog.projections.runner import Runner, rebuild_with_keeper, wait_projected

_INSERT = """
INSERT INTO crashlog.events
    (event_id, event_type, schema_version, bot_id, session_id, occurred_at, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
"""


# This module's bound on waiting for a condition.
until = functools.partial(helpers_until, timeout=20.0, poll=0.02)


def settled(bot: str, n: int, stake: str = "10.00") -> RoundSettled:
    return RoundSettled(
        bot_id=bot, session_id="s1", game="aviator", platform="demo", round_number=n,
        game_round_id=f"r{n}", strategy_name="fixed", stake=Decimal(stake),
        crash_multiplier=Decimal("2.00"), cashout_multiplier=Decimal("1.50"), outcome=Outcome.WIN,
        profit_loss=Decimal(stake) / 2, balance_before=Decimal("1000.00"),
        balance_after=Decimal("1000.00") + Decimal(stake) / 2)


async def per_bot(conn: asyncpg.Connection, table: str = "bot_rounds") -> dict[str, int]:
    return {r[0]: r[1] for r in await conn.fetch(f"SELECT bot_id, rounds FROM crashlog.{table}")}


async def builtin_per_bot(conn: asyncpg.Connection) -> dict[str, int]:
    return {r[0]: r[1] for r in await conn.fetch(
        "SELECT bot_id, count(*) FROM crashlog.rounds GROUP BY bot_id")}


async def checkpoint(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM crashlog.projection_checkpoints WHERE name = $1", name)


# -- the same as a built-in, whatever the batching ---------------------------------------------

@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    log=st.lists(st.tuples(st.sampled_from(["b0", "b1", "b2"]), st.integers(0, 30)),
                 min_size=1, max_size=40),
    data=st.data(),
)
async def test_a_user_projection_equals_the_builtin_and_the_reference(server_dsn, template_dsn, log, data):
    events = {key: settled(*key) for key in dict.fromkeys(log)}
    sent = [events[key] for key in log]  # a key drawn twice is the same event re-delivered
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(sent)), max_size=5))))
    chunks = [sent[a:b] for a, b in zip([0, *cuts], [*cuts, len(sent)], strict=True)]
    batch_size = data.draw(st.integers(1, 15))
    p = rounds_per_bot()
    async with new_database(server_dsn) as dsn:
        conn = await connect(dsn)
        try:
            runner = Runner(dsn, [*PROJECTIONS, p], batch_size=batch_size, poll_interval=0.02)
            runner.start()
            for chunk in chunks:  # committed in several transactions, while the runner applies
                async with conn.transaction():
                    for event in chunk:
                        await conn.execute(_INSERT, *row_of(event))
            await wait_projected(conn, 60, also=["bot_rounds"])
            await runner.stop()
            reference = Counter(bot for bot, _ in dict.fromkeys(log))
            incremental = await per_bot(conn)
            assert incremental == dict(reference) == await builtin_per_bot(conn)
            await rebuild_with_keeper(dsn, [p], connections=1)
            assert await per_bot(conn) == incremental
        finally:
            await conn.close()


async def test_a_late_commit_is_applied_once(dsn, conn):
    p = rounds_per_bot()
    runner = Runner(dsn, [*PROJECTIONS, p], poll_interval=0.02)
    runner.start()
    holder = await connect(dsn)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(_INSERT, *row_of(settled("late", 0)))  # its xid and position now
        for n in range(1, 4):
            await conn.execute(_INSERT, *row_of(settled("b1", n)))
        await asyncio.sleep(0.3)
        assert await per_bot(conn) == {}  # nothing after an open transaction is applied
        await tx.commit()
    finally:
        await holder.close()
    await wait_projected(conn, 30, also=["bot_rounds"])
    await runner.stop()
    assert await per_bot(conn) == {"late": 1, "b1": 3}
    assert (await checkpoint(conn, "bot_rounds"))["events_applied"] == 4


# -- failures ----------------------------------------------------------------------------------

async def test_a_failing_user_projection_leaves_the_others_current(dsn, conn):
    from crashlog.projections.user import projection

    @projection("broken", version=1, events=[RoundSettled], tables={"broken": "n int"})
    async def broken(batch):
        await batch.conn.execute(f"INSERT INTO {batch.table('broken')} VALUES (1)")
        raise RuntimeError("a bug in the handler")

    runner = Runner(dsn, [*PROJECTIONS, rounds_per_bot(), broken], poll_interval=0.02)
    runner.start()
    for n in range(20):
        await conn.execute(_INSERT, *row_of(settled(f"b{n % 2}", n)))
    await until(lambda: _done(conn))
    await until(lambda: _true(runner.failed_attempts >= 2))  # retried, never skipped
    await runner.stop()
    assert await per_bot(conn) == {"b0": 10, "b1": 10} == await builtin_per_bot(conn)
    assert await conn.fetchval("SELECT count(*) FROM crashlog.broken") == 0  # its work rolled back
    assert (await checkpoint(conn, "broken"))["position"] == 0
    assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_errors") == 0


async def _done(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 20 and (
        await per_bot(conn)) == {"b0": 10, "b1": 10}


async def _true(value: bool) -> bool:
    return value


async def test_skip_records_exactly_the_failing_event(dsn, conn):
    p = refusing("stakes", "skip", "13")
    events = [settled("b1", n, "13.00" if n == 7 else "10.00") for n in range(15)]
    runner = Runner(dsn, [*PROJECTIONS, p], poll_interval=0.02)
    runner.start()
    for event in events:
        await conn.execute(_INSERT, *row_of(event))
    await wait_projected(conn, 30, also=["stakes"])
    await runner.stop()
    errors = await conn.fetch("SELECT projection, event_id, sqlstate FROM crashlog.projection_errors")
    assert [tuple(r) for r in errors] == [("stakes", events[7].event_id, "23514")]
    got = {r[0] for r in await conn.fetch("SELECT event_id FROM crashlog.stakes")}
    assert got == {e.event_id for i, e in enumerate(events) if i != 7}


async def test_stop_keeps_its_state_and_sync_names_it(dsn, conn):
    p = refusing("stakes_stop", "stop", "13")
    events = [settled("b1", n, "13.00" if n == 4 else "10.00") for n in range(8)]
    async with crashlog.connect(dsn, projections=[p], flush_interval=0.01) as log:
        for event in events:
            await log.emit(event)
        with pytest.raises(ProjectionStopped) as stopped:
            await log.sync(timeout=30)
    assert stopped.value.name == "stakes_stop" and stopped.value.event_id == events[4].event_id
    row = await checkpoint(conn, "stakes_stop")
    assert row["stopped_event_id"] == events[4].event_id and "stakes_stop" in str(stopped.value)
    got = {r[0] for r in await conn.fetch("SELECT event_id FROM crashlog.stakes_stop")}
    assert got == {e.event_id for e in events[:4]}


# -- versions, runners, registration -----------------------------------------------------------

async def test_a_version_bump_rebuilds_over_the_whole_history(dsn, conn):
    async with crashlog.connect(dsn, projections=[rounds_per_bot(1)], flush_interval=0.01) as log:
        for n in range(30):
            await log.emit(settled(f"b{n % 3}", n))
        await log.sync(timeout=30)
        # A reader sees its table like a built-in's.
        assert "bot_rounds" in await log.reader.tables()
        assert await log.reader.count("bot_rounds") == 3
    await conn.execute("DELETE FROM crashlog.bot_rounds")  # what the new version must not keep
    v2 = rounds_per_bot(2, extra_column=True)
    async with crashlog.connect(dsn, projections=[v2], flush_interval=0.01) as log:
        await log.emit(settled("b9", 99))
        await log.sync(timeout=60)
    assert await per_bot(conn) == {"b0": 10, "b1": 10, "b2": 10, "b9": 1}
    columns = [r[0] for r in await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'crashlog.bot_rounds'::regclass"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]
    assert columns == ["bot_id", "rounds", "note"]
    row = await checkpoint(conn, "bot_rounds")
    assert row["version"] == 2 and row["declaration"] == v2.declaration.checksum()
    indexes = {r[0] for r in await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'crashlog' AND tablename = 'bot_rounds'")}
    assert not any("__rebuild" in name for name in indexes) and len(indexes) == 2


async def test_two_runners_apply_each_event_once(dsn, conn):
    first = Runner(dsn, [*PROJECTIONS, rounds_per_bot()], poll_interval=0.02, standby_interval=0.1)
    second = Runner(dsn, [*PROJECTIONS, rounds_per_bot()], poll_interval=0.02, standby_interval=0.1)
    first.start()
    second.start()
    for n in range(200):
        await conn.execute(_INSERT, *row_of(settled(f"b{n % 4}", n)))
    await wait_projected(conn, 30, also=["bot_rounds"])
    first.abort()
    for n in range(200, 300):
        await conn.execute(_INSERT, *row_of(settled(f"b{n % 4}", n)))
    await wait_projected(conn, 30, also=["bot_rounds"])
    await first.stop()
    await second.stop()
    assert await per_bot(conn) == {f"b{i}": 75 for i in range(4)}
    assert (await checkpoint(conn, "bot_rounds"))["events_applied"] == 300


async def test_a_declaration_changed_without_a_new_version_is_refused(dsn, conn):
    async with crashlog.connect(dsn, projections=[rounds_per_bot(1)], flush_interval=0.01) as log:
        await log.emit(settled("b1", 1))
        await log.sync(timeout=30)
    with pytest.raises(InvalidProjection, match="bot_rounds.*without a new version"):
        async with crashlog.connect(dsn, projections=[rounds_per_bot(1, extra_column=True)]):
            pass


@pytest.mark.parametrize(("make", "named"), [
    (lambda: registry.load("no_such_module_here:x"), "no_such_module_here"),
    (lambda: registry.load("helpers.user_projections:nope"), "nope"),
    (lambda: registry.load("helpers.user_projections:not_a_projection"), "not_a_projection"),
    (lambda: rounds_per_bot(name="rounds"), "rounds"),
    (lambda: rounds_per_bot(name="projection_errors"), "projection_errors"),
    (lambda: rounds_per_bot(name="x__rebuild"), "x__rebuild"),
    (lambda: rounds_per_bot(name="bots"), "bots"),
])
async def test_bad_input_is_refused_naming_it_and_nothing_is_created(dsn, conn, make, named):
    with pytest.raises(InvalidProjection, match=named):
        async with crashlog.connect(dsn, projections=[make()]):
            pass
    assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_checkpoints"
                               " WHERE declaration IS NOT NULL") == 0


async def test_declarations_postgres_or_crashlog_refuse_create_nothing(dsn, conn):
    from crashlog.projections.user import projection

    def make(name, events=(RoundSettled,), tables=None):
        @projection(name, version=1, events=events, tables=tables or {name: "n int"})
        async def handle(batch):
            pass
        return handle

    with pytest.raises(InvalidProjection, match="'bad_sql'.*refuses"):
        async with crashlog.connect(dsn, projections=[make("bad_sql", tables={"bad_sql": "n nosuchtype"})]):
            pass
    with pytest.raises(InvalidProjection, match="events entry 42"):
        make("bad_events", events=[42])
    with pytest.raises(InvalidProjection, match="duplicate projection name 'twice'"):
        crashlog.connect(dsn, projections=[make("twice"), make("twice", tables={"other": "n int"})])
    with pytest.raises(InvalidProjection, match="duplicate projection name 'rounds'"):
        crashlog.connect(dsn, projections=[make("rounds", tables={"mine": "n int"})])
    await conn.execute("CREATE TABLE crashlog.somebody_elses (n int)")
    with pytest.raises(InvalidProjection, match="somebody_elses already exists"):
        async with crashlog.connect(dsn, projections=[make("somebody_elses")]):
            pass
    assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_checkpoints"
                               " WHERE declaration IS NOT NULL") == 0
    assert await conn.fetchval("SELECT to_regclass('crashlog.bad_sql')") is None


async def test_drop_removes_tables_checkpoint_and_errors_and_refuses_a_builtin(dsn, conn):
    p = refusing("dropme", "skip", "13")
    async with crashlog.connect(dsn, projections=[p], flush_interval=0.01) as log:
        await log.emit(settled("b1", 1, "13.00"))
        await log.sync(timeout=30)
    assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_errors") == 1
    assert await registry.drop(conn, "dropme") == ["dropme"]
    assert await conn.fetchval("SELECT to_regclass('crashlog.dropme')") is None
    assert await checkpoint(conn, "dropme") is None
    assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_errors") == 0
    with pytest.raises(InvalidProjection, match="'rounds' is a built-in"):
        await registry.drop(conn, "rounds")


async def test_a_version_rebuild_does_not_hold_up_the_other_projections(dsn, conn):
    runner = Runner(dsn, [*PROJECTIONS, rounds_per_bot(1)], poll_interval=0.02)
    runner.start()
    for n in range(10):
        await conn.execute(_INSERT, *row_of(settled("b1", n)))
    await wait_projected(conn, 30, also=["bot_rounds"])
    await runner.stop()
    reader = await connect(dsn)  # a reader of the old table: the swap waits for it
    tx = reader.transaction(readonly=True)
    await tx.start()
    await reader.fetch("SELECT * FROM crashlog.bot_rounds")
    runner = Runner(dsn, [*PROJECTIONS, rounds_per_bot(2)], poll_interval=0.02)
    runner.start()
    try:
        for n in range(10, 20):
            await conn.execute(_INSERT, *row_of(settled("b2", n)))
        # The built-ins keep going while the new version waits to swap in.
        await until(lambda: _count_is(conn, "rounds", 20))
        assert (await checkpoint(conn, "bot_rounds"))["version"] == 1
    finally:
        await tx.rollback()
        await reader.close()
    await until(lambda: _version_is(conn, "bot_rounds", 2))
    await wait_projected(conn, 30, also=["bot_rounds"])
    await runner.stop()
    assert await per_bot(conn) == {"b1": 10, "b2": 10}


async def _count_is(conn: asyncpg.Connection, table: str, n: int) -> bool:
    return await conn.fetchval(f"SELECT count(*) FROM crashlog.{table}") == n


async def _version_is(conn: asyncpg.Connection, name: str, version: int) -> bool:
    return (await checkpoint(conn, name))["version"] == version


async def test_a_lost_connection_or_a_timeout_is_retried_and_skips_nothing(dsn, conn):
    from crashlog.projections.user import projection

    faults = ["kill", "timeout"]  # the first two batches fail so, once each

    @projection("flaky", version=1, events=[RoundSettled], on_error="skip",
                tables={"flaky": "event_id uuid PRIMARY KEY"})
    async def flaky(batch):
        if faults:
            fault = faults.pop(0)
            if fault == "kill":  # the runner's own connection dies mid-batch
                await batch.conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            await batch.conn.execute("SET LOCAL statement_timeout = '1ms'")
            await batch.conn.execute("SELECT pg_sleep(0.2)")  # 57014: not the data's doing
        await batch.conn.executemany(f"INSERT INTO {batch.table('flaky')} VALUES ($1)",
                                     [(e.event_id,) for e in batch.events])

    events = [settled("b1", n) for n in range(12)]
    for event in events:
        await conn.execute(_INSERT, *row_of(event))
    runner = Runner(dsn, [*PROJECTIONS, flaky], poll_interval=0.02)
    runner.start()
    await wait_projected(conn, 60, also=["flaky"])
    await runner.stop()
    assert faults == [] and runner.failed_attempts >= 1
    assert {r[0] for r in await conn.fetch("SELECT event_id FROM crashlog.flaky")} == {
        e.event_id for e in events}
    assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_errors") == 0
