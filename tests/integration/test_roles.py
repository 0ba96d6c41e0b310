"""The three roles, connected to for real: what each may do, and what each is refused.

Roles are cluster-wide, so every test makes its own with a unique prefix and drops
them afterwards. Logins are members of the group roles, as in production.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import crashlog
from crashlog import store
from crashlog.database import ConnectFailed, open_connection
from crashlog.events import Outcome, RoundSettled
from crashlog.events.uuid7 import uuid7
from crashlog.projections import runner
from crashlog.roles import KINDS, Roles, RolesError, create_login, create_roles, drop_roles
from crashlog.store import Row
from crashlog.subscriptions import Subscription

SECRET = "s3cr3t-Pa55word"
READ_TABLES = ("bots", "sessions", "rounds", "round_outcomes", "round_multipliers",
               "round_signals", "ocr_readings", "bot_errors", "bot_stats", "game_configs")


def as_user(dsn: str, user: str, password: str | None = None) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    secret = f":{password}" if password is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}{secret}@{host}"))


class Logins(dict[str, str]):
    """kind ("writer", "projector", ...) -> a DSN logging in as a member of that role."""


@pytest.fixture
async def roles(conn: asyncpg.Connection, dsn: str) -> AsyncIterator[tuple[Roles, Logins]]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    made = await create_roles(conn, prefix)
    logins = Logins()
    for kind in KINDS:
        login = f"{prefix}_{kind}_login"
        await create_login(conn, login, kind, prefix=prefix, password=SECRET)
        logins[kind] = as_user(dsn, login, SECRET)
    yield made, logins
    for kind in logins:
        login = f"{prefix}_{kind}_login"
        await conn.execute(f'REASSIGN OWNED BY "{login}" TO CURRENT_USER; DROP OWNED BY "{login}";'
                           f' DROP ROLE "{login}"')
    await drop_roles(conn, prefix)
    assert not await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname LIKE $1",
                                   prefix + "%")


def settled(bot: str, number: int) -> RoundSettled:
    return RoundSettled(
        bot_id=bot, session_id="s1", game="aviator", platform="demo", round_number=number,
        stake=Decimal("10.00"), crash_multiplier=Decimal("2.45"),
        cashout_multiplier=Decimal("1.50"), outcome=Outcome.WIN, profit_loss=Decimal("5.00"),
    )


async def connect_as(dsn: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(dsn)
    await store.init_connection(connection)
    return connection


async def refused(connection: asyncpg.Connection, statement: str, *args: object) -> str:
    """Run ``statement``; it must be refused for lack of privilege. Returns the message."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
        await connection.execute(statement, *args)
    message = str(caught.value)
    # The privilege system refused it, not the append-only trigger (a second line of defence).
    assert "permission denied" in message or "must be owner" in message, message
    return message


async def test_the_writer_does_everything_the_logger_needs(roles, conn):
    _, logins = roles
    async with crashlog.connect(logins["writer"], project=False, flush_interval=0.01) as log:
        ids = [await log.emit(settled("bot-w", n)) for n in range(50)]
        await log.flush()  # the COPY fast path
        assert log.metrics().committed == 50
    writer = await connect_as(logins["writer"])
    try:
        # The retry path: a temporary table and INSERT ... ON CONFLICT (event_id) DO NOTHING.
        rows = [Row(i, "RoundSettled", 1, "bot-w", None, r["occurred_at"], b"{}")
                for i, r in zip(ids[:5], await conn.fetch(
                    "SELECT occurred_at FROM crashlog.events ORDER BY position LIMIT 5"))]
        fresh = Row(uuid7(), "RoundSettled", 1, "bot-w", None, rows[0].occurred_at, b'{"a": 1}')
        assert await store.insert_rows_idempotent(writer, rows + [fresh]) == 1
        # A refused row is kept aside.
        await store.reject_row(writer, fresh._replace(event_id=uuid7()), ValueError("bad"))
    finally:
        await writer.close()
    assert await conn.fetchval("SELECT count(*) FROM crashlog.events") == 51
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rejected_events") == 1


