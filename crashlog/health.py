"""Health checks of a crashlog installation: the server, the migrations, the projections'
                       await stopped_check(conn), await projection_errors_check(conn),
                       await shadows_check(conn), await grants_check(conn),
                       await horizon_check(conn)]

Promises:
- Every check is a frozen ``Check(name, ok, detail)``; ``detail`` says what was found and,
  when ``ok`` is false, what to do about it. No check writes anything.
- ``diagnose`` never raises for a server it cannot reach: that is a failed "server" check
  (its detail names the server with the password masked), and no other check is run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import attrs

from crashlog import migrations
from crashlog.database import ConnectFailed, mask_dsn, open_connection, resolve_dsn
from crashlog.errors import CrashlogError
from crashlog.spool import inspect_folder

#: Events a projection may be behind before ``lag_check`` fails.
DEFAULT_MAX_LAG = 10_000
#: Seconds a transaction may stay open before ``horizon_check`` names it.
DEFAULT_MAX_TRANSACTION_AGE = 60.0
#: The columns of crashlog.events only the server sets (no writer may INSERT them).
SERVER_COLUMNS = ("position", "recorded_at", "tx_id")

_REJECTED = "SELECT count(*) FROM crashlog.rejected_events"
_CONTRADICTORY = "SELECT count(*) FROM crashlog.rounds WHERE is_contradictory"
_SKIPPED = """
SELECT projection, event_id, position, error, count(*) OVER () AS total
FROM crashlog.projection_errors ORDER BY recorded_at, projection, position LIMIT $1
"""
#: Rows named in a failed check's detail (the count says how many there are in all).
SHOWN = 5


@attrs.frozen
class Check:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str


async def diagnose(
    dsn: str | None, *, max_lag: int = DEFAULT_MAX_LAG, spool_dir: str | Path | None = None
) -> list[Check]:
    """Every check, in order: server, migrations, then (if migrated) lag, records, grants and
    open transactions, then the spool. ``dsn`` None means ``CRASHLOG_DSN``, else the embedded server."""
    try:
        resolved = await asyncio.to_thread(resolve_dsn, dsn)
        conn = await open_connection(resolved)
    except ConnectFailed as exc:
        return [Check("server", False, str(exc))]
    try:
        checks = [await server_check(conn, resolved), await migrations_check(conn)]
        if checks[-1].ok:
            checks += [await lag_check(conn, max_lag), await records_check(conn),
                       await stopped_check(conn), await projection_errors_check(conn),
                       await shadows_check(conn), await grants_check(conn),
                       await horizon_check(conn)]
    finally:
        await conn.close()
    return [*checks, spool_check(spool_dir)]


async def server_check(conn: asyncpg.Connection, dsn: str) -> Check:
    """The server's version and where it is (password masked)."""
    version = await conn.fetchval("SHOW server_version")
    return Check("server", True, f"PostgreSQL {version} at {mask_dsn(dsn)}")


async def migrations_check(conn: asyncpg.Connection) -> Check:
    """Fails if a migration is pending, or an applied one was changed since."""
    try:
        pending = await migrations.pending_migrations(conn)
    except CrashlogError as exc:
        return Check("migrations", False, str(exc))
    if pending:
        names = ", ".join(m.name for m in pending)
        return Check("migrations", False, f"pending: {names} (run: crashlog migrate)")
    return Check("migrations", True, f"{len(migrations.load_migrations())} applied, none pending")


async def lag_check(conn: asyncpg.Connection, max_lag: int = DEFAULT_MAX_LAG) -> Check:
    """Fails if a projection is more than ``max_lag`` committed events behind the log, naming
    it with its old names (``round_outcomes`` for ``rounds``)."""
    from crashlog.projections import called, runner  # the runner's imports are for doctor alone

    lag = await runner.lag(conn)
    name, (events, seconds) = max(lag.items(), key=lambda item: item[1][0], default=("-", (0, 0.0)))
    if events <= max_lag:
        return Check("projections", True, f"all {len(lag)} projections within {max_lag:,} events")
    return Check(
        "projections",
        False,
        f"{called(name)} is {events:,} events ({seconds:.0f} s) behind: is a runner running? "
        "(crashlog project --follow)",
    )


async def records_check(conn: asyncpg.Connection) -> Check:
    """How many events the server refused and rounds contradict themselves (kept, so ok)."""
    rejected = await conn.fetchval(_REJECTED)
    contradictory = await conn.fetchval(_CONTRADICTORY)
    return Check(
        "records",
        True,
        f"{rejected:,} rejected events, {contradictory:,} contradictory rounds (kept, flagged)",
    )


async def stopped_check(conn: asyncpg.Connection) -> Check:
    """Fails if a projection stopped at an event it cannot read (``on_error="stop"``),
    naming it (with its old names), the event, the error and since when."""
    from crashlog.projections import called, checkpoints

    rows = await checkpoints.stopped(conn)
    if not rows:
        return Check("stopped projections", True, "none")
    named = "; ".join(
        f"{called(r['name'])} at event {r['stopped_event_id']} (position {r['stopped_position']}) "
        f"since {r['stopped_at']:%Y-%m-%d %H:%M:%S%z}: {r['stopped_error']}" for r in rows)
    return Check("stopped projections", False,
                 f"{named} (fix the handler and bump its version, or rebuild it)")


