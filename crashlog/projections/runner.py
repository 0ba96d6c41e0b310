"""The runner: keeps the read tables current, and the functions the command line uses.

One ``Runner`` owns one connection. Its backend holds the lease of each projection it
applies (``leases.Lease.APPLY``, on the checkpoint row, refreshed at least every
``leases.HEARTBEAT_INTERVAL`` between batches): several runners may run against one
database, one applies a projection while the others stand by and take its lease over
when its holder's connection ends or its heartbeat is ``leases.LEASE_TIMEOUT`` old. A
runner that finds its lease taken stops applying that projection (and stands by for it).
It wakes on ``NOTIFY crashlog_events`` (sent at each appending commit) and also polls,
since a notification is only a hint and an open transaction elsewhere can hold events
back below the horizon without any new notification.

Functions for the command line and for tools:

- ``await follow(dsn, stop_event=None, progress=None)``: run until ``stop_event`` is set.
- ``await rebuild(dsn, names, progress=None)``: rebuild ``names`` (or ``["all"]``) now.
- ``await lag(conn)``: ``{name: (events, seconds)}`` behind the log, per projection.
- ``await wait_projected(conn, timeout)``: what ``Logger.sync`` waits on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import asyncpg

from crashlog import store
from crashlog.database import CONNECTION_FAILURES, mask_error, open_connection
from crashlog.errors import (
    InvalidProjection,
    RebuildBusy,
    RebuildRefused,
    StaleCheckpoint,
)
from crashlog.projections import (
    PROJECTIONS,
    checkpoints,
    guard,
    leases,
    registry,
    select,
)
from crashlog.projections.base import Projection, share
from crashlog.projections.checkpoints import Position
from crashlog.projections.leases import Lease
from crashlog.projections.progress import lag, states, wait_projected
from crashlog.projections.rebuild import REBUILD_CONNECTIONS, Progress, rebuild_with_keeper
from crashlog.projections.server_settings import REBUILD_SETTINGS, SERVER_SETTINGS
from crashlog.projections.shadows import drop_orphan_shadows
from crashlog.projections.statistics import StatisticsKeeper

log = logging.getLogger("crashlog.projections")

CHANNEL = "crashlog_events"
#: Events per live batch (one transaction per projection and batch).
BATCH_SIZE = 5_000

#: Connections the live projections are shared out between (``side_by_side``).
RUNNER_CONNECTIONS = 2

#: Reconnect delays: the first retry after a session that worked, and the most.
FIRST_RETRY, MAX_RETRY = 0.1, 5.0
#: How often a runner looks again at a stopped projection (a rebuild elsewhere may restart it).
STOPPED_RECHECK = 5.0
#: Waits before trying again a version rebuild that was refused (a user's view, a role that
#: cannot give the grants, a stopped projection) or a projection newer than this code.
REBUILD_RETRY, MAX_REBUILD_RETRY = 30.0, 600.0
#: Seconds between two lag queries of a runner (for its metrics).
LAG_REFRESH = 2.0


class Runner:
    """Applies projections to the live read tables, for as long as it runs.

    ``start()`` runs it as a task of the current event loop; ``stop()`` ends it and
    releases its locks. Connection failures are logged and retried; a projection
    whose stored version is not this code's is rebuilt first (``progress`` hears of it).
    """

    def __init__(
        self,
        dsn: str,
        projections: Sequence[Projection] = PROJECTIONS,
        *,
        batch_size: int = BATCH_SIZE,
        poll_interval: float = 0.1,
        standby_interval: float = 0.5,
        progress: Progress | None = None,
    ) -> None:
        self._dsn = dsn
        self._projections = list(projections)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._standby_interval = standby_interval
        self._progress = progress
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: name -> checkpoint, for the projections this runner holds the lease of.
        self.held: dict[str, Position] = {}
        self._next_beat = 0.0  # when the held leases' heartbeat is due (time.monotonic)
        self._ensured = False  # every checkpoint row exists (a lease lives on one)
        #: Batches applied, over all projections (for tests and metrics).
        self.batches_applied = 0
        self._statistics = StatisticsKeeper(dsn, SERVER_SETTINGS)
        #: name -> the task rebuilding it (a version change), beside the passes.
        self._rebuilding: dict[str, asyncio.Task[None]] = {}
        #: name -> (monotonic time before which it is not applied, its current retry delay):
        #: projections whose last attempt failed (not for their data), or that stopped.
        self._resting: dict[str, tuple[float, float]] = {}
        # Projections whose version rebuild was refused, or whose tables are at a newer
        # version: when to try again, and the wait before that.
        self._rebuild_after: dict[str, float] = {}
        self._rebuild_waits: dict[str, float] = {}
        #: The delay the last reconnection waited (the next outage starts again from
        #: FIRST_RETRY once a session has worked).
        self.last_retry_delay = 0.0
        self._session_worked = False
        #: Events skipped (recorded in crashlog.projection_errors) and failed attempts, over
        #: all projections, in this process.
        self.skipped_events = 0
        self.failed_attempts = 0
        #: The same and batches applied, per projection (``crashlog.metrics`` exposes them).
        self.counters: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.counters.update((p.name, Counter()) for p in self._projections)
        #: Lag of the projections this runner applies, (events, seconds), refreshed on its own
        #: connection every ``LAG_REFRESH`` seconds; only the applier reports a projection's lag.
        self.lag: dict[str, tuple[int, float]] = {}
        self._next_lag = 0.0
        self._connected = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="crashlog-projections")

    async def stop(self) -> None:
        """End the runner and release its locks (its connection closes)."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._rebuilding.values()):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._statistics.stop()

    def abort(self) -> None:
        """Stop at once, mid-batch if need be, as a killed process would (its transaction
        rolls back, its locks go with its connection). ``stop()`` still awaits the end."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()

    def wake(self) -> None:
        """Look at the log now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Apply until stopped, reconnecting after failures."""
        delay = FIRST_RETRY
        while not self._stop.is_set():
            self._session_worked = False
            try:
                await self._session()
            except Exception as error:  # a dead runner would leave the tables stale: retry
                if self._session_worked:  # a new outage: retry soon, as the first time
                    delay = FIRST_RETRY
                self.last_retry_delay = delay
                message = mask_error(error, self._dsn)
                if isinstance(error, CONNECTION_FAILURES):
                    log.warning("crashlog projections: %s; retrying in %.1fs", message, delay)
                else:
                    log.exception(
                        "crashlog projections failed: %s; retrying in %.1fs", message, delay)
                await self._sleep(delay)
                delay = min(delay * 2, MAX_RETRY)

    async def _session(self) -> None:
        conn = await open_connection(self._dsn, init=store.init_connection, server_settings=SERVER_SETTINGS)
        self.held, self._ensured, self._connected = {}, False, True
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
            # What a rebuild killed midway left: this runner's projections' shadows that no
            # rebuild holds now.
            await drop_orphan_shadows(conn, self._projections)
            next_claim = 0.0
            while not self._stop.is_set():
                if len(self.held) < len(self._projections) and time.monotonic() >= next_claim:
                    await self._claim(conn)
                    next_claim = time.monotonic() + self._standby_interval
                await self._heartbeat(conn)
                await self._refresh_lag(conn)
                self._session_worked = True
                if self._active() and await self._behind(conn):
                    await self._catch_up(conn)
                    continue
                await self._sleep(self._poll_interval)
        finally:
            self.held, self.lag, self._connected = {}, {}, False
            conn.terminate()  # synchronous: safe even while this task is being cancelled

    async def _claim(self, conn: asyncpg.Connection) -> None:
        """Take the lease of every projection no other runner holds; rebuild stale versions."""
        if not self._ensured:
            for p in list(self._projections):
                if p.declaration is not None and not await self._prepare(conn, p):
                    continue
                await checkpoints.ensure(conn, p)
            self._ensured = True
        now = time.monotonic()
        wanted = [p.name for p in self._projections
                  if p.name not in self.held and p.name not in self._rebuilding
                  and self._rebuild_after.get(p.name, 0.0) <= now]
        taken = await leases.take(conn, wanted, Lease.APPLY)
        for p in (p for p in self._projections if p.name in taken):
            version, checkpoint = await checkpoints.ensure(conn, p)
            if version > p.version:
                # Newer code has rebuilt it (a rolling upgrade): rebuilding it back would
                # only start a tug of war. Stand by; the newer runners apply it.
                await leases.release(conn, [p.name], Lease.APPLY)
                self._defer_rebuild(p.name, f"its tables are at version {version}, this code's "
                                    f"is {p.version} (older): standing by for newer runners")
                continue
            if version != p.version:
                # Rebuilt beside the passes, on connections of its own, under its rebuild
                # lease (the other projections keep going); claimed again once swapped.
                await leases.release(conn, [p.name], Lease.APPLY)
                self._rebuild_aside(p, version)
                continue
            self.held[p.name] = checkpoint
        self._next_beat = time.monotonic() + leases.HEARTBEAT_INTERVAL

    def _rebuild_aside(self, p: Projection, version: int) -> None:
        """Rebuild ``p`` in a task of its own; the next claim after it takes ``p`` again."""
        async def rebuild() -> None:
            try:
                await self._rebuild(p, version)
            except Exception as error:  # retried at a later claim, after a wait
                self._defer_rebuild(p.name, f"rebuilding it failed: {mask_error(error, self._dsn)}")
            finally:
                del self._rebuilding[p.name]
                self._wake.set()
        self._rebuilding[p.name] = asyncio.get_running_loop().create_task(
            rebuild(), name=f"crashlog-rebuild-{p.name}")

    async def _prepare(self, conn: asyncpg.Connection, p: Projection) -> bool:
        """Create a user's projection's tables on its first run; False (and no longer
        applied) if its declaration changed without a new version."""
        try:
            await registry.prepare(conn, p)
        except InvalidProjection as refused:
            log.error("crashlog projections: %s; no longer applying it", refused)
            self._projections = [q for q in self._projections if q.name != p.name]
            return False
        return True

    async def _rebuild(self, p: Projection, version: int) -> bool:
        """Rebuild ``p``, whose stored version is ``version``; False if another process is
        rebuilding it (this runner stands by for it meanwhile)."""
        log.warning("crashlog projections: %s is at version %s, this code at %s: rebuilding",
                    p.name, version, p.version)
        try:
            await rebuild_with_keeper(self._dsn, [p], progress=self._progress, connections=1)
        except RebuildBusy as busy:
            log.info("crashlog projections: %s", busy)
            return False
        except RebuildRefused as refused:  # needs a fix (a view, a role, a stop): back off
            self._defer_rebuild(p.name, str(refused))
            return False
        self._rebuild_after.pop(p.name, None)
        self._rebuild_waits.pop(p.name, None)
        return True

    def _defer_rebuild(self, name: str, why: str) -> None:
        """Try ``name`` again only after a wait that doubles each time (30 s up to 10 min):
        a refusal that needs an operator's fix must not rebuild the whole log every pass."""
        wait = min(self._rebuild_waits.get(name, REBUILD_RETRY / 2) * 2, MAX_REBUILD_RETRY)
        self._rebuild_waits[name] = wait
        self._rebuild_after[name] = time.monotonic() + wait
        log.warning("crashlog projections: not applying %s: %s; trying again in %.0f s",
                    name, why, wait, extra={"projection": name, "retry_seconds": wait})

    async def _heartbeat(self, conn: asyncpg.Connection) -> None:
        """Refresh the held leases when due; stop applying those another runner took."""
        if not self.held or time.monotonic() < self._next_beat:
            return
        still = await leases.refresh(conn, list(self.held), Lease.APPLY)
        for name in set(self.held) - still:
            log.error("crashlog projections: the lease of %s was taken over (this runner was"
                      " silent for over %.0f s); no longer applying it", name, leases.LEASE_TIMEOUT)
            del self.held[name]
        self._next_beat = time.monotonic() + leases.HEARTBEAT_INTERVAL

    async def _refresh_lag(self, conn: asyncpg.Connection) -> None:
        """Note the held projections' lag when due (one query per ``LAG_REFRESH`` seconds)."""
        if time.monotonic() < self._next_lag:
            return
        self._next_lag = time.monotonic() + LAG_REFRESH
        self.lag = await checkpoints.lag(conn, list(self.held)) if self.held else {}

    @property
    def state(self) -> str:
        """"applying" (holds a lease), "standby" (holds none), "reconnecting" or "stopped"."""
        connected = "applying" if self.held else "standby"
        return "stopped" if self._stop.is_set() else connected if self._connected else "reconnecting"

    def _active(self) -> list[Projection]:
        """The held projections to apply now: not resting after a failure or a stop."""
        now = time.monotonic()
        return [p for p in self._projections if p.name in self.held
                and self._resting.get(p.name, (0.0, 0.0))[0] <= now]

    async def _behind(self, conn: asyncpg.Connection) -> bool:
        return await checkpoints.any_after(
            conn, min(self.held[p.name] for p in self._active()))

    async def _catch_up(self, conn: asyncpg.Connection) -> None:
        """Apply passes until none is behind. A pass gives every held projection its next
        batch in one transaction: each gets its share, and the pass commits once."""
        busy = True
        while busy and self.held and not self._stop.is_set():
            busy = await self._apply_pass(conn) == self._batch_size
            await self._heartbeat(conn)
            await self._refresh_lag(conn)

    async def _apply_pass(self, conn: asyncpg.Connection) -> int:
        """Apply one batch to every held projection; returns the largest batch applied."""
        held = self._active()
        if not held:
            return 0
        try:
            done = await checkpoints.apply_next_batches(conn, held, self._batch_size)
        except StaleCheckpoint as error:
            log.error("crashlog projections: %s; no longer applying it", error)
            await leases.release(conn, [error.name], Lease.APPLY)
            self._projections = [p for p in self._projections if p.name != error.name]
            del self.held[error.name]
            return self._batch_size  # the others are still to apply: pass again
        largest = 0
        for p in held:
            outcome = done[p.name]
            self.held[p.name] = Position(*outcome.end)
            self._heed(p, outcome)
            if outcome.passed:
                self.batches_applied += 1
                self.counters[p.name]["batches_applied"] += 1
                await self._statistics.after_batch(conn, p)
            largest = max(largest, outcome.passed)
        return largest

    def _heed(self, p: Projection, outcome: guard.Outcome) -> None:
        """Log what a projection skipped, stopped at or failed on; rest it after a failure
        (backing off, 0.1 s doubling to 5 s) or a stop."""
        self.skipped_events += len(outcome.skipped)
        self.counters[p.name]["skipped_events"] += len(outcome.skipped)
        for failed in outcome.skipped:
            log.error("crashlog projections: %s skipped event %s (position %s): %s",
                      p.name, failed.event_id, failed.position, failed.error)
        if outcome.stopped is not None:
            if p.name not in self._resting:
                log.error("crashlog projections: %s stopped at event %s (position %s): %s",
                          p.name, outcome.stopped.event_id, outcome.stopped.position,
                          outcome.stopped.error)
            self._resting[p.name] = (time.monotonic() + STOPPED_RECHECK, STOPPED_RECHECK)
        elif outcome.failure is not None:
            self.failed_attempts += 1
            self.counters[p.name]["failed_attempts"] += 1
            delay = min(self._resting.get(p.name, (0.0, FIRST_RETRY / 2))[1] * 2, MAX_RETRY)
            self._resting[p.name] = (time.monotonic() + delay, delay)
            log.warning("crashlog projections: %s failed: %s; retrying in %.1fs", p.name,
                        mask_error(outcome.failure, self._dsn), delay)
        else:
            self._resting.pop(p.name, None)

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)


