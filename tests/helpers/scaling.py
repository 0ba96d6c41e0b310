"""The rules docs/scaling.md states for the schema under Citus, read from the page itself and
checked against a database's catalogue, so the page and the schema cannot drift apart.

Promises:
- ``placements(text)`` reads the table under "### Where each table goes" (columns fixed:
  table, class, unique keys today, under Citus) and ``exceptions(text)`` the one under
  "### Unique keys without `bot_id`" (index, table, columns, why it holds on one server,
  under Citus). Each raises ``ValueError`` saying what is wrong: a missing section, other
  columns, an empty cell, a name not in backticks, an unknown class, a row twice. A table's
  unique keys are ``;``-separated, each its columns in backticks (``none`` if it has none).
- ``violations(conn, placements, exceptions)`` lists, one sentence each, every way the schema
  of ``conn`` breaks the page's rules (none: an empty list).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import asyncpg
import attrs

PAGE = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"

CLASSES = ("distributed", "reference", "merged", "coordinator")
PLACEMENT_COLUMNS = ("table", "class", "unique keys today", "under Citus")
EXCEPTION_COLUMNS = ("index", "table", "columns", "why it holds on one server", "under Citus")
PLACEMENT_SECTION = "### Where each table goes"
EXCEPTION_SECTION = "### Unique keys without `bot_id`"

Key = tuple[str, ...]


@attrs.frozen
class Placement:
    """Where a table goes under Citus, and the unique keys the page says it has today."""

    table: str
    kind: str
    keys: frozenset[Key]


@attrs.frozen
class KeyException:
    """A unique index of a distributed table allowed to lack ``bot_id``, and its columns."""

    index: str
    table: str
    columns: Key


def _name(cell: str, what: str) -> str:
    match = re.fullmatch(r"`([a-z_][a-z0-9_]*)`", cell)
    if not match:
        raise ValueError(f"{what} {cell!r} must be one name in backticks")
    return match.group(1)


def _key(cell: str, what: str) -> Key:
    match = re.fullmatch(r"`([a-z0-9_, ]+)`", cell.strip())
    if not match:
        raise ValueError(f"{what} {cell!r} must be columns in backticks, e.g. `bot_id, session_id`")
    return tuple(column.strip() for column in match.group(1).split(","))


def _rows(text: str, heading: str, columns: tuple[str, ...]) -> list[list[str]]:
    """The cells of each row of the first table after ``heading``, whose header must be
    ``columns``."""
    lines = text.splitlines()
    if heading not in lines:
        raise ValueError(f"docs/scaling.md has no section {heading!r}")
    rest = lines[lines.index(heading) + 1:]
    start = next((i for i, line in enumerate(rest) if line.startswith("|")), None)
    if start is None or start + 1 >= len(rest):
        raise ValueError(f"section {heading!r} has no table")
    table = []
    for line in rest[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, _rule, *rows = table
    if tuple(header) != columns:
        raise ValueError(f"the table of {heading!r} must have the columns {columns}, not {tuple(header)}")
    for row in rows:
        if len(row) != len(columns) or not all(row):
            raise ValueError(f"row {row} of {heading!r} must have {len(columns)} cells, none empty")
    return rows


def placements(text: str) -> dict[str, Placement]:
    """The page's placement of each table, by table name."""
    found: dict[str, Placement] = {}
    for row in _rows(text, PLACEMENT_SECTION, PLACEMENT_COLUMNS):
        table = _name(row[0], "table")
        if row[1] not in CLASSES:
            raise ValueError(f"table {table}: class {row[1]!r} is not one of {CLASSES}")
        if table in found:
            raise ValueError(f"table {table} is placed twice")
        keys = frozenset() if row[2] == "none" else frozenset(
            _key(cell, f"unique key of {table}") for cell in row[2].split(";"))
        found[table] = Placement(table, row[1], keys)
    return found


def exceptions(text: str) -> dict[str, KeyException]:
    """The page's unique indexes allowed to lack ``bot_id``, by index name."""
    found: dict[str, KeyException] = {}
    for row in _rows(text, EXCEPTION_SECTION, EXCEPTION_COLUMNS):
        index = _name(row[0], "index")
        if index in found:
            raise ValueError(f"index {index} is listed twice")
        found[index] = KeyException(index, _name(row[1], f"table of {index}"),
                                    _key(row[2], f"columns of {index}"))
    return found


