"""Registering users' projections: loading ``module:attribute``, checking them against the
built-ins and the database, creating their tables, dropping one.

Promises:
- ``load(target)`` / ``from_environment()`` (``CRASHLOG_PROJECTIONS``, comma-separated
  ``module:attribute``) return the projections named, or raise ``InvalidProjection`` naming
  the module or attribute that is not there or not a projection made by ``@projection``.
- ``register(projections)`` refuses a duplicate name (among them or a built-in's, old names
  included: ``ALIASES``) and a table
  name a built-in owns or another of them declares; ``check(conn, projections)`` also refuses a
  table PostgreSQL refuses (tried in a temporary schema and rolled back), a table of schema
  crashlog that is not the projection's own, and a declaration changed without a new version.
  Each names the projection; nothing is created.
- ``prepare(conn, p)`` creates a projection's tables (and indexes) from its declaration, in a
  short transaction of their own, the first time it runs, and its checkpoint with the
  declaration's checksum.
- ``drop(conn, name)`` removes a user's projection no runner holds: its tables, shadows,
  checkpoint and ``projection_errors`` rows. A built-in (or an old name of one) is refused.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping, Sequence

import asyncpg

from crashlog.errors import InvalidProjection, UnknownProjection
from crashlog.projections import ALIASES, NAMES, PROJECTIONS, checkpoints, leases
from crashlog.projections.base import Projection, shadow_name

#: The environment variable naming projections to register (``module:attr,module:attr``).
ENVIRONMENT = "CRASHLOG_PROJECTIONS"

_registered: dict[str, Projection] = {}

_STORED = """
SELECT version, declaration, tables FROM crashlog.projection_checkpoints WHERE name = $1
"""
_EXISTS = "SELECT to_regclass(format('crashlog.%I', $1::text)) IS NOT NULL"
# One preparer of a projection at a time (two runners starting together).
_SERIALISE = "SELECT pg_advisory_xact_lock(hashtext('crashlog.projection:' || $1))"


def load(target: str) -> Projection:
    """The projection at ``module:attribute``; ``InvalidProjection`` names what is wrong."""
    module_name, sep, attribute = target.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidProjection(f"invalid projection target {target!r}: module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidProjection(
            f"projection target {target!r}: module {module_name!r} cannot be imported: {error}"
        ) from None
    value = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise InvalidProjection(
                f"projection target {target!r}: module {module_name!r} has no attribute "
                f"{attribute!r}")
        value = getattr(value, part)
    if not isinstance(value, Projection) or value.declaration is None:
        raise InvalidProjection(
            f"projection target {target!r} is {type(value).__name__}, not a projection made "
            "with @projection")
    return value


def load_all(targets: Iterable[str]) -> list[Projection]:
    """``load`` of each non-empty target (entries may be comma-separated)."""
    return [load(t) for part in targets for t in part.split(",") if t.strip()]


def from_environment(env: Mapping[str, str] | None = None) -> list[Projection]:
    """The projections ``CRASHLOG_PROJECTIONS`` names (none if it is unset or empty)."""
    return load_all([(os.environ if env is None else env).get(ENVIRONMENT, "")])


def register(projections: Sequence[Projection]) -> list[Projection]:
    """Check ``projections`` against the built-ins and each other, then remember them (for
    ``crashlog.reader``'s catalogue); returns them. See the module's promises."""
    builtin_tables = {t: p.name for p in PROJECTIONS for t in p.tables}
    names: dict[str, Projection] = {}
    owners: dict[str, str] = {}
    for p in projections:
        if not isinstance(p, Projection) or p.declaration is None:
            raise InvalidProjection(f"{p!r} is not a projection made with @projection")
        if names.get(p.name) is p:  # the same one named twice (--with and the environment)
            continue
        if p.name in NAMES or p.name in ALIASES or p.name in names:
            what = ("a built-in projection" if p.name in NAMES else
                    f"built-in projection {ALIASES[p.name]} (its old name)" if p.name in ALIASES
                    else "another one registered")
            raise InvalidProjection(f"duplicate projection name {p.name!r}: {what} has it")
        names[p.name] = p
        for table in p.tables:
            other = builtin_tables.get(table) or owners.get(table)
            if other:
                raise InvalidProjection(
                    f"projection {p.name!r}: table name {table!r} is already used by "
                    f"projection {other}; pick another")
            owners[table] = p.name
    _registered.update(names)
    return list(names.values())


def registered() -> list[Projection]:
    """The users' projections registered in this process so far."""
    return list(_registered.values())


async def check(conn: asyncpg.Connection, projections: Sequence[Projection]) -> None:
    """``register``, then what only the database can tell (see the module's promises)."""
    register(projections)
    for p in projections:
        stored = await conn.fetchrow(_STORED, p.name)
        refuse_changed(p, stored)
        own = set(stored["tables"] or ()) if stored else set()
        for table in p.tables:
            if table not in own and await conn.fetchval(_EXISTS, table):
                raise InvalidProjection(
                    f"projection {p.name!r}: table crashlog.{table} already exists and is not "
                    "this projection's; pick another name")
        await _try_declaration(conn, p)


def refuse_changed(p: Projection, stored: asyncpg.Record | None) -> None:
    """``InvalidProjection`` if ``p``'s stored checkpoint, at its version, was made from
    another declaration."""
    assert p.declaration is not None
    if stored is None or stored["version"] != p.version:
        return
    if stored["declaration"] not in (None, p.declaration.checksum()):
        raise InvalidProjection(
            f"projection {p.name!r}: its declaration (tables, columns or indexes) changed "
            f"without a new version (still {p.version}); bump version= to rebuild it")


async def _try_declaration(conn: asyncpg.Connection, p: Projection) -> None:
    """Create ``p``'s tables in the session's temporary schema and roll them back."""
    assert p.declaration is not None
    probes = {t: f"pg_temp.{t}" for t in p.tables}
    tx = conn.transaction()
    await tx.start()
    try:
        for statement in p.declaration.statements(probes):
            try:
                await conn.execute(statement)  # pg_temp.t: a temporary table
            except asyncpg.PostgresError as error:
                raise InvalidProjection(
                    f"projection {p.name!r}: PostgreSQL refuses its declaration "
                    f"({statement}): {error}") from None
    finally:
        await tx.rollback()


async def prepare(conn: asyncpg.Connection, p: Projection) -> None:
    """Create ``p``'s missing tables from its declaration and its checkpoint, in one short
    transaction, unless its stored version differs (a rebuild makes them then)."""
    assert p.declaration is not None
    async with conn.transaction():
        await conn.execute(_SERIALISE, p.name)
        stored = await conn.fetchrow(_STORED, p.name)
        refuse_changed(p, stored)
        if stored is not None and stored["version"] != p.version:
            return
        for table in p.tables:
            if not await conn.fetchval(_EXISTS, table):
                for statement in p.declaration.statements(p.live_tables()):
                    if f" {p.live_tables()[table]} " in f" {statement} ":
                        await conn.execute(statement)
        await checkpoints.ensure(conn, p)


async def drop(conn: asyncpg.Connection, name: str) -> list[str]:
    """Remove the user's projection ``name``; returns the tables dropped.

    Raises ``InvalidProjection`` for a built-in or one a runner or a rebuild holds now (stop
    it first), ``UnknownProjection`` if no projection has that name."""
    if name in NAMES or name in ALIASES:
        what = f" (the old name of {ALIASES[name]})" if name in ALIASES else ""
        raise InvalidProjection(f"projection {name!r} is a built-in{what}: it cannot be dropped")
    stored = await conn.fetchrow(_STORED, name)
    if stored is None:
        raise UnknownProjection(f"no projection named {name!r} in this database")
    for kind in (leases.Lease.APPLY, leases.Lease.REBUILD):
        if not await leases.take(conn, [name], kind):
            who = await leases.holders(conn, [name], kind)
            raise InvalidProjection(f"projection {name!r} is held by a runner ({who}): stop it first")
    tables = list(stored["tables"] or ())
    async with conn.transaction():
        for table in tables:
            for dropped in (table, shadow_name(table)):
                await conn.execute(f'DROP TABLE IF EXISTS crashlog."{dropped}"')
        await conn.execute("DELETE FROM crashlog.projection_errors WHERE projection = $1", name)
        await conn.execute("DELETE FROM crashlog.projection_checkpoints WHERE name = $1", name)
    _registered.pop(name, None)
    return tables


__all__ = [
    "ENVIRONMENT", "check", "drop", "from_environment", "load", "load_all", "prepare",
    "register", "registered",
]
