"""Liveness of the writer on a real PostgreSQL: a read-only spell and a lost privilege are
waited out (nothing is set aside as a refused row), a lane task that ends is restarted
without losing its batch, and one that keeps ending fails the writer loudly.

The privilege test makes roles (cluster-wide) with a unique prefix and drops them after.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from faults import free_port

import crashlog
from crashlog import writer as writer_module
from crashlog.appender import is_transient, refuses_a_row, refuses_the_batch
from crashlog.events import RoundObserved
from crashlog.roles import create_login, create_roles, drop_roles


def observed(bot: str, number: int) -> RoundObserved:
    return RoundObserved(bot_id=bot, game="aviator", platform="demo", round_number=number,
                         crash_multiplier=Decimal("1.00") + Decimal(number % 997) / 100)


def database_of(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


async def census(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> tuple[int, int, int]:
    """(emitted ids missing from the log, extra copies in the log, rows set aside as refused)."""
    counts = {r["event_id"]: r["n"] for r in await conn.fetch(
        "SELECT event_id, count(*) AS n FROM crashlog.events GROUP BY event_id")}
    rejected = await conn.fetchval("SELECT count(*) FROM crashlog.rejected_events")
    return (sum(1 for i in ids if i not in counts), sum(n - 1 for n in counts.values()), rejected)


async def until(condition, what: str, *, tries: int = 600) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_what_concerns_the_whole_batch_is_never_a_row_refusal() -> None:
    errors = asyncpg.exceptions
    passing = [errors.ReadOnlySQLTransactionError("read-only"),  # 25006
               errors.AdminShutdownError("terminating"),  # 57P01
               errors.CrashShutdownError("crash"),  # 57P02
               errors.CannotConnectNowError("starting up"),  # 57P03
               errors.DiskFullError("no space"),  # 53100
               errors.OutOfMemoryError("oom")]  # 53200
    batch_wide = [errors.InsufficientPrivilegeError("permission denied"),  # 42501
                  errors.UndefinedTableError("no table"),  # 42P01
                  errors.UndefinedColumnError("no column"),  # 42703
                  errors.InvalidCatalogNameError("no database")]  # 3D000
    rows = [errors.CheckViolationError("check"), errors.NotNullViolationError("null"),  # 23
            errors.InvalidTextRepresentationError("bad text")]  # 22P02
    assert [is_transient(e) for e in passing] == [True] * len(passing)
    assert [refuses_a_row(e) for e in passing + batch_wide] == [False] * len(passing + batch_wide)
    assert [refuses_the_batch(e) for e in batch_wide] == [True] * len(batch_wide)
    assert [refuses_a_row(e) for e in rows] == [True] * len(rows)
    assert [refuses_the_batch(e) or is_transient(e) for e in rows] == [False] * len(rows)


async def test_a_read_only_spell_is_waited_out_and_nothing_is_rejected(
    server_dsn: str, dsn: str, conn: asyncpg.Connection
) -> None:
    name = database_of(dsn)
    admin = await asyncpg.connect(server_dsn)  # another database: ALTER DATABASE is no write here
    try:
        async with crashlog.connect(dsn, project=False, flush_interval=0.01, batch_size=50) as log:
            first = [await log.emit(observed("ro", n)) for n in range(20)]
            await log.flush(timeout=30)  # the pool holds writable sessions now
            await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            # Sessions opened from now on are read-only; the pool's open ones are replaced.
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE datname = $1 AND application_name = 'crashlog'", name)
            waiting = [await log.emit(observed("ro", n)) for n in range(20, 220)]
            await until(lambda: log.metrics().retried >= 2, "the writer retried the read-only spell")
            await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = off')
            # The pool's sessions still say read-only: the writer must replace them by itself.
            await log.flush(timeout=60)
            metrics = log.metrics()
        assert await census(conn, first + waiting) == (0, 0, 0)
        assert (metrics.committed, metrics.rejected) == (220, 0)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await admin.close()


@pytest.fixture
async def writer_login(conn: asyncpg.Connection, dsn: str) -> AsyncIterator[tuple[str, str]]:
    """(a DSN logging in as a member of a fresh writer role, that role's prefix)."""
    prefix = f"lw{uuid.uuid4().hex[:12]}"
    await create_roles(conn, prefix)
    login = f"{prefix}_bot"
    await create_login(conn, login, "writer", prefix=prefix, password="pw-Liveness-1")
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    yield urlunsplit(parts._replace(netloc=f"{login}:pw-Liveness-1@{host}")), prefix
    await conn.execute(f'DROP OWNED BY "{login}"; DROP ROLE "{login}"')
    await drop_roles(conn, prefix)


async def test_a_revoked_insert_privilege_is_waited_out_never_bisected(
    writer_login: tuple[str, str], conn: asyncpg.Connection
) -> None:
    login_dsn, prefix = writer_login
    async with crashlog.connect(login_dsn, project=False, flush_interval=0.01, batch_size=40,
                                retry_deadline=1.0) as log:
        await conn.execute(f'REVOKE INSERT ON crashlog.events FROM "{prefix}_writer"')
        ids = [await log.emit(observed("priv", n)) for n in range(100)]
        await until(lambda: log.metrics().refused_batches >= 2, "the server refused whole batches")
        assert await census(conn, ids) == (100, 0, 0)  # nothing stored, nothing set aside
        await create_roles(conn, prefix)  # what the operator runs: the grants come back
        await log.flush(timeout=60)
        metrics = log.metrics()
    assert await census(conn, ids) == (0, 0, 0)
    assert (metrics.committed, metrics.rejected) == (100, 0)


async def test_a_cancelled_lane_task_is_restarted_and_its_batch_stored_once(
    dsn: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, original = asyncio.Event(), writer_module.BatchWriter.append_with_retries
    calls = 0

    async def stuck_once(self, batch, **options):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:  # the first batch hangs in flight until its task is cancelled
            entered.set()
            await asyncio.Event().wait()
        await original(self, batch, **options)

    monkeypatch.setattr(writer_module.BatchWriter, "append_with_retries", stuck_once)
    async with crashlog.connect(dsn, project=False, writer_lanes=1, flush_interval=0.01) as log:
        ids = [await log.emit(observed("lane", n)) for n in range(100)]
        await asyncio.wait_for(entered.wait(), 30)
        lane_task = next(t for t in asyncio.all_tasks() if t.get_name() == "crashlog-writer-0")
        lane_task.cancel()
        await log.flush(timeout=30)
        metrics = log.metrics()
    assert metrics.writer_restarts == 1
    assert await census(conn, ids) == (0, 0, 0)
    assert metrics.committed == 100


async def test_a_lane_that_keeps_failing_fails_the_writer_and_every_call_says_why(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self, batch, **options):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug in the lane")

    monkeypatch.setattr(writer_module._Lane, "_write", broken)
    log = await crashlog.connect(dsn, project=False, writer_lanes=1, flush_interval=0.01,
                                 max_lane_restarts=2, lane_restart_window=60)
    await log.emit(observed("doomed", 1))
    with pytest.raises(crashlog.WriterFailed) as failed:
        await log.flush(timeout=30)  # fails instead of waiting
    message = str(failed.value)
    assert "a bug in the lane" in message and "max_lane_restarts=2" in message, message
    assert log.metrics().writer_restarts == 2
    with pytest.raises(crashlog.WriterFailed):
        await log.emit(observed("doomed", 2))
    with pytest.raises(crashlog.WriterFailed):
        await log.sync(timeout=30)
    with pytest.raises(crashlog.WriterFailed):
        await log.aclose(timeout=5)


async def test_without_a_spool_an_unreachable_server_still_fails_connect() -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/crashlog"
    with pytest.raises(crashlog.ConnectFailed):
        await crashlog.connect(down, project=False, connect_timeout=1)


async def test_with_a_spool_connect_succeeds_while_the_server_is_away(tmp_path: Path) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/crashlog"
    log = await crashlog.connect(down, spool_dir=str(tmp_path / "spool"), connect_timeout=1,
                                 flush_interval=0.01)
    try:
        for n in range(30):
            await log.emit(observed("early", n))
        await log.flush(timeout=30)  # acknowledged: on disk, for the server to get later
        assert log.metrics().spooled == 30
        with pytest.raises(crashlog.NotFlushed):
            await log.sync(timeout=0.2)  # not projected: the server is still away
    finally:
        await log.aclose(timeout=10)
    assert crashlog.spool.inspect_folder(tmp_path / "spool").events == 30


async def test_a_failed_writers_events_are_spooled_at_close_and_replayed(
    dsn: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def broken(self, batch, **options):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug in the lane")

    with monkeypatch.context() as patched:
        patched.setattr(writer_module._Lane, "_write", broken)
        log = await crashlog.connect(dsn, project=False, writer_lanes=1, flush_interval=0.01,
                                     max_lane_restarts=1, lane_restart_window=60,
                                     spool_dir=str(tmp_path))
        ids = [await log.emit(observed("kept", n)) for n in range(5)]
        with pytest.raises(crashlog.WriterFailed):
            await log.flush(timeout=30)
        assert await census(conn, ids) == (5, 0, 0)  # the lane never wrote them
        with pytest.raises(crashlog.WriterFailed):
            await log.aclose(timeout=5)
    # Spooled at close, and the spool's replay at close (the server is up) stored them once.
    assert await census(conn, ids) == (0, 0, 0)
