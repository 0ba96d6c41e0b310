"""The projection runner against a real PostgreSQL: commit-safe order, sync, locks, lag."""

from __future__ import annotations

import asyncio
import functools
from decimal import Decimal

import pytest
from helpers.log import connect, row_of
from helpers.log import until as helpers_until

import crashlog
from crashlog.events import Outcome, RoundObserved, RoundSettled
from crashlog.projections import NAMES
from crashlog.projections.runner import Runner, lag, wait_projected

_INSERT = """
INSERT INTO crashlog.events
    (event_id, event_type, schema_version, bot_id, session_id, occurred_at, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""


# This module's bound on waiting for a condition.
until = functools.partial(helpers_until, timeout=10.0, poll=0.02)


def settled(bot: str, n: int, balance_after: str = "1005.00") -> RoundSettled:
    return RoundSettled(
        bot_id=bot, session_id="s1", game="aviator", platform="demo", round_number=n,
        game_round_id=f"r{n}", strategy_name="fixed", stake=Decimal("10.00"),
        crash_multiplier=Decimal("2.00"), cashout_multiplier=Decimal("1.50"), outcome=Outcome.WIN,
        profit_loss=Decimal("5.00"), balance_before=Decimal("1000.00"),
        balance_after=Decimal(balance_after),
    )


async def test_sync_returns_with_the_read_tables_current(log, conn):
    ids = [await log.emit(settled("b1", n)) for n in range(50)]
    await log.sync(timeout=30)
    rounds = await conn.fetch("SELECT event_id FROM crashlog.rounds")
    assert {r["event_id"] for r in rounds} == set(ids)
    stats = await conn.fetchrow(
        "SELECT rounds, wins, total_staked, total_profit FROM crashlog.bot_stats"
        " WHERE bot_id = 'b1' AND strategy_name = ''"
    )
    assert tuple(stats) == (50, 50, Decimal("500.00"), Decimal("250.00"))
    assert all(events == 0 for events, _ in (await lag(conn)).values())


async def test_late_commit_is_projected_once_and_before_later_events(dsn, conn):
    """An event whose transaction commits late sits below later events in (tx_id, position)
    order: nothing after it may be applied while it is open, and it is never skipped."""
    runner = Runner(dsn, poll_interval=0.02)
    runner.start()
    late, later = settled("b1", 0, "1001.00"), [settled("b1", n, f"100{n + 1}.00") for n in range(1, 4)]
    holder = await connect(dsn)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(_INSERT, *row_of(late))  # takes its xid and a position now
        for event in later:
            await conn.execute(_INSERT, *row_of(event))  # committed, later xids and positions
        await asyncio.sleep(0.5)  # many polls: a runner following position alone applies them now
        assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 0
        with pytest.raises(crashlog.NotFlushed) as raised:
            await wait_projected(conn, 0.3)
        assert raised.value.pending == 3
        await tx.commit()
    finally:
        await holder.close()
    await wait_projected(conn, 30)
    await runner.stop()
    ids = [r["event_id"] for r in await conn.fetch("SELECT event_id FROM crashlog.rounds")]
    assert sorted(ids) == sorted(e.event_id for e in [late, *later])
    stats = await conn.fetchrow(
        "SELECT rounds, last_balance FROM crashlog.bot_stats WHERE bot_id = 'b1' AND strategy_name = ''"
    )
    # Counted once each, and the late event first: the last balance is the last event's.
    assert tuple(stats) == (4, Decimal("1004.00"))
    applied = await conn.fetch("SELECT name, events_applied FROM crashlog.projection_checkpoints")
    assert {r["name"]: r["events_applied"] for r in applied} == {name: 4 for name in NAMES}


async def test_sync_times_out_while_a_transaction_holds_the_horizon(log, dsn, conn):
    await log.emit(settled("b1", 1))
    await log.sync(timeout=30)
    blocker = await connect(dsn)
    try:
        async with blocker.transaction():
            await blocker.fetchval("SELECT pg_current_xact_id()")  # an open transaction with an xid
            await log.emit(settled("b1", 2))
            with pytest.raises(crashlog.NotFlushed) as raised:
                await log.sync(timeout=0.5)
            assert raised.value.pending == 1
            assert "sync" in str(raised.value)
    finally:
        await blocker.close()
    await log.sync(timeout=30)
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 2


async def test_two_runners_apply_each_event_once_and_one_takes_over(dsn, conn):
    first = Runner(dsn, poll_interval=0.02, standby_interval=0.1)
    second = Runner(dsn, poll_interval=0.02, standby_interval=0.1)
    first.start()
    await until(lambda: _true(len(first.held) == len(NAMES)))
    second.start()
    async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
        for n in range(300):
            await log.emit(settled(f"b{n % 3}", n))
        await log.sync(timeout=30)
        assert second.held == {} and second.batches_applied == 0  # it stood by
        first.abort()  # dies mid-flight, as a killed process would: its locks go with its connection
        for n in range(300, 600):
            await log.emit(settled(f"b{n % 3}", n))
        await log.sync(timeout=30)
    assert len(second.held) == len(NAMES) and second.batches_applied > 0
    await first.stop()
    await second.stop()
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 600
    assert await conn.fetchval(
        "SELECT sum(rounds) FROM crashlog.bot_stats WHERE strategy_name = ''") == 600
    applied = await conn.fetch("SELECT name, events_applied FROM crashlog.projection_checkpoints")
    assert {r["name"]: r["events_applied"] for r in applied} == {name: 600 for name in NAMES}


async def _true(value: bool) -> bool:
    return value


async def test_five_bots_watching_the_same_rounds_make_one_row_each(log, conn):
    disagreeing_round = 7
    for bot in range(5):
        for n in range(1000):
            crash = Decimal("2.50") if (bot, n) == (3, disagreeing_round) else Decimal(1 + n % 50)
            await log.emit(RoundObserved(
                bot_id=f"bot{bot}", game="aviator", platform="demo", game_round_id=f"g{n}",
                round_number=n, crash_multiplier=crash,
            ))
    await log.sync(timeout=60)
    rows = await conn.fetch("SELECT * FROM crashlog.round_multipliers")
    assert len(rows) == 1000
    assert {(r["observers"], r["readings"]) for r in rows} == {(5, 5)}
    flagged = [r for r in rows if r["disagreement"]]
    assert [r["game_round_id"] for r in flagged] == [f"g{disagreeing_round}"]
    (row,) = flagged
    assert row["multiplier"] == Decimal(1 + disagreeing_round % 50)  # the majority reading
    assert (row["min_multiplier"], row["max_multiplier"]) == (Decimal("2.50"), Decimal("8"))
    kept = await conn.fetchval(
        "SELECT multiplier FROM crashlog.round_multiplier_readings"
        " WHERE bot_id = 'bot3' AND game_round_id = $1", f"g{disagreeing_round}")
    assert kept == Decimal("2.50")  # the disagreeing reading is not lost


async def test_doubtful_rounds_are_flagged_for_exports_to_filter(log, conn):
    def observed(bot: str, round_id: str | None, crash: str) -> RoundObserved:
        return RoundObserved(bot_id=bot, game="aviator", platform="demo", game_round_id=round_id,
                             crash_multiplier=Decimal(crash))

    def settled_with_ocr(round_id: str, crash: str, confidence: float) -> RoundSettled:
        return RoundSettled(bot_id="b3", session_id="s", game="aviator", platform="demo",
                            game_round_id=round_id, round_number=1, stake=Decimal("1"),
                            crash_multiplier=Decimal(crash), outcome=Outcome.SKIP,
                            profit_loss=Decimal("0"), balance_before=Decimal("10"),
                            balance_after=Decimal("10"),
                            ocr_confidence=confidence)

    for event in (observed("b1", "clean", "2.45"), observed("b2", "clean", "2.45"),
                  observed("b1", "three-decimals", "2.453"), observed("b1", None, "1.017"),
                  observed("b1", "disputed", "4.00"), observed("b2", "disputed", "1.40"),
                  settled_with_ocr("blurry", "3.10", 0.41), settled_with_ocr("sharp", "3.10", 0.97)):
        await log.emit(event)
    await log.sync(timeout=30)
    rows = await conn.fetch(
        "SELECT coalesce(game_round_id, 'none') AS r, quality_flags, ocr_confidence"
        " FROM crashlog.round_multipliers")
    assert {r["r"]: (r["quality_flags"], r["ocr_confidence"]) for r in rows} == {
        "clean": ([], None),
        "three-decimals": (["off_grid"], None),
        "none": (["off_grid"], None),
        "disputed": (["disagreement"], None),
        "blurry": (["low_ocr_confidence"], 0.41),
        "sharp": ([], 0.97),
    }


async def test_lag_counts_what_is_not_yet_applied(dsn, conn):
    for n in range(5):
        await conn.execute(_INSERT, *row_of(settled("b1", n)))
    behind = await lag(conn)
    assert set(behind) == set(NAMES)
    assert all(events == 5 and seconds >= 0 for events, seconds in behind.values())
    runner = Runner(dsn, poll_interval=0.02)
    runner.start()
    await wait_projected(conn, 30)
    await runner.stop()
    assert all(events == 0 and seconds == 0 for events, seconds in (await lag(conn)).values())


async def test_a_changed_version_is_rebuilt_at_start(dsn, conn):
    for n in range(5):
        await conn.execute(_INSERT, *row_of(settled("b1", n)))
    runner = Runner(dsn, poll_interval=0.02)
    runner.start()
    await wait_projected(conn, 30)
    await runner.stop()
    # Simulate tables written by an older version of the handler.
    await conn.execute("UPDATE crashlog.rounds SET stake = 999")
    await conn.execute("UPDATE crashlog.projection_checkpoints SET version = 0 WHERE name = 'rounds'")
    progress: list[tuple[int, int]] = []
    runner = Runner(dsn, poll_interval=0.02, progress=lambda done, total: progress.append((done, total)))
    runner.start()
    await until(lambda: _true("rounds" in runner.held))
    await runner.stop()
    assert await conn.fetchval("SELECT array_agg(DISTINCT stake) FROM crashlog.rounds") == [Decimal("10.00")]
    assert await conn.fetchval(
        "SELECT version FROM crashlog.projection_checkpoints WHERE name = 'rounds'") == 1
    assert progress[-1] == (5, 5)
