"""Who may use a rebuilt table: its owner and grants carried over to the shadow that replaces
it, and what must refuse a rebuild before it starts.

Promises:
- ``check_rebuildable`` raises ``RebuildRefused`` before anything is created when a table to
  rebuild has a dependent view (or a foreign key from another table) that its ``DROP TABLE``
  would trip over, naming it; or when the role running the rebuild cannot give the new
  table the old one's owner and grants, naming the role to run it as. crashlog's own views
  (``OWN_VIEWS``, made by its migrations) are not refused: the swap recreates them.
- ``own_views(conn, table)`` names crashlog's own views over ``table`` with their definitions,
  read before the swap; ``replace_views`` recreates them over the table now of that name
  with ``CREATE OR REPLACE VIEW`` (the same view: its owner, grants, comment, and the
  users' views over it, are kept), as the view's owner.
- ``copy_access(conn, table, shadow)``, in the swap's transaction before the old table is
  dropped, gives the shadow the old table's owner and exactly its table and column
  privileges (grantee, privilege, grant option, grantor), read from ``pg_class.relacl`` and
  ``pg_attribute.attacl``: readers and the projector keep their access after a rebuild, run
  by whoever ran it.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import attrs

from crashlog.errors import RebuildRefused

#: crashlog's own views over read tables (migration 016): a rebuild's swap recreates them.
OWN_VIEWS: frozenset[str] = frozenset({"crashlog.round_outcomes"})

# Views over the tables $1 (and tables whose foreign keys reference them), outside the set.
_DEPENDENTS = """
SELECT DISTINCT format('%I.%I', v.relnamespace::regnamespace, v.relname) AS dependent,
       'view' AS kind, t.oid::regclass::text AS of
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
JOIN pg_class t ON t.oid = d.refobjid
WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = ANY($1::regclass[]) AND v.oid <> d.refobjid
UNION
SELECT DISTINCT format('%I.%I', c.relnamespace::regnamespace, c.relname),
       'foreign key of table', con.confrelid::regclass::text
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
WHERE con.contype = 'f' AND con.confrelid = ANY($1::regclass[])
  AND con.conrelid <> ALL($1::regclass[])
ORDER BY 1
"""

# The roles whose part a rebuild of table $1 must play: its owner and every grantor, and
# whether the current role can act as each (a superuser can act as anyone).
_ROLES_NEEDED = """
WITH acl AS (
    SELECT c.relowner AS owner, a.grantor
    FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
    WHERE c.oid = $1::regclass
    UNION ALL
    SELECT c.relowner, a.grantor
    FROM pg_class c JOIN pg_attribute att ON att.attrelid = c.oid, aclexplode(att.attacl) a
    WHERE c.oid = $1::regclass AND att.attacl IS NOT NULL
)
SELECT DISTINCT r.rolname AS role, pg_has_role(current_user, r.oid, 'MEMBER') AS can
FROM (SELECT owner AS oid FROM acl UNION SELECT grantor FROM acl
      UNION SELECT relowner FROM pg_class WHERE oid = $1::regclass) AS needed
JOIN pg_roles r ON r.oid = needed.oid
"""

# Table privileges of $1 (NULL relacl: the owner's defaults), the owner's grants first.
_TABLE_ACL = """
SELECT pg_get_userbyid(c.relowner) AS owner, NULL::text AS column_name,
       a.grantor = c.relowner AS by_owner, pg_get_userbyid(a.grantor) AS grantor,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
           AS grantee,
       a.privilege_type, a.is_grantable, a.ordinality
FROM pg_class c,
     aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) WITH ORDINALITY a
WHERE c.oid = $1::regclass
"""

# Column privileges of $1.
_COLUMN_ACL = """
SELECT pg_get_userbyid(c.relowner) AS owner, quote_ident(att.attname) AS column_name,
       a.grantor = c.relowner AS by_owner, pg_get_userbyid(a.grantor) AS grantor,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
           AS grantee,
       a.privilege_type, a.is_grantable, a.ordinality
FROM pg_class c JOIN pg_attribute att ON att.attrelid = c.oid,
     aclexplode(att.attacl) WITH ORDINALITY a
