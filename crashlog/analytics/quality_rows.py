"""Rows of collected rounds as ``quality`` reads them, and the ``Check`` every check returns.

A row is a mapping with the columns of ``crashlog.round_multipliers`` or a bare multiplier;
a value that is not a number, or a null, does not abort the report: the row is kept with its
value None and counted by the ``unparseable_values`` check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import attrs

from crashlog.analytics.parsing import read_value
from crashlog.law import CENT

Verdict = Literal["ok", "suspect", "insufficient data"]
OK: Verdict = "ok"
SUSPECT: Verdict = "suspect"
INSUFFICIENT: Verdict = "insufficient data"

#: A test whose expected count is below this cannot see a deviation: ``insufficient data``.
MIN_EXPECTED = 5.0
#: A time gap is a gap when it is this many times the median interval between rounds.
GAP_FACTOR = 10
_ONE = Decimal("1.00")

#: The checks that test a share against the law (the others count what must not be there).
STATISTICAL_CHECKS = ("instant_busts", "whole_half_values", "repeats")
_MISSING = object()


@attrs.frozen
class Check:
    """One check: its figure, what the law expects, the verdict and a sentence on it.

    ``p_value`` is the Holm-adjusted p-value of a statistical check (None for counts the
    law says must be zero): the verdict is ``suspect`` when it is below the significance.
    """

    name: str
    figure: str
    expected: str
    verdict: Verdict
    detail: str
    p_value: float | None = None


# -- rows ---------------------------------------------------------------------------------


@attrs.frozen
class _Round:
    #: None for a null or a cell that is not a number (``raw`` then holds the cell).
    value: Decimal | None
    round_id: str | None
    seen_at: datetime | None
    observers: int | None
    disagreement: bool
    dissenters: tuple[str, ...]
    ocr_confidence: float | None
    flags: tuple[str, ...]
    raw: str | None = None

    @property
    def on_grid(self) -> bool:
        return self.value is not None and self.value == self.value.quantize(CENT)

    @property
    def lawful(self) -> bool:
        """On the two-decimal grid and at least 1.00: a value the law gives a probability."""
        return self.value is not None and self.value >= _ONE and self.on_grid


def _read(value: Any, code: Decimal | None, floors: bool) -> tuple[Decimal | None, str | None]:
    """The value, or None and the cell as written when it is a null or not a number."""
    try:
        number = read_value(value, code, floors)
    except ValueError:
        return None, repr(value)
    return number, (repr(value) if number is None else None)


def _round_of(row: Any, code: Decimal | None = None, floors: bool = False) -> _Round:
    if not isinstance(row, Mapping) and not hasattr(row, "get"):
        number, raw = _read(row, code, floors)
        return _Round(number, None, None, None, False, (), None, (), raw)
    value = row.get("multiplier", _MISSING)
    if value is _MISSING or value is None:
        value = row.get("crash_multiplier", value)
    if value is _MISSING:
        raise ValueError(f"a row has no multiplier (nor crash_multiplier): {dict(row)!r}")
    number, raw = _read(value, code, floors)
    seen_at = row.get("first_seen_at") or row.get("occurred_at")
    if isinstance(seen_at, str):
        seen_at = datetime.fromisoformat(seen_at)
    if seen_at is not None and seen_at.tzinfo is None:
        seen_at = seen_at.replace(tzinfo=UTC)  # naive times are UTC, as crashlog writes them
    round_id = row.get("game_round_id")
    observers = row.get("observers")
    confidence = row.get("ocr_confidence")
    return _Round(
        value=number,
        round_id=None if round_id is None else str(round_id),
        seen_at=seen_at,
        observers=None if observers is None else int(observers),
        disagreement=bool(row.get("disagreement") or False),
        dissenters=tuple(row.get("dissenters") or ()),
        ocr_confidence=None if confidence is None else float(confidence),
        flags=tuple(row.get("quality_flags") or ()),
        raw=raw,
    )


def _integer_ids(rounds: Sequence[_Round]) -> list[int] | None:
    """The rounds' ids as integers, or None when some round has none or one is not an integer."""
    ids = []
    for r in rounds:
        if r.round_id is None:
            return None
        text = r.round_id.strip()
        if not (text.isascii() and text.lstrip("-").isdecimal()):
            return None
        ids.append(int(text))
    return ids


