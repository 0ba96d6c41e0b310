"""Schema migrations: numbered plain-SQL files, applied in order, once, under an advisory lock.

The lock is waited for at most ``lock_wait`` seconds (``LOCK_WAIT`` by default), then
``MigrationError`` names who holds it; and it is taken only when something is pending, so a
session holding that key cannot hold up a ``connect()`` that has nothing to migrate.

Each applied file is recorded with its SHA-256 in ``crashlog.schema_migrations``.
A recorded file whose text has since changed is an error, never a silent re-run.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path

import asyncpg
import attrs

from crashlog.errors import MigrationError
from crashlog.resources import resource_dir

# One key for every crashlog process migrating the same database ("crashlog" in ASCII).
MIGRATION_LOCK_KEY = 0x63726173686C6F67
#: Seconds ``migrate`` waits for another process's migration lock by default.
LOCK_WAIT = 60.0
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
    conn: asyncpg.Connection,
    migrations: list[Migration] | None = None,
    *,
    lock_wait: float = LOCK_WAIT,
) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns those applied.

    Safe to call from several processes at once: the advisory lock makes the others
    wait, and they then find nothing pending. The wait is at most ``lock_wait`` seconds;
    then ``MigrationError`` names the session holding the lock (pid, role, application).
    With nothing pending no lock is taken at all.
    """
    if not await pending_migrations(conn, migrations):
        return []
    await _lock(conn, lock_wait)
    try:
        todo = await pending_migrations(conn, migrations)
        for migration in todo:
            await _apply(conn, migration)
        return todo
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


# Who holds the migration key: a bigint advisory key is classid (high half), objid (low).
_LOCK_HOLDER = """
SELECT a.pid, a.usename AS role, a.application_name AS application,
       extract(epoch FROM clock_timestamp() - a.backend_start)::float8 AS connected
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
"""


async def _lock(conn: asyncpg.Connection, lock_wait: float) -> None:
    """Take the migration lock, polling, for at most ``lock_wait`` seconds."""
    deadline = time.monotonic() + lock_wait
    pause = 0.05
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY):
        if time.monotonic() >= deadline:
            raise MigrationError(
                f"another session has held the migration lock for over {lock_wait:g} s: "
                f"{await lock_holder(conn)}; migrations not applied (end that session, or try again)")
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 1.0)


async def lock_holder(conn: asyncpg.Connection) -> str:
    """Who holds the migration lock, for a message ("nobody" if it is free)."""
    row = await conn.fetchrow(
        _LOCK_HOLDER, MIGRATION_LOCK_KEY >> 32, MIGRATION_LOCK_KEY & 0xFFFFFFFF)
    if row is None:
        return "nobody"
    return (f"pid {row['pid']} (role {row['role'] or '?'}, application "
            f"{row['application'] or '?'!r}, connected {row['connected'] or 0:.0f} s ago)")


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
