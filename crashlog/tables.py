"""The tables a reader may read, and the one safe way to build a query over them.

Which tables: the built-in read tables each projection declares (``Projection.read_tables``:
name, documented time column, order), tables declared with ``register_table`` (a user's
projection, a view of your own), and any other table or view found in schema ``crashlog``
that is not internal (the log, checkpoints, the projections' own reading copies, rebuild
shadows). A table found that way uses ``occurred_at`` as its time column when it has one,
and its primary key as its order. ``events`` is the log itself (``Reader.events``).

How a query is built (``Query``): names come from the caller, so each is checked against the
table's columns as the database lists them, then quoted as an identifier; values are always
parameters ($1, $2, ...), never text of the query. Column kinds (``KINDS``) decide the SQL
cast (JSON and UUID as text, xid8 as bigint) and the Arrow type (``crashlog.arrow``).

Promises: ``since`` is inclusive, ``until`` exclusive, both on the table's time column (a
table without one refuses them, naming the table); rows come in the table's order; a bad
name or value raises ``InvalidRead`` or ``UnknownTable`` before any query runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
import attrs

from crashlog.errors import InvalidRead, UnknownTable
from crashlog.projections import PROJECTIONS, registry, user
from crashlog.projections.base import ReadTable, shadow_name
from crashlog.projections.checkpoints import READING_ORDER

SCHEMA = "crashlog"
#: The log, read by ``Reader.events``.
EVENTS = ReadTable("events", time="occurred_at", order=tuple(READING_ORDER.split(", ")))
#: Tables of schema crashlog that are crashlog's own bookkeeping, never read as tables.
INTERNAL = user.INTERNAL

_registered: dict[str, ReadTable] = {}


def register_table(name: str, *, time: str | None = None, order: Sequence[str] = ()) -> ReadTable:
    """Declare a table of schema crashlog readers may read, with its time column and order
    (a user's projection does this for its tables). Declaring it again replaces it."""
    table = ReadTable(name, time=time, order=tuple(order) or ((time,) if time else ()))
    _registered[name] = table
    return table


def declared() -> dict[str, ReadTable]:
    """The tables declared so far: the built-in projections', users' registered projections'
    (``connect(projections=...)``, ``--with``), then tables registered here."""
    found = {t.name: t for p in [*PROJECTIONS, *registry.registered()] for t in p.read_tables}
    found.update(_registered)
    return found


def private() -> frozenset[str]:
    """Tables a projection owns but does not offer readers (its reading copies)."""
    public = set(declared())
    owned = {t for p in PROJECTIONS for t in p.tables}
    return frozenset(owned - public)


#: PostgreSQL type name -> kind (``crashlog.arrow`` maps kinds to Arrow types).
KINDS: dict[str, str] = {
    "uuid": "uuid", "text": "text", "varchar": "text", "bpchar": "text", "name": "text",
    "int8": "int", "int4": "int32", "int2": "int32", "xid8": "int",
    "numeric": "decimal", "float8": "float", "float4": "float", "bool": "bool",
    "timestamptz": "time", "timestamp": "time", "date": "date",
    "json": "json", "jsonb": "json",
    "_text": "texts", "_varchar": "texts", "_float8": "floats", "_float4": "floats",
    "_int8": "ints", "_int4": "ints", "_int2": "ints",
}


@attrs.frozen
class Column:
    name: str
    kind: str  # one of KINDS' values

    def select(self) -> str:
        """The column in a SELECT list: cast where the kind is read as another type."""
        quoted = quote(self.name)
        if self.kind in ("json", "uuid"):  # as text: no dependence on the connection's codecs
            return f"{quoted}::text AS {quoted}"
        return quoted


@attrs.frozen
class TableShape:
    """A readable table as the database has it: its declaration and its columns, in order."""

    info: ReadTable
    columns: tuple[Column, ...]
    #: Columns whose SQL needs a cast to reach their kind (xid8 -> bigint, unknown -> text).
    casts: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        return self.info.name

    def column(self, name: str, what: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        known = ", ".join(c.name for c in self.columns)
        raise InvalidRead(f"table {self.name} has no column {name!r} (asked as {what}); its columns: {known}")


def quote(name: str) -> str:
    """``name`` as a SQL identifier (only ever called on names the catalogue listed)."""
    return '"' + name.replace('"', '""') + '"'


_LIST_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')
ORDER BY c.relname
"""
_COLUMNS = """
SELECT a.attname, t.typname
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_PRIMARY_KEY = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""


async def readable(conn: asyncpg.Connection) -> dict[str, ReadTable]:
    """Every table a reader may read in this database, by name (declared ones first)."""
    present = {r["relname"] for r in await conn.fetch(_LIST_TABLES, SCHEMA)}
    tables = {name: t for name, t in declared().items() if name in present}
    hidden = INTERNAL | private()
    for name in sorted(present - set(tables) - hidden):
        if name.endswith(shadow_name("")):
            continue
        tables[name] = await _discovered(conn, name)
    return tables


async def _discovered(conn: asyncpg.Connection, name: str) -> ReadTable:
    columns = {r["attname"] for r in await conn.fetch(_COLUMNS, SCHEMA, name)}
    time_column = "occurred_at" if "occurred_at" in columns else None
    key = tuple(r["attname"] for r in await conn.fetch(_PRIMARY_KEY, SCHEMA, name))
    order = ((time_column,) if time_column else ()) + tuple(c for c in key if c != time_column)
    return ReadTable(name, time=time_column, order=order)


async def shape(conn: asyncpg.Connection, name: str, tables: Mapping[str, ReadTable]) -> TableShape:
    """The table ``name`` with its columns; ``UnknownTable`` lists the known ones."""
    info = EVENTS if name == "events" else tables.get(name) if isinstance(name, str) else None
    if info is None:
        known = ", ".join(sorted(tables))
        raise UnknownTable(f"unknown table {name!r}; readable tables: {known} (and events)")
    columns, casts = [], {}
    for row in await conn.fetch(_COLUMNS, SCHEMA, info.name):
        kind = KINDS.get(row["typname"])
        if kind is None:  # a type crashlog does not map: read as its text
            kind, casts[row["attname"]] = "text", "text"
        elif row["typname"] == "xid8":
            casts[row["attname"]] = "text::bigint"
        columns.append(Column(row["attname"], kind))
    return TableShape(info, tuple(columns), casts)


# -- values given by the caller ------------------------------------------------------------


def parse_time(value: Any, what: str, table: str) -> datetime:
    """A ``since``/``until``/time filter as an aware datetime (naive and dates: UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if isinstance(value, str):
        try:
            return parse_time(datetime.fromisoformat(value.strip().replace("Z", "+00:00")), what, table)
        except ValueError:
            pass
    raise InvalidRead(
        f"invalid {what}={value!r} for table {table}: give a datetime, a date or ISO 8601 text"
        " (e.g. 2026-12-01 or 2026-12-01T09:30:00+00:00)"
    )


def coerce(column: Column, value: Any, table: str) -> Any:
    """A filter's value as the column's type (text from the command line is parsed)."""
    if value is None:
        return None
    try:
        return _COERCE[column.kind](value, column, table)
    except (ValueError, TypeError, InvalidOperation, ArithmeticError):
        raise InvalidRead(
            f"invalid filter {column.name}={value!r} for table {table}: not a {column.kind}"
        ) from None


def _bool(value: Any, *_: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "1", "yes"):
        return True
    if text in ("false", "f", "0", "no"):
        return False
    raise ValueError(value)


def _int(value: Any, *_: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(value)


def _decimal(value: Any, *_: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(value)
    number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if not number.is_finite():
        raise ValueError(value)
    return number


def _text(value: Any, *_: Any) -> str:
    if not isinstance(value, (str, int, uuid.UUID)) or isinstance(value, bool):
        raise TypeError(value)
    return str(value)


def _unsupported(value: Any, *_: Any) -> Any:
    raise TypeError(value)


_COERCE: dict[str, Any] = {
    "uuid": lambda v, *_: v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)),
    "text": _text,
    "json": _unsupported,
    "int": _int,
    "int32": _int,
    "decimal": _decimal,
    "float": lambda v, *_: float(v) if not isinstance(v, bool) else _unsupported(v),
    "bool": _bool,
    "time": lambda v, column, table: parse_time(v, f"filter {column.name}", table),
    "date": lambda v, column, table: parse_time(v, f"filter {column.name}", table).date(),
    "texts": _unsupported, "floats": _unsupported, "ints": _unsupported,
}


@attrs.frozen
class Query:
    """One read of a table: the SELECT in its order, its COUNT, and their parameters."""

    shape: TableShape
    columns: tuple[Column, ...]
    where: str
    args: tuple[Any, ...]
    #: Column -> the SQL type it is cast to (xid8 as bigint, money as float8 if asked, ...).
    casts: Mapping[str, str] = attrs.field(factory=dict)

    def select(self) -> str:
        listed = ", ".join(self._expression(c) for c in self.columns)
        order = ", ".join(quote(c) for c in self.shape.info.order)
        return (f"SELECT {listed} FROM {SCHEMA}.{quote(self.shape.name)}{self.where}"
                + (f" ORDER BY {order}" if order else ""))

    def count(self) -> str:
        return f"SELECT count(*) FROM {SCHEMA}.{quote(self.shape.name)}{self.where}"

    def _expression(self, column: Column) -> str:
        cast = self.casts.get(column.name)
        if cast:
            return f"{quote(column.name)}::{cast} AS {quote(column.name)}"
        return column.select()


def build(
    shape: TableShape,
    *,
    since: Any = None,
    until: Any = None,
    columns: Sequence[str] | None = None,
    filters: Mapping[str, Any] | None = None,
    money: str = "decimal",
) -> Query:
    """The query reading ``shape`` with these bounds, columns and filters (all checked);
    ``money="float"`` reads numeric columns as double precision."""
    if isinstance(columns, str):
        columns = [columns]
    chosen = shape.columns if columns is None else tuple(shape.column(c, "a column") for c in columns)
    if not chosen:
        raise InvalidRead(f"no columns asked of table {shape.name}")
    casts = dict(shape.casts)
    if money == "float":
        casts.update({c.name: "float8" for c in chosen if c.kind == "decimal"})
        chosen = tuple(Column(c.name, "float") if c.kind == "decimal" else c for c in chosen)
    conditions: list[str] = []
    args: list[Any] = []
    if since is not None or until is not None:
        time_column = shape.info.time
        if time_column is None:
            raise InvalidRead(f"table {shape.name} has no time column: since/until do not apply to it")
        for bound, op in ((since, ">="), (until, "<")):
            if bound is not None:
                args.append(parse_time(bound, "since" if op == ">=" else "until", shape.name))
                conditions.append(f"{quote(time_column)} {op} ${len(args)}")
    for name, value in (filters or {}).items():
        conditions.append(_condition(shape, name, value, args))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return Query(shape, chosen, where, tuple(args), casts)


def _condition(shape: TableShape, name: str, value: Any, args: list[Any]) -> str:
    column = shape.column(name, "a filter")
    if value is None:
        return f"{quote(name)} IS NULL"
    if isinstance(value, (list, tuple, set, frozenset)):
        values = [coerce(column, v, shape.name) for v in value]
        args.append(values)
        return f"{quote(name)} = ANY(${len(args)})"
    args.append(coerce(column, value, shape.name))
    return f"{quote(name)} = ${len(args)}"
