"""What the verbs print with: the two consoles, tables, a progress bar, and the formats of
money, fractions and intervals they share.

Tables and data go to stdout (``out``); progress bars and notes to stderr (``err``), so
stdout stays clean for data.

Promises: data (anything read from the database or given on the command line) is printed
as text, never as rich markup, and its control characters are shown escaped (``shown``):
``say`` for a line, tables from ``make_table`` for cells and titles, ``print_json`` for JSON.
"""

from __future__ import annotations

import logging
import re
import sys
import time
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
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from crashlog.printed import shown

# What JSON leaves as it is (it escapes only U+0000-U+001F): DEL, C1 and the invisible ones.
_JSON_UNESCAPED = re.compile(r"[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def plain(value: object, style: str | None = None) -> Text:
    """``value`` as rich Text (never parsed as markup), escaped by ``shown``, in ``style``."""
    return Text(shown(value), style=style or "")


def say(value: object, *, style: str | None = None, console: Console | None = None) -> None:
    """Print one line of data (escaped, never markup) on ``out`` or ``console``."""
    (console or out).print(plain(value, style), soft_wrap=True)


def print_json(text: str) -> None:
    """Print a JSON document on ``out``; characters JSON leaves as they are and a terminal
    would act on are written as JSON escapes (the same value to a JSON reader)."""
    out.print_json(_JSON_UNESCAPED.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


class DataTable(Table):
    """A rich Table whose text cells, title and caption are data: escaped, never markup.
    A cell that is already ``Text`` (from ``plain`` or ``coloured``) is kept as it is."""

    def __init__(self, *columns: Any, title: object = None, caption: object = None,
                 **options: Any) -> None:
        super().__init__(*columns, title=_text(title), caption=_text(caption), **options)

    def add_row(self, *renderables: Any, **options: Any) -> None:
        super().add_row(*(_text(cell) for cell in renderables), **options)


def _text(value: Any) -> Any:
    return plain(value) if isinstance(value, str) else value


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


#: Seconds between two progress log lines when stderr is not a terminal.
PROGRESS_EVERY = 5.0
progress_log = logging.getLogger("crashlog.progress")


class LoggedProgress(Progress):
    """rich's Progress, which, when stderr is not a terminal (a log file, a CI job, systemd),
    draws nothing and logs a line instead (``crashlog.progress``, INFO, with ``task``,
    ``done``, ``total`` and ``unit`` as extra fields): at the first step, then at most every
    ``PROGRESS_EVERY`` seconds, and when it ends. Never a line without a newline."""

    def __init__(self, description: str, unit: str, *columns: Any, **options: Any) -> None:
        super().__init__(*columns, **options)
        self._what, self._unit = description, unit
        self._logged_at: float | None = None

    def update(self, task_id: TaskID, *args: Any, **options: Any) -> None:
        super().update(task_id, *args, **options)
        now = time.monotonic()
        if self.disable and (self._logged_at is None or now - self._logged_at >= PROGRESS_EVERY):
            self._log(task_id, now)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def stop(self) -> None:
        if self.disable and self._logged_at is not None:
            for task in self.tasks:
                self._log(task.id, time.monotonic(), "done")
        super().stop()

    def _log(self, task_id: TaskID, now: float, how: str = "at") -> None:
        self._logged_at = now
        task = self._tasks[task_id]
        done, total = int(task.completed), None if task.total is None else int(task.total)
        of = f" of {total:,}" if total is not None else ""
        progress_log.info("%s: %s %s%s %s", self._what, how, f"{done:,}", of, self._unit,
                          extra={"task": self._what, "done": done, "total": total, "unit": self._unit})


def progress_bar(description: str, unit: str = "items") -> Progress:
    """A progress bar on stderr: done / total, rate, time; when stderr is not a terminal, log
    lines instead (``LoggedProgress``)."""
    return LoggedProgress(
        description,
        unit,
        TextColumn(shown(description), markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def make_table(
    title: str, columns: Sequence[str], *, right: Iterable[str] = (), **options: Any
) -> DataTable:
    """A table with these columns, left-aligned except those named in ``right`` (numbers);
    its title and cells are data (``DataTable``)."""
    table = DataTable(title=title, **options)
    right = set(right)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:+.2%}" if value < 0 else f"{value:.2%}"


def span(value: Interval | None) -> str:
    """An interval of fractions as ``46.9 .. 51.2%``."""
    return "" if value is None else f"{value.low * 100:.1f} .. {value.high * 100:.1f}%"


def coloured(text: str, colour: str | None) -> Text:
    """``text`` in ``colour`` (plain when ``colour`` is None), escaped, never markup."""
    return plain(text, colour)
