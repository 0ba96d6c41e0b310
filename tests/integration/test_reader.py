"""crashlog.reader(): every read table as Arrow, as a SELECT-only role, equal to what SQL says."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crashlog
from crashlog import migrations, tables
from crashlog.errors import InvalidRead, SchemaNotReady, UnknownTable
from crashlog.events import (
    BotErrorRaised,
    BotRegistered,
    FairnessRecorded,
    GameConfigured,
    OcrRead,
    RoundObserved,
    RoundSettled,
    SessionEnded,
    SessionStarted,
    SignalRaised,
)
from crashlog.roles import create_login, create_roles, drop_roles
from crashlog.sync import connect as connect_sync

START = datetime(2026, 3, 1, tzinfo=UTC)
BOTS = ("b1", "b2", "b3")
GAMES = ("aviator", "jetx")
STRATEGIES = ("flat", "martingale", None)
BUILT_IN = {"bots", "game_configs", "sessions", "rounds", "round_outcomes", "round_multipliers",
            "round_signals", "ocr_readings", "bot_errors", "bot_stats", "fairness_records"}


def every_kind_of_event() -> list[Any]:
    """Rows for every read table: three bots, two games, three strategies, over six days."""
    events: list[Any] = []
    for i, bot in enumerate(BOTS):
        events += [
            BotRegistered(bot_id=bot, bot_name=f"Bot {i}", initial_balance=Decimal("1000.00"),
                          occurred_at=START + timedelta(hours=i)),
            SessionStarted(bot_id=bot, session_id=f"s{i}", game=GAMES[i % 2], platform="demo",
                           occurred_at=START + timedelta(hours=i)),
            SessionEnded(bot_id=bot, session_id=f"s{i}", occurred_at=START + timedelta(days=5)),
            OcrRead(bot_id=bot, field="multiplier", raw_text="2.45x", parsed_value=Decimal("2.45"),
                    occurred_at=START + timedelta(hours=i)),
            BotErrorRaised(bot_id=bot, error_type="Timeout", message="slow", context={"n": i},
                           occurred_at=START + timedelta(hours=i)),
        ]
    events.append(GameConfigured(bot_id="b1", game="aviator", platform="demo", rtp_percent=Decimal("97")))
    for n in range(60):
        at = START + timedelta(hours=2 * n)
        bot, game, strategy = BOTS[n % 3], GAMES[n % 2], STRATEGIES[n % 3]
        crash = Decimal("1.00") + Decimal(n % 7) * Decimal("0.45")
        win = crash >= Decimal("1.50")
        events.append(RoundSettled(
            bot_id=bot, session_id=f"s{n % 3}", game=game, platform="demo", round_number=n,
            game_round_id=f"{game}-{n}", strategy_name=strategy, stake=Decimal("10.00"),
            crash_multiplier=crash, cashout_multiplier=Decimal("1.50") if win else None,
            outcome="WIN" if win else "LOSS", profit_loss=Decimal("5.00") if win else Decimal("-10.00"),
            metadata={"n": n}, occurred_at=at,
        ))
        events.append(RoundObserved(bot_id="watcher", game=game, platform="demo",
                                    game_round_id=f"{game}-{n}", crash_multiplier=crash, occurred_at=at))
        if n % 5 == 0:
            events.append(SignalRaised(bot_id=bot, game=game, platform="demo", signal_type="streak",
                                       predicted_multiplier=Decimal("2.00"), feature_vector=(0.5, 1.5),
                                       for_game_round_id=f"{game}-{n}", occurred_at=at))
            events.append(FairnessRecorded(bot_id=bot, game=game, platform="demo",
                                           game_round_id=f"{game}-{n}", result=crash, occurred_at=at))
    return events


@pytest.fixture
async def filled(dsn: str) -> str:
    """The test's database with rows in every read table."""
    async with crashlog.connect(dsn, flush_interval=0.01) as log:
        for event in every_kind_of_event():
            await log.emit(event)
        await log.sync(timeout=60)
    return dsn


