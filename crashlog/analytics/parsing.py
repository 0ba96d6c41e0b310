"""Reading recorded multipliers as a collector wrote them: one bad cell never aborts.

Real recordings hold empty cells, text, two values pasted into one cell (``'2.29\\u20281.29'``),
``0`` for an instant bust and unrounded floats. ``parse_multipliers`` turns each cell into a
Decimal or None (a null: None, NaN or an empty cell) and counts the cells it refuses (not a
number) with a few examples, so ``fit``, ``check_quality`` and the command line analyse the
rest and report the refused ones as ``unparseable_values``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path

import attrs

from crashlog.law import CENT

__all__ = [
    "ParsedMultipliers",
    "instant_bust_code",
    "multiplier_decimal",
    "parse_multipliers",
    "read_csv_column",
    "read_value",
]

#: How many refused cells a report quotes.
EXAMPLES = 3
_ONE = Decimal("1.00")


@attrs.frozen
class ParsedMultipliers:
    """The cells as numbers (None for a null, in order), and what was refused or changed."""

    #: One entry per cell that is a number or a null; refused cells are left out.
    values: tuple[Decimal | None, ...]
    #: Cells that are not a number (text, two values in one cell).
    refused: int
    #: Up to ``EXAMPLES`` refused cells, as written (repr).
    examples: tuple[str, ...]
    #: Cells read as an instant bust because they equal the caller's ``instant_bust_code``.
    instant_bust_codes: int = 0
    #: Off-grid values rounded down to the cent (``floor_to_cent``).
    floored: int = 0

    @property
    def cells(self) -> int:
        """Every cell read, refused ones included."""
        return len(self.values) + self.refused


def multiplier_decimal(value: object, name: str = "multiplier") -> Decimal | None:
    """A multiplier as a Decimal, None for a null (None, NaN, an empty cell); ValueError naming
    ``name`` when ``value`` is not a number. A float is read by its shortest repr, so 2.03
    stays 2.03."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool):
        raise ValueError(f"invalid {name}={value!r}: not a number")
    elif isinstance(value, float):
        if math.isnan(value):
            return None
        number = Decimal(repr(value))
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"invalid {name}={value!r}: not a number") from None
    return None if number.is_nan() else number


def _code(value: object) -> Decimal | None:
    if value is None:
        return None
    number = multiplier_decimal(value, "instant_bust_code")
    if number is None:
        raise ValueError(f"invalid instant_bust_code={value!r}: must be a number, e.g. 0")
    return number


def read_value(value: object, code: Decimal | None = None, floor_to_cent: bool = False) -> Decimal | None:
    """One cell as ``parse_multipliers`` reads it: a Decimal, None for a null, ValueError
    (naming the value) when it is not a number. ``code``: the number that means 1.00."""
    number = multiplier_decimal(value)
    if number is None:
        return None
    if code is not None and number == code:
        return _ONE
    if floor_to_cent and number.is_finite() and number != number.quantize(CENT):
        return number.quantize(CENT, rounding=ROUND_FLOOR)
    return number


def instant_bust_code(value: object) -> Decimal | None:
    """The caller's instant-bust code as a number (None: no code); ValueError naming it."""
    return _code(value)


def parse_multipliers(
    values: Iterable[object],
    instant_bust_code: object = None,
    floor_to_cent: bool = False,
) -> ParsedMultipliers:
    """Each cell as a Decimal (None for a null), refusing, counting and quoting the rest.

    ``instant_bust_code``: a number the source writes for an instant bust (ethercrash's API
    and bustabit exports write 0): cells equal to it read as 1.00. ``floor_to_cent``: values
    off the cent grid are rounded down to it, as a game that computes floats shows them
    (Stake). A cell is refused when it is not a number (text, ``'2.29\\u20281.29'``).
    """
    code = _code(instant_bust_code)
    parsed: list[Decimal | None] = []
    refused, codes, floored = 0, 0, 0
    examples: list[str] = []
    for value in values:
        try:
            number = multiplier_decimal(value)
        except ValueError:
            refused += 1
            if len(examples) < EXAMPLES:
                examples.append(repr(value))
            continue
        if number is not None and code is not None and number == code:
            number, codes = _ONE, codes + 1
        elif number is not None and floor_to_cent and number.is_finite() and number != number.quantize(CENT):
            number, floored = number.quantize(CENT, rounding=ROUND_FLOOR), floored + 1
        parsed.append(number)
    return ParsedMultipliers(tuple(parsed), refused, tuple(examples), codes, floored)


def read_csv_column(path: str | Path, column: str = "multiplier") -> list[str]:
    """The cells of ``column`` in a CSV file with a header, as text, in file order.

    ValueError naming the file and the columns it has when ``column`` is not one of them.
    """
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise ValueError(
                f"invalid column={column!r}: {path} has columns {', '.join(reader.fieldnames or [])}"
            )
        return [row[column] for row in reader]