WHERE c.oid = $1::regclass AND att.attacl IS NOT NULL AND att.attnum > 0
"""

# Every grantee of $1's table privileges (to clear the shadow's own before copying).
_GRANTEES = """
SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                     ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee
FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
WHERE c.oid = $1::regclass
"""


async def check_rebuildable(conn: asyncpg.Connection, tables: Sequence[str]) -> None:
    """Refuse (``RebuildRefused``) a rebuild of ``tables`` (qualified names) that could not
    be swapped in, or would take access away; see the module's promises."""
    found = [r for r in await conn.fetch(_DEPENDENTS, list(tables))
             if not (r["kind"] == "view" and r["dependent"] in OWN_VIEWS)]
    views = [v for t in tables for v in await own_views(conn, t)]
    if found:
        names = "; ".join(f"{r['kind']} {r['dependent']} (on {r['of']})" for r in found)
        raise RebuildRefused(
            f"cannot rebuild: {names} depends on a table to rebuild, and the swap drops the "
            "table; drop it first (and create it again after the rebuild)")
    for table in [*tables, *(v.name for v in views)]:
        refused = [r["role"] for r in await conn.fetch(_ROLES_NEEDED, table) if not r["can"]]
        if refused:
            user = await conn.fetchval("SELECT current_user")
            raise RebuildRefused(
                f"cannot rebuild {table} as {user}: the rebuilt table must belong to and be "
                f"granted as {', '.join(sorted(refused))}, which {user} cannot act as; "
                f"run the rebuild as {sorted(refused)[0]} (or a superuser)")


async def copy_access(conn: asyncpg.Connection, table: str, shadow: str) -> None:
    """Give ``shadow`` the owner and every table and column privilege of ``table`` (both
    qualified), within the caller's transaction."""
    grants = [*await conn.fetch(_TABLE_ACL, table), *await conn.fetch(_COLUMN_ACL, table)]
    owner = await conn.fetchval(
        "SELECT quote_ident(pg_get_userbyid(relowner)) FROM pg_class WHERE oid = $1::regclass",
        table)
    await conn.execute(f"ALTER TABLE {shadow} OWNER TO {owner}")
    for row in await conn.fetch(_GRANTEES, shadow):  # what default privileges gave it
        await conn.execute(f"REVOKE ALL ON {shadow} FROM {row['grantee']}")
    # The owner's grants first: another grantor holds its grant option from them.
    for row in sorted(grants, key=lambda r: (not r["by_owner"], r["ordinality"])):
        column = f" ({row['column_name']})" if row["column_name"] else ""
        option = " WITH GRANT OPTION" if row["is_grantable"] else ""
        statement = f"GRANT {row['privilege_type']}{column} ON {shadow} TO {row['grantee']}{option}"
        if row["by_owner"]:  # a grant by a superuser or the owner is recorded as the owner's
            await conn.execute(statement)
            continue
        grantor = await conn.fetchval("SELECT quote_ident($1::text)", row["grantor"])
        await conn.execute(f"SET LOCAL ROLE {grantor}")
        try:
            await conn.execute(statement)
        finally:
            await conn.execute("RESET ROLE")


@attrs.frozen
class OwnView:
    """One of crashlog's own views over a table being rebuilt, as it is defined now."""

    name: str
    owner: str
    definition: str


# crashlog's own views over the table $1, with the definition and the owner to recreate them as.
_OWN_VIEWS = """
SELECT DISTINCT format('%I.%I', v.relnamespace::regnamespace, v.relname) AS name,
       quote_ident(pg_get_userbyid(v.relowner)) AS owner, pg_get_viewdef(v.oid) AS definition
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = $1::regclass AND v.oid <> d.refobjid
  AND format('%I.%I', v.relnamespace::regnamespace, v.relname) = ANY($2::text[])
ORDER BY 1
"""


async def own_views(conn: asyncpg.Connection, table: str) -> list[OwnView]:
    """crashlog's own views over ``table`` (qualified), defined as they are now: read them
    before the table is renamed away (a definition names the table it was read over)."""
    rows = await conn.fetch(_OWN_VIEWS, table, sorted(OWN_VIEWS))
    return [OwnView(r["name"], r["owner"], r["definition"]) for r in rows]


async def replace_views(conn: asyncpg.Connection, views: Sequence[OwnView]) -> None:
    """Point ``views`` at the tables their definitions name now, within the caller's
    transaction, each as its owner."""
    current = await conn.fetchval("SELECT quote_ident(current_user)")
    for view in views:
        if view.owner != current:
            await conn.execute(f"SET LOCAL ROLE {view.owner}")
        try:
            await conn.execute(f"CREATE OR REPLACE VIEW {view.name} AS {view.definition}")
        finally:
            if view.owner != current:
                await conn.execute("RESET ROLE")