@pytest.fixture
async def analyst(filled: str, conn: asyncpg.Connection) -> AsyncIterator[str]:
    """A login with the analyst role only (USAGE on the schema, SELECT on the tables)."""
    prefix = f"r{uuid.uuid4().hex[:10]}"
    await create_roles(conn, prefix)
    login = f"{prefix}_reader"
    await create_login(conn, login, "analyst", prefix=prefix, password="pw-analyst")
    server = filled.split("@", 1)[1]
    yield f"postgresql://{login}:pw-analyst@{server}"
    await conn.execute(f'DROP OWNED BY "{login}"; DROP ROLE "{login}"')
    await drop_roles(conn, prefix)


async def sql_rows(conn: asyncpg.Connection, name: str) -> list[dict[str, Any]]:
    """The table as plain SQL gives it, in its declared order (the reference)."""
    info = tables.EVENTS if name == "events" else tables.declared()[name]
    order = ", ".join(info.order)
    rows = await conn.fetch(f"SELECT * FROM crashlog.{name} ORDER BY {order}")
    return [dict(r) for r in rows]


def plain(value: Any) -> Any:
    """A value as the reader gives it: uuid and JSON as text, xid8 as an int."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


async def test_every_read_table_comes_back_as_sql_gives_it_to_a_select_only_role(
    analyst: str, filled: str
) -> None:
    admin = await asyncpg.connect(filled)
    try:
        async with crashlog.reader(analyst) as r:
            known = await r.tables()
            assert set(known) == BUILT_IN  # not the log, the checkpoints nor the reading copies
            for name in [*sorted(known), "events"]:
                got = (await r.table(name)).to_pylist()
                want = await sql_rows(admin, name)
                assert len(got) == len(want) == await admin.fetchval(f"SELECT count(*) FROM crashlog.{name}")
                assert len(got) > 0, name
                for got_row, want_row in zip(got, want, strict=True):
                    for column, value in want_row.items():
                        if isinstance(value, str) and column in ("metadata", "context", "findings", "payload"):
                            continue  # JSON: compared as text below
                        assert got_row[column] == plain(value), (name, column)
            events = await r.events(event_type="RoundSettled", columns=["payload"])
            assert events.num_rows == 60 and '"stake": "10.00"' in events.column("payload")[0].as_py()
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):  # read-only, whatever the role
                await r.pool.execute("CREATE TEMP TABLE t (x int)")
    finally:
        await admin.close()


def test_filters_and_bounds_equal_the_sql_answer(filled: str) -> None:
    loop = asyncio.new_event_loop()
    reference = loop.run_until_complete(_all_rounds(filled))
    loop.close()
    days = st.sampled_from([None, *(START + timedelta(days=d) for d in range(-1, 7))])

    with crashlog.reader(filled) as r:

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(
            bot=st.sampled_from([None, "b1", "b2", ("b1", "b3"), "nobody"]),
            game=st.sampled_from([None, "aviator", "jetx"]),
            strategy=st.sampled_from([None, "flat", "martingale"]),
            outcome=st.sampled_from([None, "WIN", "LOSS"]),
            since=days, until=days, as_text=st.booleans(),
        )
        def same_answer(bot, game, strategy, outcome, since, until, as_text) -> None:
            filters = {k: v for k, v in (("bot_id", bot), ("game", game), ("strategy_name", strategy),
                                         ("outcome", outcome)) if v is not None}
            got = r.table("rounds", since=since.isoformat() if as_text and since else since,
                          until=until, columns=["event_id"], **filters).column("event_id").to_pylist()
            want = [
                row["event_id"] for row in reference
                if all(row[k] in (v if isinstance(v, tuple) else (v,)) for k, v in filters.items())
                and (since is None or row["occurred_at"] >= since)
                and (until is None or row["occurred_at"] < until)
            ]
            assert got == want
            assert r.count("rounds", since=since, until=until, **filters) == len(want)

        same_answer()


async def _all_rounds(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_id::text AS event_id, bot_id, game, strategy_name, outcome,"
                                " occurred_at FROM crashlog.rounds")
    finally:
        await conn.close()
    # The order is the table's documented one, applied here in Python: occurred_at, position.
    return sorted((dict(r) for r in rows), key=lambda r: r["occurred_at"])


async def test_money_stays_exact_through_pandas_and_polars(conn: asyncpg.Connection, dsn: str) -> None:
    big = Decimal("12345678901234.123456789012")  # 26 digits: the most decimal128(38, 12) holds
    await conn.execute(
        "INSERT INTO crashlog.bot_stats VALUES ('m', '', 1, 1, 0, 0, $1, $2, NULL, now(), now(), '1', 1)",
        Decimal("0.000000000001"), big,
    )
    async with crashlog.reader(dsn) as r:
        t = await r.table("bot_stats", bot_id="m", columns=["total_staked", "total_profit"])
    assert t.schema.field("total_profit").type == pa.decimal128(38, 12)
    frame = t.to_pandas()
    assert frame["total_profit"][0] == big and frame["total_staked"][0] == Decimal("1E-12")
    polars = pytest.importorskip("polars", reason="polars comes with the test extra")
    df = polars.from_arrow(t)
    assert df["total_profit"][0] == big and df["total_staked"][0] == Decimal("1E-12")


async def test_money_that_does_not_fit_is_named_or_read_as_float(conn: asyncpg.Connection, dsn: str) -> None:
    await conn.execute(
        "INSERT INTO crashlog.bot_stats VALUES ('m', '', 1, 1, 0, 0, 1, 0.0000000000001, NULL, now(), now(),"
        " '1', 1)"
    )
    async with crashlog.reader(dsn) as r:
        with pytest.raises(InvalidRead, match=r"column total_profit: value 1E-13 does not fit"):
            await r.table("bot_stats")
        t = await r.table("bot_stats", money="float")
        assert t.schema.field("total_profit").type == pa.float64()
        assert t.column("total_profit").to_pylist() == [1e-13]
        with pytest.raises(InvalidRead, match="money='cents'"):
            await r.table("bot_stats", money="cents")


async def test_a_reader_works_inside_a_running_event_loop(filled: str) -> None:
    assert asyncio.get_running_loop().is_running()  # as in a notebook cell
    with crashlog.reader(filled) as r:
        t = r.table("rounds", bot_id="b2")
        batches = list(r.batches("round_outcomes", columns=["stake", "occurred_at"]))
    assert t.num_rows == 20 and set(t.column("bot_id").to_pylist()) == {"b2"}
    assert sum(b.num_rows for b in batches) == 60
    assert batches[0].schema.field("occurred_at").type == pa.timestamp("us", tz="UTC")


async def test_batches_stream_in_order_and_the_async_reader_has_the_same_methods(filled: str) -> None:
    async with crashlog.reader(filled) as r:
        times: list[datetime] = []
        async for batch in await r.batches("rounds", columns=["occurred_at"]):
            times += batch.column("occurred_at").to_pylist()
        assert times == sorted(times) and len(times) == 60
        stats = await r.bot_statistics("b1")
        assert stats.rounds == 20
        assert (await r.strategy_statistics("flat")).rounds == 20
        report = await r.fit("aviator")
        assert report.checks
    with crashlog.reader(filled) as sync_reader:
        assert sync_reader.bot_statistics("b1") == stats
        reader = sync_reader.batches("rounds", game="jetx")
        assert isinstance(reader, pa.RecordBatchReader) and reader.read_all().num_rows == 30


async def test_a_loggers_reader_reads_through_its_pool(dsn: str) -> None:
    async with crashlog.connect(dsn, flush_interval=0.01) as log:
        for event in every_kind_of_event()[:20]:
            await log.emit(event)
        await log.sync(timeout=30)
        assert (await log.reader.table("bots")).num_rows == 3
        assert (await log.bot_statistics("b1")) == (await log.reader.bot_statistics("b1"))
    with connect_sync(dsn, flush_interval=0.01) as sync_log:
        assert sync_log.reader.table("bots").num_rows == 3


async def test_users_own_tables_are_read_too(conn: asyncpg.Connection, dsn: str) -> None:
    await conn.execute("CREATE TABLE crashlog.hourly_busts (hour timestamptz PRIMARY KEY, busts bigint)")
    await conn.execute("CREATE TABLE crashlog.my_alerts (id int PRIMARY KEY, occurred_at timestamptz,"
                       " level text)")
    await conn.execute("INSERT INTO crashlog.hourly_busts SELECT $1::timestamptz + i * interval '1 hour', i"
                       " FROM generate_series(3, 1, -1) i", START)
    await conn.execute("INSERT INTO crashlog.my_alerts SELECT i, $1::timestamptz - i * interval '1 day', 'x'"
                       " FROM generate_series(1, 3) i", START)
    async with crashlog.reader(dsn) as r:
        found = await r.tables()
        assert found["my_alerts"].time == "occurred_at"  # found in the database
        assert (await r.table("my_alerts")).column("id").to_pylist() == [3, 2, 1]
        assert (await r.table("my_alerts", since=START - timedelta(days=2))).num_rows == 2
        with pytest.raises(InvalidRead, match="table hourly_busts has no time column"):
            await r.table("hourly_busts", since=START)
        tables.register_table("hourly_busts", time="hour")  # as a user projection declares it
        try:
            t = await r.table("hourly_busts", since=START + timedelta(hours=2))
            assert t.column("busts").to_pylist() == [2, 3]
        finally:
            tables._registered.pop("hourly_busts")


async def test_bad_input_is_a_clear_error_and_writes_nothing(filled: str) -> None:
    admin = await asyncpg.connect(filled)
    before = await admin.fetchval("SELECT count(*) FROM crashlog.events")
    try:
        async with crashlog.reader(filled) as r:
            with pytest.raises(UnknownTable, match=r"unknown table 'round'; readable tables: bot_errors, "
                                                   r"bot_stats, bots, .*rounds, sessions"):
                await r.table("round")
            with pytest.raises(UnknownTable, match="round_multiplier_readings"):
                await r.table("round_multiplier_readings")  # a projection's own copy
            with pytest.raises(InvalidRead, match=r"invalid since='last tuesday' for table rounds"):
                await r.table("rounds", since="last tuesday")
            with pytest.raises(InvalidRead, match=r"table rounds has no column 'colour' \(asked as a filter\)"):
                await r.table("rounds", colour="red")
            with pytest.raises(InvalidRead, match=r"table rounds has no column 'x; DROP TABLE y'"):
                await r.table("rounds", columns=["x; DROP TABLE y"])
            with pytest.raises(InvalidRead, match="invalid filter round_number='ten'"):
                await r.table("rounds", round_number="ten")
            with pytest.raises(InvalidRead, match="table bot_stats has no time column"):
                await r.table("bot_stats", until="2026-01-01")
            assert isinstance(InvalidRead("x"), crashlog.CrashlogError)
    finally:
        assert await admin.fetchval("SELECT count(*) FROM crashlog.events") == before
        await admin.close()


async def test_a_reader_refuses_a_database_without_the_schema_or_with_an_older_one(
    empty_dsn: str, dsn: str, conn: asyncpg.Connection
) -> None:
    with pytest.raises(SchemaNotReady, match="no crashlog schema"):
        async with crashlog.reader(empty_dsn):
            pass
    empty = await asyncpg.connect(empty_dsn)
    try:  # nothing created: a reader never migrates
        assert await empty.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'crashlog'") == 0
    finally:
        await empty.close()
    newest = migrations.load_migrations()[-1]
    await conn.execute("DELETE FROM crashlog.schema_migrations WHERE version = $1", newest.version)
    with pytest.raises(SchemaNotReady, match=f"older than this package: {newest.name} not applied"), \
            crashlog.reader(dsn):
        pass


def test_import_crashlog_loads_no_reading_dependencies() -> None:
    import subprocess
    import sys

    code = ("import sys, crashlog; crashlog.reader; "
            "print(sorted(m for m in sys.modules if 'analytics' in m or m.startswith('pyarrow')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.fixture
def no_pyarrow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import builtins

    real = builtins.__import__

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    yield


def test_without_pyarrow_the_error_names_the_extra(no_pyarrow: None) -> None:
    from crashlog import arrow
    from crashlog.errors import MissingExtra

    with pytest.raises(MissingExtra, match=r"pip install 'crashlog\[arrow\]'"):
        arrow.require()
