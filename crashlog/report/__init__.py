"""The report: one self-contained HTML file that shows how the fleet did, and whether the
numbers can be trusted (``crashlog report -o report.html``, ``crashlog demo --report FILE``).

    from crashlog.report import Filters, write_report
    await write_report("report.html", dsn=None, filters=Filters(bot="b1"))

- ``report.data``: what it shows, read through a read-only reader (``crashlog.reading``) and
  the analytics; ``report.charts``: each chart; ``report.svg``: the hand-written SVG they are
  drawn with; ``report.page``: the HTML around them.

Promises: the file opens offline — no script, no font, no image, no link leaves it (every
chart is inline SVG, every style inline); an empty log gives a page saying nothing is
recorded yet (so does a database without the crashlog schema), filters that match nothing a
page saying so (both still written); an output that cannot be written raises
``ReportUnwritable`` naming the path, before anything is read.
Nothing in the core imports this package (``import crashlog`` loads no analytics).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from crashlog.errors import ReportUnwritable, SchemaNotReady
from crashlog.report.data import Filters, ReportData, gather
from crashlog.report.page import render


async def make_report(dsn: str | None = None, filters: Filters | None = None) -> ReportData:
    """Read what the report shows from the server at ``dsn`` (read-only). A database that
    never had the crashlog schema has nothing recorded yet (an older schema is an error)."""
    from crashlog.reading import AsyncReader

    filters = filters or Filters()
    try:
        reader = await AsyncReader.connect(dsn)
    except SchemaNotReady:
        if await _never_migrated(dsn):
            return ReportData.nothing(filters)
        raise
    async with reader:
        return await gather(reader, filters)


async def _never_migrated(dsn: str | None) -> bool:
    from crashlog import migrations
    from crashlog.database import open_connection, resolve_dsn

    conn = await open_connection(await asyncio.to_thread(resolve_dsn, dsn))
    try:
        return not await migrations.applied_migrations(conn)
    finally:
        await conn.close()


def check_writable(path: str | Path) -> Path:
    """``path`` as a Path, or ``ReportUnwritable`` saying why it cannot be written."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ReportUnwritable(f"cannot write the report to {target}: it is a folder")
    if not folder.is_dir():
        raise ReportUnwritable(f"cannot write the report to {target}: no folder {folder}")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ReportUnwritable(f"cannot write the report to {target}: permission denied")
    return target


async def write_report(path: str | Path, dsn: str | None = None, filters: Filters | None = None) -> ReportData:
    """Write the report of ``dsn``'s data (within ``filters``) to ``path``; returns what it showed."""
    target = check_writable(path)
    data = await make_report(dsn, filters)
    # Written beside the target, then renamed: a failure never leaves half a page behind.
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(render(data), encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ReportUnwritable(f"cannot write the report to {target}: {exc.strerror or exc}") from None
    return data


__all__ = ["Filters", "ReportData", "check_writable", "make_report", "render", "write_report"]