async def projection_errors_check(conn: asyncpg.Connection) -> Check:
    """Fails if a projection skipped events it cannot read (``crashlog.projection_errors``),
    naming the first few (projection, event id, position, error) and how many in all."""
    rows = await conn.fetch(_SKIPPED, SHOWN)
    if not rows:
        return Check("projection errors", True, "no event skipped")
    named = "; ".join(
        f"{r['projection']} skipped event {r['event_id']} (position {r['position']}): "
        f"{r['error']}" for r in rows)
    total = rows[0]["total"]
    more = f" and {total - len(rows):,} more" if total > len(rows) else ""
    return Check(
        "projection errors", False,
        f"{total:,} events skipped by projections, unreadable: {named}{more} "
        "(see crashlog.projection_errors; rows not written by the SDK?)")


async def shadows_check(conn: asyncpg.Connection) -> Check:
    """Fails if a rebuild killed midway left shadow tables that no rebuild holds, naming
    them and their size (a runner's next start, or a rebuild of their projection, drops
    them)."""
    from crashlog.projections import PROJECTIONS, registry, shadows

    found = await shadows.shadows(conn, [*PROJECTIONS, *registry.registered()])
    left = [s for s in found if not s.rebuilding]
    busy = len(found) - len(left)
    doing = f"{busy} being rebuilt now" if busy else "none"
    if not left:
        return Check("rebuild shadows", True, f"no shadow left behind ({doing})")
    named = ", ".join(f"crashlog.{s.table} ({s.bytes:,} bytes)" for s in left)
    return Check(
        "rebuild shadows", False,
        f"left by a rebuild that did not finish: {named}; a runner's next start (crashlog "
        "project --follow) or a rebuild of the projection drops them")


def spool_check(spool_dir: str | Path | None) -> Check:
    """Fails if events wait in the spool folder (a read-only look; None: no folder to look at)."""
    if not spool_dir:
        return Check("spool", True, "no spool folder given (--spool-dir or CRASHLOG_SPOOL_DIR)")
    found = inspect_folder(spool_dir)
    if not found.exists:
        return Check("spool", True, f"{found.folder}: empty (does not exist)")
    if not found.events:
        return Check("spool", True, f"{found.folder}: empty")
    return Check(
        "spool",
        False,
        f"{found.folder}: {found.events:,} events in {found.segments} segments "
        f"({found.bytes:,} bytes) wait to be replayed: start a logger with "
        f"spool_dir={str(found.folder)!r} while the server is up",
    )


# Roles, other than the log's owner, its members and superusers, that may INSERT a column
# only the server sets (a role set up before migration 012 may: the whole table was granted).
_SERVER_COLUMN_INSERTERS = """
SELECT r.rolname AS role, array_agg(col ORDER BY col) AS columns
FROM pg_roles r CROSS JOIN unnest($1::text[]) AS col, pg_class t
WHERE t.oid = 'crashlog.events'::regclass
  AND NOT r.rolsuper AND r.rolname NOT LIKE 'pg\\_%'
  AND NOT pg_has_role(r.oid, t.relowner, 'USAGE')
  AND has_column_privilege(r.oid, t.oid, col, 'INSERT')
GROUP BY r.rolname ORDER BY r.rolname
"""


async def grants_check(conn: asyncpg.Connection) -> Check:
    """Fails if a role other than the log's owner may INSERT ``position``, ``recorded_at`` or
    ``tx_id`` of ``crashlog.events`` (a writer choosing ``tx_id`` can hide a row from the live
    projections): roles set up before migration 012 need ``crashlog roles`` run again."""
    rows = await conn.fetch(_SERVER_COLUMN_INSERTERS, list(SERVER_COLUMNS))
    if not rows:
        return Check("grants", True, "no role but the log's owner may set "
                     + ", ".join(SERVER_COLUMNS))
    named = "; ".join(f"{r['role']} may INSERT {', '.join(r['columns'])}" for r in rows[:5])
    more = f" (and {len(rows) - 5} more roles)" if len(rows) > 5 else ""
    return Check("grants", False, f"{named}{more} of crashlog.events, which only the server "
                 "sets (run: crashlog roles, as the administrator)")


# Sessions whose transaction has been open for over $1 seconds. Transaction ids are
# cluster-wide, so one in any database holds back crashlog's reading horizon. Without
# pg_read_all_stats, other roles' sessions show no xact_start and cannot be named.
_OLD_TRANSACTIONS = """
SELECT pid, usename AS role, datname AS database, application_name AS application, state,
       extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND xact_start < clock_timestamp() - make_interval(secs => $1)
  AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
ORDER BY xact_start
"""


async def horizon_check(
    conn: asyncpg.Connection, max_age: float = DEFAULT_MAX_TRANSACTION_AGE
) -> Check:
    """Fails naming every transaction open for over ``max_age`` seconds (pid, role, database,
    age): it holds back the reading horizon, so projections, ``sync`` and ``tail`` wait for it."""
    rows = await conn.fetch(_OLD_TRANSACTIONS, max_age)
    if not rows:
        return Check("horizon", True, f"no transaction open for over {max_age:g} s")
    named = "; ".join(
        f"pid {r['pid']} (role {r['role'] or '?'}, database {r['database'] or '?'}, "
        f"application {r['application'] or '?'!r}, {r['state'] or '?'}) open {r['age']:.0f} s"
        for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return Check("horizon", False, f"{named}{more}: holds back the reading horizon (projections "
                 "and sync wait for it); end it, or SELECT pg_terminate_backend(pid)")
