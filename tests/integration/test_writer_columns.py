"""What the roles of migration 012 may do: a writer supplies only its own columns, and only
the projector can take a projection's lease.

Roles are cluster-wide: run this module WITHOUT ``CRASHLOG_TEST_DSN`` (the embedded server
is private to the run), or roles made here may collide with another run's on a shared
server. Each test still makes its roles with a unique prefix and drops them afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import crashlog
from crashlog import health, store
from crashlog.events import Outcome, RoundSettled
from crashlog.events.uuid7 import uuid7
from crashlog.projections import PROJECTIONS, checkpoints, leases
from crashlog.roles import create_login, create_roles, drop_roles
from crashlog.store import Row

SECRET = "an0ther-Pa55word"


def as_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{SECRET}@{host}"))


@pytest.fixture
async def logins(conn: asyncpg.Connection, dsn: str) -> AsyncIterator[dict[str, str]]:
    """kind -> a DSN logging in as a member of that role (roles set up by ``create_roles``)."""
    prefix = f"w{uuid.uuid4().hex[:12]}"
    await create_roles(conn, prefix)
    made = {}
    for kind in ("writer", "projector", "analyst"):
        await create_login(conn, f"{prefix}_{kind}_login", kind, prefix=prefix, password=SECRET)
        made[kind] = as_user(dsn, f"{prefix}_{kind}_login")
    yield made
    for kind in made:
        login = f"{prefix}_{kind}_login"
        await conn.execute(f'REASSIGN OWNED BY "{login}" TO CURRENT_USER; DROP OWNED BY "{login}";'
                           f' DROP ROLE "{login}"')
    await drop_roles(conn, prefix)


async def connect_as(dsn: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(dsn)
    await store.init_connection(connection)
    return connection


def settled(bot: str, number: int) -> RoundSettled:
    return RoundSettled(
        bot_id=bot, session_id="s1", game="aviator", platform="demo", round_number=number,
        stake=Decimal("10.00"), crash_multiplier=Decimal("2.45"),
        cashout_multiplier=Decimal("1.50"), outcome=Outcome.WIN, profit_loss=Decimal("5.00"),
    )


_INSERT_WITH = {
    "tx_id": ("tx_id", "'1'::xid8"),
    "recorded_at": ("recorded_at", "now() - interval '1 day'"),
    "position": ("position", "1"),
}


@pytest.mark.parametrize("column", sorted(_INSERT_WITH))
async def test_a_writer_may_not_insert_a_column_the_server_sets(logins, column):
    writer = await connect_as(logins["writer"])
    try:
        name, value = _INSERT_WITH[column]
        overriding = " OVERRIDING SYSTEM VALUE" if column == "position" else ""
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await writer.execute(
                f"INSERT INTO crashlog.events (event_id, event_type, schema_version, bot_id,"
                f" occurred_at, payload, {name}){overriding}"
                f" VALUES ($1, 'RoundSettled', 1, 'b', now(), '{{}}', {value})", uuid7())
    finally:
        await writer.close()


async def test_a_writer_still_appends_by_copy_and_by_the_retry_path(logins, conn):
    async with crashlog.connect(logins["writer"], project=False, flush_interval=0.01) as log:
        ids = [await log.emit(settled("bot-w", n)) for n in range(20)]
        await log.flush()  # the COPY fast path, naming its columns
        assert log.metrics().committed == 20
    writer = await connect_as(logins["writer"])
    try:
        now = datetime.now(UTC)
        again = [Row(i, "RoundSettled", 1, "bot-w", None, now, b"{}") for i in ids[:3]]
        fresh = Row(uuid7(), "RoundSettled", 1, "bot-w", None, now, b'{"a": 1}')
        assert await store.insert_rows_idempotent(writer, [*again, fresh]) == 1
    finally:
        await writer.close()
    assert await conn.fetchval("SELECT count(*) FROM crashlog.events") == 21
    # The server chose tx_id and recorded_at for every row.
    assert await conn.fetchval(
        "SELECT count(*) FROM crashlog.events WHERE recorded_at > now() - interval '1 hour'") == 21


@pytest.mark.parametrize("kind", ["writer", "analyst"])
async def test_only_the_projector_can_take_a_lease(logins, conn, kind):
    await checkpoints.ensure(conn, PROJECTIONS[0])
    other = await connect_as(logins[kind])
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await leases.take(other, [PROJECTIONS[0].name], leases.Lease.APPLY)
    finally:
        await other.close()
    projector = await connect_as(logins["projector"])
    try:
        assert await leases.take(projector, [PROJECTIONS[0].name], leases.Lease.APPLY) == {
            PROJECTIONS[0].name}
    finally:
        await projector.close()


async def test_doctor_fails_while_a_writer_may_set_server_columns_until_roles_run_again(
        logins, conn):
    assert (await health.grants_check(conn)).ok
    writer_group = urlsplit(logins["writer"]).username.removesuffix("_login")  # type: ignore[union-attr]
    await conn.execute(f'GRANT INSERT ON crashlog.events TO "{writer_group}"')  # as before 012
    check = await health.grants_check(conn)
    assert not check.ok
    assert writer_group in check.detail and "tx_id" in check.detail
    assert "run: crashlog roles" in check.detail
    await create_roles(conn, writer_group.removesuffix("_writer"))
    assert (await health.grants_check(conn)).ok
