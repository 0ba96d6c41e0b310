"""What the verbs print with: the two consoles, tables, a progress bar, and the formats of
money, fractions and intervals they share.

Tables and data go to stdout (``out``); progress bars and notes to stderr (``err``), so
stdout stays clean for data.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

# Tables are wide: when stdout is not a terminal, do not squeeze them into 80 columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Interval(Protocol):
    """A confidence interval of fractions (``analytics.Interval`` is one)."""

    @property
    def low(self) -> float: ...

    @property
    def high(self) -> float: ...


class RateColumn(ProgressColumn):
    """How many items a second the task is going at (rich's own speed column counts bytes)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} {self.unit}/s" if task.speed else "")


def progress_bar(description: str, unit: str = "items") -> Progress:
    """A progress bar on stderr: done / total, rate, time (hidden when stderr is not a terminal)."""
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def make_table(title: str, columns: Sequence[str], *, right: Iterable[str] = (), **options: Any) -> Table:
    """A table with these columns, left-aligned except those named in ``right`` (numbers)."""
    shown = Table(title=title, **options)
    right = set(right)
    for column in columns:
        shown.add_column(column, justify="right" if column in right else "left")
    return shown


def money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:+.2%}" if value < 0 else f"{value:.2%}"


def span(value: Interval | None) -> str:
    """An interval of fractions as ``46.9 .. 51.2%``."""
    return "" if value is None else f"{value.low * 100:.1f} .. {value.high * 100:.1f}%"


def coloured(text: str, colour: str | None) -> str:
    """``text`` in rich markup's ``colour`` (as it is when ``colour`` is None)."""
    return f"[{colour}]{text}[/]" if colour else text
