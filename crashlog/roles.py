"""Least-privilege roles for a crashlog database: a writer, a projector, a read-only analyst
and a subscriber.

``create_roles`` is what ``crashlog roles`` runs, as an administrator (a role with
CREATEROLE that owns the crashlog schema, typically the one that ran the migrations).
The SQL lives in the migrations (``crashlog.setup_roles``, last replaced by
``sql/014_subscriber_role.sql``): names are quoted on
the server with ``format('%I')``, nothing is built from input text here.

What each role may do, and what it is refused, is in that file and proven by
``tests/integration/test_roles.py``. Bots log in as members of the writer role and connect with
``project=False`` (the writer may not read the log, which projections need).
``create_login`` adds a login to one of the roles; its password goes to the server
only as a SCRAM-SHA-256 verifier, never in clear text (so not into a server log).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from typing import Literal

import asyncpg
import attrs

from crashlog.errors import RolesError

_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
#: The roles, by the suffix of their names.
KINDS = ("writer", "projector", "analyst", "subscriber")


@attrs.frozen
class Roles:
    """The names of the roles ``create_roles`` set up."""

    writer: str
    projector: str
    analyst: str
    subscriber: str


async def create_roles(conn: asyncpg.Connection, prefix: str = "crashlog") -> Roles:
    """Create (or complete) ``<prefix>_writer``, ``_projector``, ``_analyst`` and ``_subscriber``.

    Idempotent: run it again after new migrations so new tables get their grants.
    The migrations must be applied first. Raises ``RolesError`` naming what is wrong.
    """
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise RolesError(
            f"invalid role prefix {prefix!r}: lowercase letters, digits and _, at most 41,"
            " not starting with a digit"
        )
    if await conn.fetchval("SELECT to_regprocedure('crashlog.setup_roles(text)')") is None:
        raise RolesError("crashlog.setup_roles is missing: run the migrations first (crashlog migrate)")
    try:
        async with conn.transaction():
            rows = await conn.fetch("SELECT role, purpose FROM crashlog.setup_roles($1)", prefix)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise RolesError(
            f"not allowed to set up roles ({exc}); connect as a role with CREATEROLE that owns"
            " the crashlog schema"
        ) from None
    names = {str(r["role"]).rsplit("_", 1)[1]: str(r["role"]) for r in rows}
    return Roles(**{kind: names[kind] for kind in KINDS})


async def drop_roles(conn: asyncpg.Connection, prefix: str = "crashlog") -> None:
    """Remove the roles and everything granted to them in this database.

    Tables the projector owns go back to the current user first. Roles are cluster-wide:
    drop them only once no other database still uses them.
    """
    if not _PREFIX.match(prefix):
        raise RolesError(f"invalid role prefix {prefix!r}")
    async with conn.transaction():
        for suffix in KINDS:
            name = f"{prefix}_{suffix}"
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
                statement = await conn.fetchval(
                    "SELECT format('REASSIGN OWNED BY %1$I TO CURRENT_USER; DROP OWNED BY %1$I;"
                    " DROP ROLE %1$I', $1::text)",
                    name,
                )
                await conn.execute(statement)


Kind = Literal["writer", "projector", "analyst", "subscriber"]


async def create_login(
    conn: asyncpg.Connection,
    name: str,
    kind: Kind,
    *,
    prefix: str = "crashlog",
    password: str | None = None,
) -> None:
    """Create login ``name``, a member of ``<prefix>_<kind>``.

    A projector login starts every session as the projector role (``ALTER ROLE ... SET
    role``), so the tables a rebuild creates are owned by the group, not by one login,
    and the analyst's default SELECT applies to them.
    """
    if kind not in KINDS:
        raise RolesError(f"invalid kind {kind!r}: one of {', '.join(KINDS)}")
    if not _PREFIX.match(prefix):
        raise RolesError(f"invalid role prefix {prefix!r}")
    group = f"{prefix}_{kind}"
    verifier = None if password is None else scram_sha256(password)
    statement = await conn.fetchval(
        "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I', $1::text, $2::text, $3::text)",
        name, verifier, group,
    )
    async with conn.transaction():
        await conn.execute(statement)
        if kind == "projector":
            await conn.execute(await conn.fetchval(
                "SELECT format('ALTER ROLE %I SET role = %L', $1::text, $2::text)", name, group
            ))


def scram_sha256(password: str, *, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677)."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