def side_by_side(
    dsn: str,
    projections: Sequence[Projection] = PROJECTIONS,
    *,
    connections: int = RUNNER_CONNECTIONS,
    progress: Progress | None = None,
) -> list[Runner]:
    """Runners (not started) that share ``projections`` out between ``connections``
    connections by weight, so the server applies a batch on that many cores at once."""
    return [Runner(dsn, group, progress=progress) for group in share(projections, connections)]


async def follow(
    dsn: str,
    *,
    stop_event: asyncio.Event | None = None,
    progress: Progress | None = None,
    names: Sequence[str] | None = None,
    connections: int = RUNNER_CONNECTIONS,
    extra: Sequence[Projection] = (),
    observe: Callable[[Sequence[Runner]], object] | None = None,
) -> None:
    """Keep the read tables current until ``stop_event`` is set (forever without one).

    ``extra``: users' projections to apply beside the built-ins (checked first:
    ``registry.check``). ``progress(done, total)`` hears of rebuilds of projections whose
    version changed; ``observe(runners)`` is given the runners once started
    (``crashlog.metrics`` reads them).
    """
    await _check(dsn, extra)
    runners = side_by_side(dsn, select(list(names) if names else None, extra),
                           connections=connections, progress=progress)
    for runner in runners:
        runner.start()
    if observe is not None:
        observe(runners)
    try:
        await (stop_event or asyncio.Event()).wait()
    finally:
        for runner in runners:
            await runner.stop()