# Tables (and materialized views: they hold rows too) of schema crashlog; a partition goes
# where its parent goes.
_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'crashlog' AND c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
"""
# The tables users' projections own (crashlog/projections/user.py records them).
_USERS_TABLES = """
SELECT DISTINCT unnest(tables) FROM crashlog.projection_checkpoints WHERE tables IS NOT NULL
"""
_BOT_ID = """
SELECT c.relname, a.attnotnull FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'crashlog' AND a.attname = 'bot_id' AND a.attnum > 0 AND NOT a.attisdropped
"""
# Every unique (or exclusion) index of schema crashlog with its key columns in order
# (INCLUDE columns are not part of the key; an expression shows as "(expression)").
_UNIQUE = """
SELECT t.relname AS table, i.relname AS index,
       ARRAY(SELECT coalesce(a.attname::text, '(expression)') FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, n)
             LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
             WHERE k.n <= x.indnkeyatts ORDER BY k.n) AS columns
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'crashlog' AND (x.indisunique OR x.indisexclusion)
"""
# What each view of schema crashlog reads (through its rewrite rule).
_VIEWS = """
SELECT DISTINCT v.relname AS view,
       CASE WHEN tn.nspname = 'crashlog' THEN t.relname
            ELSE format('%I.%I', tn.nspname, t.relname) END AS reads
FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
JOIN pg_rewrite r ON r.ev_class = v.oid
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE n.nspname = 'crashlog' AND v.relkind = 'v'
"""


def _shown(columns: Key) -> str:
    return "(" + ", ".join(columns) + ")"


async def violations(
    conn: asyncpg.Connection,
    placed: Mapping[str, Placement],
    allowed: Mapping[str, KeyException],
) -> list[str]:
    """Every way the schema breaks the rules of docs/scaling.md, one sentence each."""
    tables = {r[0] for r in await conn.fetch(_TABLES)}
    users = {r[0] for r in await conn.fetch(_USERS_TABLES)}
    bot_id = {r["relname"]: r["attnotnull"] for r in await conn.fetch(_BOT_ID)}
    unique = await conn.fetch(_UNIQUE)
    found: list[str] = []

    for table in sorted(tables - placed.keys() - users):
        found.append(f"crashlog.{table} is not in docs/scaling.md's table \"Where each table goes\":"
                     " say where it goes under Citus")
    for table in sorted(placed.keys() - tables):
        found.append(f"docs/scaling.md places {table}, which is not a table of schema crashlog:"
                     " remove its row")

    for p in sorted(placed.values(), key=lambda p: p.table):
        if p.table not in tables:
            continue
        if p.kind == "distributed" and p.table not in bot_id:
            found.append(f"distributed table crashlog.{p.table} has no bot_id column to be"
                         " distributed by")
        elif p.kind == "distributed" and not bot_id[p.table]:
            found.append(f"distributed table crashlog.{p.table}: bot_id may be NULL, and Citus"
                         " refuses a NULL distribution value")
        if p.kind in ("reference", "merged") and p.table in bot_id:
            found.append(f"{p.kind} table crashlog.{p.table} has a bot_id column: its rows are"
                         " per bot, so it is distributed (or the page says why not)")
        keys = {tuple(r["columns"]) for r in unique if r["table"] == p.table}
        if keys != p.keys:
            found.append(f"crashlog.{p.table}: docs/scaling.md says its unique keys are "
                         f"{sorted(p.keys)}, the schema has {sorted(keys)}")

    seen: set[str] = set()
    for r in sorted(unique, key=lambda r: r["index"]):
        p = placed.get(r["table"])
        if p is None or p.kind != "distributed":
            continue
        columns = tuple(r["columns"])
        exception = allowed.get(r["index"])
        if "bot_id" in columns:
            continue
        if exception is None:
            found.append(f"unique index {r['index']} on distributed table crashlog.{r['table']} "
                         f"{_shown(columns)} does not include bot_id: add bot_id to it, or list"
                         " it under \"Unique keys without `bot_id`\" with why and what changes"
                         " under Citus")
            continue
        seen.add(r["index"])
        if exception.table != r["table"] or exception.columns != columns:
            found.append(f"docs/scaling.md lists {r['index']} as ({exception.table}) "
                         f"{_shown(exception.columns)}; the schema has it on {r['table']} "
                         f"{_shown(columns)}")
    for index in sorted(allowed.keys() - seen):
        found.append(f"docs/scaling.md lists {index} among the unique keys without bot_id, but "
                     "the schema has no such index without bot_id on a distributed table:"
                     " remove its row")

    for r in await conn.fetch(_VIEWS):
        p = placed.get(r["reads"])
        if p is None or p.kind != "distributed":
            kind = p.kind if p else "not a placed table"
            found.append(f"view crashlog.{r['view']} reads {r['reads']} ({kind}): a view of"
                         " schema crashlog reads distributed tables only, or the page says how"
                         " Citus answers it")
    return found
