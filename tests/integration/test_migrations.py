"""Migrations: applied once each, even by processes starting together; an edited applied file,
a vanished one or a pending one (when migrating is off) stops crashlog with the file named."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

import crashlog
from crashlog import migrations
from crashlog.events import BotErrorRaised


async def recorded(dsn: str) -> list[tuple[int, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT version, name, checksum FROM crashlog.schema_migrations ORDER BY version")
    finally:
        await conn.close()
    return [(r["version"], r["name"], r["checksum"]) for r in rows]


def expected() -> list[tuple[int, str, str]]:
    return [(m.version, m.name, m.checksum) for m in migrations.load_migrations()]


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    """A private copy of the migration files, to edit."""
    directory = tmp_path / "sql"
    shutil.copytree(migrations.sql_dir(), directory)
    return directory


async def test_concurrent_connects_on_a_new_database_both_succeed(empty_dsn: str) -> None:
    loggers = [crashlog.connect(empty_dsn, flush_interval=0.01) for _ in range(3)]
    await asyncio.gather(*(logger.open() for logger in loggers))
    try:
        assert await recorded(empty_dsn) == expected()
        # Each one works: the schema they raced to create is whole.
        for n, logger in enumerate(loggers):
            await logger.emit(BotErrorRaised(bot_id=f"b{n}", error_type="E", message="up"))
            await logger.flush()
    finally:
        await asyncio.gather(*(logger.aclose() for logger in loggers))
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM crashlog.events") == len(loggers)
    finally:
        await conn.close()


async def test_concurrent_migrate_calls_apply_each_migration_once(empty_dsn: str) -> None:
    conns = [await asyncpg.connect(empty_dsn) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrations.migrate(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    names = sorted(m.name for batch in applied for m in batch)
    assert names == [name for _, name, _ in expected()]  # all applied, by exactly one caller
    assert await recorded(empty_dsn) == expected()


async def test_migrating_again_applies_nothing(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert [m.name for m in await migrations.migrate(conn)] == [n for _, n, _ in expected()]
        assert await migrations.migrate(conn) == []
    finally:
        await conn.close()
    assert await recorded(empty_dsn) == expected()


async def test_an_edited_applied_migration_is_refused_naming_the_file(
    empty_dsn: str, sql_copy: Path
) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrations.migrate(conn, migrations.load_migrations(sql_copy))
        first = sorted(sql_copy.glob("001_*.sql"))[0]
        first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
        with pytest.raises(crashlog.MigrationError) as info:
            await migrations.migrate(conn, migrations.load_migrations(sql_copy))
        assert first.name in str(info.value)
        # The refusal released the lock: the untouched files still migrate (from another session).
        other = await asyncpg.connect(empty_dsn)
        try:
            assert await asyncio.wait_for(migrations.migrate(other), 10) == []
        finally:
            await other.close()
    finally:
        await conn.close()


async def test_connect_refuses_a_database_whose_applied_migration_changed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE crashlog.schema_migrations SET checksum = 'edited' WHERE version = 1")
    finally:
        await conn.close()
    with pytest.raises(crashlog.MigrationError, match="001_event_log.sql"):
        async with crashlog.connect(dsn):
            pass


async def test_an_applied_migration_missing_from_the_code_is_refused(
    empty_dsn: str, sql_copy: Path
) -> None:
    (sql_copy / "999_later_feature.sql").write_text("CREATE TABLE crashlog.later (id int);\n")
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrations.migrate(conn, migrations.load_migrations(sql_copy))
        with pytest.raises(crashlog.MigrationError, match="999_later_feature.sql"):
            await migrations.migrate(conn)  # older code, without 999
    finally:
        await conn.close()


async def test_a_new_migration_file_is_applied_in_order_and_recorded(
    dsn: str, sql_copy: Path
) -> None:
    (sql_copy / "998_second.sql").write_text("CREATE TABLE crashlog.second (id int);\n")
    (sql_copy / "997_first.sql").write_text("CREATE TABLE crashlog.first (id int);\n")
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrations.migrate(conn, migrations.load_migrations(sql_copy))
        assert [m.name for m in applied] == ["997_first.sql", "998_second.sql"]
        assert await conn.fetchval("SELECT to_regclass('crashlog.second')") is not None
    finally:
        await conn.close()
    assert [name for _, name, _ in await recorded(dsn)][-2:] == ["997_first.sql", "998_second.sql"]


async def test_a_failing_migration_is_not_recorded_and_names_the_file(
    dsn: str, sql_copy: Path
) -> None:
    (sql_copy / "998_broken.sql").write_text(
        "CREATE TABLE crashlog.half_done (id int);\nSELEC oops;\n")
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(crashlog.MigrationError, match="998_broken.sql"):
            await migrations.migrate(conn, migrations.load_migrations(sql_copy))
        # Nothing of it stayed, and the advisory lock is free again.
        assert await conn.fetchval("SELECT to_regclass('crashlog.half_done')") is None
        assert await recorded(dsn) == expected()
        assert await asyncio.wait_for(migrations.migrate(conn), 10) == []
    finally:
        await conn.close()


def test_misnamed_migration_files_are_refused(sql_copy: Path) -> None:
    (sql_copy / "2_no_padding.sql").write_text("SELECT 1;\n")
    with pytest.raises(crashlog.MigrationError, match="2_no_padding.sql"):
        migrations.load_migrations(sql_copy)


async def test_connect_without_migrating_refuses_an_empty_database_naming_pending_files(
    empty_dsn: str,
) -> None:
    with pytest.raises(crashlog.MigrationError) as info:
        async with crashlog.connect(empty_dsn, migrate=False):
            pass
    for _, name, _ in expected():
        assert name in str(info.value)
    conn = await asyncpg.connect(empty_dsn)
    try:  # it refused without touching the database
        assert await conn.fetchval("SELECT to_regnamespace('crashlog')") is None
    finally:
        await conn.close()


async def test_connect_without_migrating_works_on_a_migrated_database(dsn: str) -> None:
    async with crashlog.connect(dsn, migrate=False) as log:
        await log.emit(BotErrorRaised(bot_id="b", error_type="E", message="m"))
        await log.flush()
        assert log.metrics().committed == 1
