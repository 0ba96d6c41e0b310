"""The planner's statistics of the read tables, kept fresh while a runner applies batches.

Fresh tables have no statistics until autovacuum comes by (a minute or more); the planner
then joins growing tables by nested loops, which costs more every batch. A runner asks
after its batch 1, 2, 4, ... 1024 of a session which of a projection's tables have doubled
since their last analysis, and analyses those on a connection of its own, beside the
passes: analysing a large table takes a few hundred milliseconds that the lag would
otherwise show.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from crashlog.database import CONNECTION_FAILURES, mask_error, open_connection
from crashlog.projections.base import Projection
from crashlog.projections.filling import analyze

log = logging.getLogger("crashlog.projections")

# Tables changed by more rows since their last analysis than they had then (or never analysed).
_DOUBLED = """
SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.relid = ANY($1::regclass[]) AND s.n_mod_since_analyze > greatest(c.reltuples, 0) + 500
"""


class StatisticsKeeper:
    """Analyses a runner's tables that have doubled, one analysis at a time, in the background.

    Promises: ``after_batch`` costs one small query on the batches it looks after and
    nothing on the others; a failed analysis is logged and waits for the next time.
    """

    def __init__(self, dsn: str, server_settings: dict[str, str]) -> None:
        self._dsn = dsn
        self._server_settings = server_settings
        self._batches: dict[str, int] = {}  # per projection, in this runner
        self._analysing: asyncio.Task[None] | None = None

    async def after_batch(self, conn: asyncpg.Connection, p: Projection) -> None:
        """``p`` applied a batch on ``conn``: analyse its doubled tables if it is time."""
        n = self._batches[p.name] = self._batches.get(p.name, 0) + 1
        if n <= 1024 and n & (n - 1) == 0:
            stale = await conn.fetch(_DOUBLED, list(p.live_tables().values()))
            if stale and (self._analysing is None or self._analysing.done()):
                tables = [f"crashlog.{r['relname']}" for r in stale]
                self._analysing = asyncio.get_running_loop().create_task(self._analyse(tables))

    async def stop(self) -> None:
        """Cancel an analysis under way."""
        if self._analysing is not None:
            self._analysing.cancel()
            await asyncio.gather(self._analysing, return_exceptions=True)
            self._analysing = None

    async def _analyse(self, tables: list[str]) -> None:
        try:
            conn = await open_connection(self._dsn, server_settings=self._server_settings)
            try:
                await analyze(conn, tables)
            finally:
                await conn.close()
        except CONNECTION_FAILURES as error:  # only the planner's statistics wait for the next time
            log.warning("crashlog projections: analysing %s failed: %s", ", ".join(tables),
                        mask_error(error, self._dsn))