async def rebuild(
    dsn: str,
    names: Sequence[str],
    *,
    progress: Progress | None = None,
    connections: int = REBUILD_CONNECTIONS,
    extra: Sequence[Projection] = (),
    concurrent_indexes: bool = False,
) -> None:
    """Rebuild the projections ``names`` (``["all"]`` for every one, ``extra``: users'
    projections among them) from the log, then swap.

    ``connections`` server connections fill the shadow tables side by side (the server
    does the work: use about as many as it has cores to spare).

    Bots may keep writing and runners keep applying meanwhile; readers see the old
    tables until the swap. ``progress(done, total)`` is called as it goes;
    ``concurrent_indexes``: see ``rebuild_projections``."""
    chosen = select(list(names), extra)
    await _check(dsn, [p for p in chosen if p.declaration is not None])
    await rebuild_with_keeper(dsn, chosen, progress=progress, connections=connections,
                              concurrent_indexes=concurrent_indexes)


async def _check(dsn: str, projections: Sequence[Projection]) -> None:
    """``registry.check`` of users' projections, before anything runs."""
    if projections:
        conn = await open_connection(dsn, init=store.init_connection)
        try:
            await registry.check(conn, projections)
        finally:
            await conn.close()


__all__ = [
    "CHANNEL", "REBUILD_CONNECTIONS", "REBUILD_SETTINGS", "SERVER_SETTINGS", "Runner", "follow", "lag", "rebuild",
    "rebuild_with_keeper", "side_by_side", "states", "wait_projected",
]
