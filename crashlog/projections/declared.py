"""Swapping in a user's rebuilt tables, made from its declaration (``Projection.declaration``).

A built-in's shadow is a copy of its live table (``rebuild._swap_table`` refuses a table whose
columns moved meanwhile); a user's shadow is made from the projection's *current* declaration,
so a new version may change its columns and indexes, or its tables may not exist yet.

Promises: ``swap`` replaces a user's table by its shadow within the caller's transaction (the
shadow takes the old table's owner and grants; a user's view on it refuses the swap, naming
it); the shadow's indexes lose the ``__rebuild`` of their names.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from crashlog.projections import access
from crashlog.projections.base import Projection, shadow_name

_EXISTS = "SELECT to_regclass(format('crashlog.%I', $1::text)) IS NOT NULL"
_INDEX_NAMES = "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = $1::regclass"


async def exists(conn: asyncpg.Connection, table: str) -> bool:
    """Whether ``crashlog.table`` exists."""
    return bool(await conn.fetchval(_EXISTS, table))


async def existing(conn: asyncpg.Connection, projections: Sequence[Projection]) -> list[str]:
    """The live tables of ``projections``, qualified, that exist (a user's projection may not
    have made its tables yet, or declares new ones in a new version)."""
    return [f"crashlog.{t}" for p in projections for t in p.tables
            if p.declaration is None or await exists(conn, t)]


async def create_shadows(conn: asyncpg.Connection, p: Projection) -> list[str]:
    """Make ``p``'s shadows (and their indexes) from its declaration; returns them."""
    assert p.declaration is not None
    for statement in p.declaration.statements(p.shadow_tables()):
        await conn.execute(statement)
    return list(p.shadow_tables().values())


def remembered(p: Projection) -> tuple[str | None, list[str] | None]:
    """What ``p``'s checkpoint keeps of its declaration: its checksum and its tables."""
    if p.declaration is None:
        return None, None
    return p.declaration.checksum(), list(p.tables)


async def swap(conn: asyncpg.Connection, p: Projection, obsolete: Sequence[str]) -> None:
    """Replace each of ``p``'s tables by its shadow, and drop ``obsolete`` (tables its stored
    version had and this one does not declare)."""
    for table in p.tables:
        await _swap_table(conn, table)
    for table in obsolete:
        await conn.execute(f'DROP TABLE IF EXISTS crashlog."{table}"')


async def _swap_table(conn: asyncpg.Connection, table: str) -> None:
    """Replace a user's ``crashlog.table`` (if it exists yet) by its shadow."""
    shadow = shadow_name(table)
    if await exists(conn, table):
        await access.check_rebuildable(conn, [f"crashlog.{table}"])
        await access.copy_access(conn, f"crashlog.{table}", f"crashlog.{shadow}")
        await conn.execute(f"DROP TABLE crashlog.{table}")
    await conn.execute(f"ALTER TABLE crashlog.{shadow} RENAME TO {table}")
    for qualified in await conn.fetch(_INDEX_NAMES, f"crashlog.{table}"):
        name = qualified[0].rpartition(".")[2].strip('"')
        if name.startswith(shadow):
            renamed = table + name[len(shadow):]
            await conn.execute(f'ALTER INDEX crashlog."{name}" RENAME TO "{renamed}"')
