"""Schema migrations: numbered plain-SQL files, applied in order, once, under an advisory lock.

Each applied file is recorded with its SHA-256 in ``crashlog.schema_migrations``.
A recorded file whose text has since changed is an error, never a silent re-run.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg
import attrs

from crashlog.errors import MigrationError
from crashlog.resources import resource_dir

# One key for every crashlog process migrating the same database ("crashlog" in ASCII).
MIGRATION_LOCK_KEY = 0x63726173686C6F67
_FILE_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def sql_dir() -> Path:
    """Where the migration files are: inside the installed package, else the source tree's ``sql/``."""
    return resource_dir("sql")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Every migration file, in version order."""
    directory = directory or sql_dir()
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        found.append(Migration(int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a number in {directory}")
    return found


async def applied_migrations(conn: asyncpg.Connection) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of what this database has applied."""
    if await conn.fetchval("SELECT to_regclass('crashlog.schema_migrations')") is None:
        return {}
    rows = await conn.fetch("SELECT version, name, checksum FROM crashlog.schema_migrations")
    return {r["version"]: (r["name"], r["checksum"]) for r in rows}


async def pending_migrations(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[Migration]:
    """The migrations still to apply; raises if an applied one has changed or vanished."""
    migrations = load_migrations() if migrations is None else migrations
    applied = await applied_migrations(conn)
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in applied.items():
        current = known.get(version)
        if current is None:
            raise MigrationError(f"{name} is applied to this database but missing from this code")
        if current.checksum != checksum:
            raise MigrationError(
                f"{name} was changed after it was applied (checksum {checksum[:12]} in the "
                f"database, {current.checksum[:12]} on disk); add a new migration instead"
            )
    return [m for m in migrations if m.version not in applied]


async def migrate(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns those applied.

    Safe to call from several processes at once: the advisory lock makes the
    others wait, and they then find nothing pending.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        todo = await pending_migrations(conn, migrations)
        for migration in todo:
            await _apply(conn, migration)
        return todo
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    """Run one file and record it, in one transaction: it applies whole or not at all."""
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO crashlog.schema_migrations (version, name, checksum)"
                " VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as error:
        raise MigrationError(f"{migration.name} failed and was rolled back: {error}") from error
