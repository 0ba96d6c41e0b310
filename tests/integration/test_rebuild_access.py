"""A rebuild keeps who may use the tables; a view over them refuses it up front; shadows a
killed rebuild left are named and dropped; the runner's reconnect delay starts again.

The roles tests create cluster-wide roles: run them WITHOUT CRASHLOG_TEST_DSN (the embedded
server is private to the run).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from helpers.log import row_of
from helpers.log import until as helpers_until

from crashlog import health, store
from crashlog.errors import ConnectFailed, RebuildRefused
from crashlog.events import Outcome, RoundSettled
from crashlog.projections import PROJECTIONS, checkpoints, leases, runner, select
from crashlog.roles import Roles, create_login, create_roles, drop_roles

SECRET = "s3cr3t-Pa55word"
TABLES = [f"crashlog.{t}" for p in PROJECTIONS for t in p.tables]

# Who may do what with a table: its owner, and each privilege (owner's defaults if none given).
_ACL = """
SELECT pg_get_userbyid(c.relowner) AS owner,
       ARRAY(SELECT ROW(a.grantor::regrole::text, a.grantee, a.privilege_type, a.is_grantable)::text
             FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a ORDER BY 1) AS acl,
       ARRAY(SELECT ROW(att.attname, a.grantor::regrole::text, a.grantee, a.privilege_type)::text
             FROM pg_attribute att, aclexplode(att.attacl) a
             WHERE att.attrelid = c.oid AND att.attacl IS NOT NULL ORDER BY 1) AS columns