async def test_the_writer_may_not_change_read_or_reshape_anything(roles):
    _, logins = roles
    writer = await connect_as(logins["writer"])
    try:
        await refused(writer, "UPDATE crashlog.events SET bot_id = 'x'")
        await refused(writer, "DELETE FROM crashlog.events")
        await refused(writer, "TRUNCATE crashlog.events")
        await refused(writer, "SELECT payload FROM crashlog.events")
        await refused(writer, "SELECT * FROM crashlog.rejected_events")
        await refused(writer, "DELETE FROM crashlog.rejected_events")
        for table in READ_TABLES:
            await refused(writer, f"SELECT * FROM crashlog.{table}")
        await refused(writer, "INSERT INTO crashlog.bot_stats (bot_id) VALUES ('x')")
        await refused(writer, "CREATE TABLE crashlog.mine (x int)")
        await refused(writer, "DROP TABLE crashlog.rounds")
        await refused(writer, "SELECT crashlog.setup_roles('evil')")
    finally:
        await writer.close()


async def test_the_projector_rebuilds_the_read_tables_but_cannot_append(roles, dsn, conn):
    _, logins = roles
    async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
        for n in range(20):
            await log.emit(settled("bot-p", n))
    await runner.rebuild(logins["projector"], ["all"])  # shadows, swap: needs ownership
    projector = await connect_as(logins["projector"])
    try:
        assert await projector.fetchval("SELECT count(*) FROM crashlog.rounds") == 20
        await refused(projector, "INSERT INTO crashlog.events (event_id, event_type, schema_version,"
                      " bot_id, occurred_at, payload) VALUES ($1, 'X', 1, 'b', now(), '{}')",
                      uuid7())
        await refused(projector, "UPDATE crashlog.events SET bot_id = 'x'")
        await refused(projector, "DELETE FROM crashlog.events")
        await refused(projector, "TRUNCATE crashlog.events")
        await refused(projector, "DROP TABLE crashlog.events")
    finally:
        await projector.close()
    # The analyst can still read the tables the projector swapped in.
    analyst = await connect_as(logins["analyst"])
    try:
        assert await analyst.fetchval("SELECT count(*) FROM crashlog.rounds") == 20
    finally:
        await analyst.close()


async def test_the_analyst_reads_everything_and_changes_nothing(roles, dsn):
    _, logins = roles
    async with crashlog.connect(dsn, flush_interval=0.01) as log:
        await log.emit(settled("bot-a", 1))
        await log.sync(timeout=30)
    analyst = await connect_as(logins["analyst"])
    try:
        assert await analyst.fetchval("SELECT count(*) FROM crashlog.events") == 1
        for table in READ_TABLES:
            await analyst.fetch(f"SELECT * FROM crashlog.{table} LIMIT 1")
        await refused(analyst, "INSERT INTO crashlog.events (event_id, event_type, schema_version,"
                      " bot_id, occurred_at, payload) VALUES ($1, 'X', 1, 'b', now(), '{}')",
                      uuid7())
        await refused(analyst, "UPDATE crashlog.events SET bot_id = 'x'")
        await refused(analyst, "TRUNCATE crashlog.events")
        await refused(analyst, "DELETE FROM crashlog.rounds")
        await refused(analyst, "UPDATE crashlog.bot_stats SET bot_id = 'x'")
        await refused(analyst, "TRUNCATE crashlog.rounds")
        await refused(analyst, "CREATE TABLE crashlog.mine (x int)")
    finally:
        await analyst.close()


async def test_the_subscriber_consumes_the_log_and_nothing_else(roles, dsn, conn):
    _, logins = roles
    async with crashlog.connect(dsn, project=False) as log:
        ids = [await log.emit(settled("bot-s", n)) for n in range(1, 4)]
        await log.flush()
    got = []
    async with Subscription(logins["subscriber"], "alerts", start="beginning") as sub:
        async for batch in sub:
            got.extend(e.event_id for e in batch.events)
            await batch.ack()
            if len(got) >= len(ids):
                break
    assert got == ids
    assert await conn.fetchval(
        "SELECT events_delivered FROM crashlog.subscription_checkpoints WHERE name = 'alerts'"
    ) == 3
    subscriber = await connect_as(logins["subscriber"])
    try:
        await refused(subscriber, "SELECT * FROM crashlog.rounds LIMIT 1")
        await refused(subscriber, "INSERT INTO crashlog.events (event_id, event_type, schema_version,"
                      " bot_id, occurred_at, payload) VALUES (gen_random_uuid(), 'X', 1, 'b', now(),"
                      " '{}')")
        await refused(subscriber, "DELETE FROM crashlog.subscription_checkpoints")
    finally:
        await subscriber.close()


