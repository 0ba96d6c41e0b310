"""Rows of a read table as Apache Arrow: one mapping from column kinds to Arrow types.

The reader's tables and batches and the Parquet exports all use it, so they agree:

| kind | Arrow type |
|---|---|
| decimal (PostgreSQL numeric: money, multipliers) | ``decimal128(38, 12)``; ``float64`` with ``money="float"`` |
| time (timestamptz) | ``timestamp("us", tz="UTC")`` |
| date | ``date32`` |
| int (bigint), int32 (integer, smallint) | ``int64``, ``int32`` |
| float (double precision) | ``float64`` |
| bool | ``bool`` |
| text, uuid, json (jsonb, as its JSON text) | ``string`` |
| texts, floats, ints (arrays) | ``list<string>``, ``list<float64>``, ``list<int64>`` |

Promises: a decimal is never rounded: a value that does not fit ``decimal128(38, 12)`` (more
than 12 decimal places, 26 digits before the point, NaN or infinity) raises ``InvalidRead``
naming the table, the column and the value. pyarrow is an optional extra: without it a clear
``MissingExtra`` says what to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crashlog.errors import InvalidRead, MissingExtra

if TYPE_CHECKING:
    import pyarrow as pa

    from crashlog.tables import Column

#: The exact type of money and multipliers: 26 digits before the point, 12 after.
DECIMAL_PRECISION, DECIMAL_SCALE = 38, 12
MONEY = ("decimal", "float")


def require() -> Any:
    """The pyarrow module, or ``MissingExtra`` naming the extra that installs it."""
    try:
        import pyarrow
    except ImportError:
        raise MissingExtra(
            "reading tables as Arrow needs pyarrow: pip install 'crashlog[arrow]'"
        ) from None
    return pyarrow


def arrow_type(kind: str, money: str = "decimal") -> pa.DataType:
    """The Arrow type of a column of ``kind`` (see the table above)."""
    pa = require()
    if kind == "decimal":
        return pa.float64() if money == "float" else pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
    types = {
        "uuid": pa.string(), "text": pa.string(), "json": pa.string(),
        "int": pa.int64(), "int32": pa.int32(), "float": pa.float64(), "bool": pa.bool_(),
        "time": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
        "texts": pa.list_(pa.string()), "floats": pa.list_(pa.float64()), "ints": pa.list_(pa.int64()),
    }
    return types[kind]


def check_money(money: str) -> str:
    if money not in MONEY:
        raise InvalidRead(f"invalid money={money!r}: 'decimal' (exact) or 'float'")
    return money


def schema(columns: Sequence[Column], money: str = "decimal") -> pa.Schema:
    """The Arrow schema of these columns."""
    pa = require()
    return pa.schema([pa.field(c.name, arrow_type(c.kind, money)) for c in columns])


def record_batch(rows: Sequence[Sequence[Any]], columns: Sequence[Column], target: pa.Schema,
                 table: str) -> pa.RecordBatch:
    """``rows`` (tuples in the columns' order) as one record batch of ``target``; ``table``
    says where they come from in an error (``"table rounds"``)."""
    pa = require()
    values = list(zip(*rows)) if rows else [() for _ in columns]
    arrays = [
        _array(pa, list(column_values), column, field.type, table)
        for column_values, column, field in zip(values, columns, target)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _array(pa: Any, values: list[Any], column: Column, type_: pa.DataType, table: str) -> pa.Array:
    if column.kind == "decimal" and pa.types.is_floating(type_):
        values = [None if v is None else float(v) for v in values]
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        culprit = _not_fitting(values) if column.kind == "decimal" else None
        shown = f"value {culprit}" if culprit is not None else f"a value ({exc})"
        raise InvalidRead(
            f"{table}, column {column.name}: {shown} does not fit {type_}"
            + (" exactly; read it with money='float' to get floats" if column.kind == "decimal" else "")
        ) from None


def _not_fitting(values: list[Any]) -> Decimal | None:
    """The first decimal that ``decimal128(38, 12)`` cannot hold exactly."""
    limit = Decimal(10) ** (DECIMAL_PRECISION - DECIMAL_SCALE)
    for value in values:
        if value is None:
            continue
        number = Decimal(value)
        if not number.is_finite() or abs(number) >= limit:
            return number
        exponent = number.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -DECIMAL_SCALE:
            return number
    return None