FROM pg_class c WHERE c.oid = $1::regclass
"""


# This module's bound on waiting for a condition.
until = functools.partial(helpers_until, timeout=60.0, poll=0.05)


def as_user(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def settled(bot: str, n: int) -> RoundSettled:
    return RoundSettled(
        bot_id=bot, session_id="s1", game="aviator", platform="demo", round_number=n,
        stake=Decimal("10.00"), crash_multiplier=Decimal("2.45"),
        cashout_multiplier=Decimal("1.50"), outcome=Outcome.WIN, profit_loss=Decimal("5.00"))


async def below_the_horizon(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(
        "SELECT coalesce(max(tx_id) < pg_snapshot_xmin(pg_current_snapshot()), true)"
        " FROM crashlog.events"))


async def access(conn: asyncpg.Connection) -> dict[str, tuple]:
    return {t: tuple(await conn.fetchrow(_ACL, t)) for t in TABLES}


@pytest.fixture
async def roles(conn: asyncpg.Connection, dsn: str) -> AsyncIterator[tuple[Roles, dict[str, str]]]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    made = await create_roles(conn, prefix)
    await conn.execute(f'CREATE ROLE "{prefix}_reader" NOLOGIN')
    logins = {}
    for kind in ("projector", "analyst"):
        login = f"{prefix}_{kind}_login"
        await create_login(conn, login, kind, prefix=prefix, password=SECRET)
        logins[kind] = as_user(dsn, login, SECRET)
    yield made, logins
    for kind in logins:
        login = f"{prefix}_{kind}_login"
        await conn.execute(f'REASSIGN OWNED BY "{login}" TO CURRENT_USER; DROP OWNED BY "{login}";'
                           f' DROP ROLE "{login}"')
    # The reader's grant from the writer goes with the writer's grant option.
    await conn.execute(f'REVOKE ALL ON crashlog.bots FROM "{made.writer}" CASCADE;'
                       f' DROP OWNED BY "{prefix}_reader"; DROP ROLE "{prefix}_reader"')
    await drop_roles(conn, prefix)


async def test_a_rebuild_as_the_superuser_keeps_owner_table_and_column_grants(roles, dsn, conn):
    made, logins = roles
    reader = made.analyst.removesuffix("_analyst") + "_reader"
    # A column grant, a grant with grant option, and one given by that grantee in turn.
    await conn.execute(f'GRANT SELECT (bot_id, stake) ON crashlog.rounds TO "{reader}"')
    await conn.execute(f'GRANT SELECT ON crashlog.bots TO "{made.writer}" WITH GRANT OPTION')
    await conn.execute(f'SET ROLE "{made.writer}"; GRANT SELECT ON crashlog.bots TO "{reader}";'
                       " RESET ROLE")
    await store.insert_rows_idempotent(conn, [row_of(settled("b1", n)) for n in range(1, 6)])
    before = await access(conn)
    assert before["crashlog.rounds"][0] == made.projector  # crashlog roles gave it to the projector

    await until(lambda: below_the_horizon(conn))
    await runner.rebuild(dsn, ["all"])  # as the superuser of the test server
    assert await access(conn) == before
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 5

    analyst = await asyncpg.connect(logins["analyst"])
    try:
        assert await analyst.fetchval("SELECT count(*) FROM crashlog.rounds") == 5
        assert await analyst.fetchval("SELECT count(*) FROM crashlog.bot_stats") == 1
    finally:
        await analyst.close()
    # The projector's runner goes on applying to the rebuilt tables.
    await store.insert_rows_idempotent(conn, [row_of(settled("b1", n)) for n in range(6, 9)])
    live = runner.Runner(logins["projector"], poll_interval=0.02)
    live.start()
    try:
        await until(lambda: _rounds_are(conn, 8))
    finally:
        await live.stop()
    # ... and rebuilds them as itself, keeping them as they were; but not bots, whose grant
    # by the writer it cannot give again: it is told to run that one as the writer.
    await until(lambda: below_the_horizon(conn))
    await runner.rebuild(logins["projector"], ["rounds"])
    assert await access(conn) == before
    with pytest.raises(RebuildRefused, match=f"run the rebuild as {made.writer}"):
        await runner.rebuild(logins["projector"], ["bots"])
    assert await access(conn) == before


async def _rounds_are(conn: asyncpg.Connection, n: int) -> bool:
    return await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == n


async def test_a_role_that_cannot_give_the_tables_away_is_refused_naming_the_one_to_use(
        roles, dsn, conn):
    made, logins = roles
    await conn.execute(f'GRANT CREATE ON SCHEMA crashlog TO "{made.analyst}"')
    shadows_before = await conn.fetchval(_SHADOW_COUNT)
    with pytest.raises(RebuildRefused, match=made.projector):
        await runner.rebuild(logins["analyst"], ["rounds"])
    assert await conn.fetchval(_SHADOW_COUNT) == shadows_before == 0


_SHADOW_COUNT = ("SELECT count(*) FROM pg_tables WHERE schemaname = 'crashlog'"
                 " AND tablename LIKE '%\\_\\_rebuild'")


async def test_a_user_view_over_a_table_refuses_the_rebuild_before_it_starts(dsn, conn):
    await store.insert_rows_idempotent(conn, [row_of(settled("b1", n)) for n in range(1, 4)])
    await conn.execute("CREATE VIEW public.my_wins AS SELECT bot_id FROM crashlog.rounds"
                       " WHERE outcome = 'WIN'")
    oid = await conn.fetchval("SELECT 'crashlog.rounds'::regclass::oid")
    marks = await conn.fetch("SELECT * FROM crashlog.projection_checkpoints ORDER BY name")
    with pytest.raises(RebuildRefused, match=r"public\.my_wins"):
        await runner.rebuild(dsn, ["all"])
    # Nothing changed: the same table, no shadow, the same checkpoints.
    assert await conn.fetchval("SELECT 'crashlog.rounds'::regclass::oid") == oid
    assert await conn.fetchval(_SHADOW_COUNT) == 0
    assert await conn.fetch("SELECT * FROM crashlog.projection_checkpoints ORDER BY name") == marks
    await conn.execute("DROP VIEW public.my_wins")
    await until(lambda: below_the_horizon(conn))
    await runner.rebuild(dsn, ["rounds"])  # without it, the rebuild runs
    assert await conn.fetchval("SELECT count(*) FROM crashlog.rounds") == 3


async def test_shadows_a_killed_rebuild_left_are_named_then_dropped_by_a_runner(dsn, conn):
    await conn.execute("CREATE TABLE crashlog.rounds__rebuild (LIKE crashlog.rounds)")
    await conn.execute("CREATE TABLE crashlog.bots__rebuild (LIKE crashlog.bots)")
    check = await health.shadows_check(conn)
    assert not check.ok and "crashlog.rounds__rebuild" in check.detail
    # A rebuild of bots is running (it holds the projection's rebuild lease): its shadow stays.
    holder = await asyncpg.connect(dsn)
    try:
        await checkpoints.ensure(holder, select(["bots"])[0])
        assert await leases.take(holder, ["bots"], leases.Lease.REBUILD) == {"bots"}
        check = await health.shadows_check(conn)
        assert "rounds__rebuild" in check.detail and "bots__rebuild" not in check.detail
        live = runner.Runner(dsn, poll_interval=0.02)
        live.start()
        try:
            await until(lambda: _no_table(conn, "rounds__rebuild"))
            await asyncio.sleep(0.2)
            assert not await _no_table(conn, "bots__rebuild")  # still the rebuild's
        finally:
            await live.stop()
    finally:
        await holder.close()
    check = await health.shadows_check(conn)
    assert not check.ok and "bots__rebuild" in check.detail  # its rebuild is gone now
    live = runner.Runner(dsn, poll_interval=0.02)
    live.start()
    try:
        await until(lambda: _no_table(conn, "bots__rebuild"))
    finally:
        await live.stop()
    assert (await health.shadows_check(conn)).ok


async def _no_table(conn: asyncpg.Connection, name: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NULL", f"crashlog.{name}")


async def test_the_reconnect_delay_starts_again_after_a_session_that_worked(dsn, conn, monkeypatch):
    real = runner.open_connection
    refusals = [4]

    async def refusing(*args, **kwargs):
        if refusals[0]:
            refusals[0] -= 1
            raise ConnectFailed("server down (test)")
        return await real(*args, **kwargs)

    monkeypatch.setattr(runner, "open_connection", refusing)
    live = runner.Runner(dsn, poll_interval=0.02)
    live.start()
    try:
        await until(lambda: _held_all(live))
        assert live.last_retry_delay >= 0.8  # the first outage backed off: 0.1, 0.2, 0.4, 0.8
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
            " current_database() AND application_name = 'crashlog-projections'")
        await until(lambda: _held_all(live, again=True))
        assert live.last_retry_delay == runner.FIRST_RETRY  # a new outage: from the start
    finally:
        await live.stop()


async def _held_all(live: runner.Runner, again: bool = False) -> bool:
    if again and live.last_retry_delay >= 0.8:
        return False
    return len(live.held) == len(PROJECTIONS)