async def test_creating_the_roles_twice_changes_nothing(roles, conn):
    made, _ = roles
    prefix = made.writer.rsplit("_", 1)[0]
    assert await create_roles(conn, prefix) == made


@pytest.mark.parametrize("prefix", ["", "Crashlog", "1abc", "a-b", "x; DROP ROLE postgres", "a" * 42])
async def test_a_bad_prefix_is_refused_before_any_sql(conn, prefix):
    with pytest.raises(RolesError, match="invalid role prefix"):
        await create_roles(conn, prefix)


async def test_a_role_without_createrole_is_told_what_it_lacks(roles):
    _, logins = roles
    analyst = await asyncpg.connect(logins["analyst"])
    try:
        with pytest.raises(RolesError, match="CREATEROLE"):
            await create_roles(analyst, "tnope")
    finally:
        await analyst.close()


@pytest.mark.parametrize("dsn_text", [
    f"postgresql://bot:{SECRET}@127.0.0.1:1/crashlog",
    f"postgresql://bot@127.0.0.1:1/crashlog?password={SECRET}&sslmode=disable",
    f"host=127.0.0.1 port=1 user=bot password={SECRET} dbname=crashlog",
])
async def test_a_password_never_appears_in_errors_or_logs(dsn_text, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConnectFailed) as caught:
        await crashlog.connect(dsn_text, connect_timeout=2, project=False)
    assert SECRET not in str(caught.value) and "***" in str(caught.value)
    assert caught.value.__cause__ is None or SECRET not in str(caught.value.__cause__)
    with pytest.raises(ConnectFailed) as caught:
        await open_connection(dsn_text, timeout=2)
    assert SECRET not in str(caught.value)
    assert SECRET not in caplog.text


async def test_a_login_password_is_stored_as_a_scram_verifier_only(roles, conn):
    made, _ = roles
    login = made.writer + "_login"
    stored = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", login)
    assert stored.startswith("SCRAM-SHA-256$4096:") and SECRET not in stored


@pytest.mark.slow
async def test_a_scram_login_works_a_wrong_password_is_not_echoed_and_sslmode_applies(caplog, tmp_path):
    """On a server of its own that asks for passwords (the shared test servers trust everyone)."""
    from faults import ThrowawayServer

    from crashlog import migrations

    server = ThrowawayServer()
    try:
        server.start()
        admin = await asyncpg.connect(server.dsn)
        await migrations.migrate(admin)
        await create_roles(admin, "crashlog")
        await create_login(admin, "bot_1", "writer", password=SECRET)
        await admin.close()
        (server.pgdata / "pg_hba.conf").write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        server.stop()
        server.start()
        good = f"postgresql://bot_1:{SECRET}@127.0.0.1:{server.port}/postgres"
        async with crashlog.connect(good, project=False, flush_interval=0.01) as log:
            await log.emit(settled("bot_1", 1))
        caplog.set_level(logging.DEBUG)
        bad = f"postgresql://bot_1:{SECRET}x@127.0.0.1:{server.port}/postgres"
        with pytest.raises(ConnectFailed) as caught:
            await crashlog.connect(bad, project=False)
        assert "password authentication failed" in str(caught.value)
        assert SECRET not in str(caught.value) and SECRET not in caplog.text
        # TLS options of the DSN reach the driver: this server has no TLS, so "require" fails.
        with pytest.raises(ConnectFailed) as caught:
            await crashlog.connect(good + "?sslmode=require", project=False)
        assert "ssl" in str(caught.value).lower() and SECRET not in str(caught.value)
        async with crashlog.connect(good + "?sslmode=disable", project=False) as log:
            await log.emit(settled("bot_1", 2))
    finally:
        server.cleanup()


async def run_cli(*args: str, home: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crashlog.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "CRASHLOG_HOME": home, "COLUMNS": "200"},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return output.decode()


@pytest.mark.parametrize("verb", ["doctor", "migrate", "stats"])
async def test_the_command_line_never_prints_a_password_of_an_unreachable_server(verb, tmp_path):
    text = await run_cli(verb, "--dsn", f"postgresql://bot:{SECRET}@127.0.0.1:1/crashlog",
                         home=str(tmp_path))
    assert SECRET not in text
    assert "***" in text, text


async def test_doctor_on_a_live_server_shows_the_dsn_masked(dsn, tmp_path):
    text = await run_cli("doctor", "--dsn", as_user(dsn, "postgres", SECRET), home=str(tmp_path))
    assert SECRET not in text
    assert "***" in text, text
