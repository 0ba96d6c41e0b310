"""``crashlog project``: keep the read tables current, rebuild them, or show their lag."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import orjson
from rich.text import Text

from crashlog.cli.common import add_verb, connection
from crashlog.cli.render import DataTable, err, make_table, out, plain, print_json, progress_bar, say
from crashlog.database import mask_dsn, open_connection, resolve_dsn

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crashlog.cli.common import Verbs
    from crashlog.projections.base import Projection
    from crashlog.projections.checkpoints import State
    from crashlog.projections.progress import ProjectionLag
    from crashlog.projections.runner import Runner

log = logging.getLogger("crashlog.cli")


def register(verbs: Verbs) -> None:
    """Add ``project`` to the parser."""
    project = add_verb(
        verbs, "project", "keep the read tables current, rebuild them, or show their lag",
        cmd_project,
    )
    project.add_argument("--follow", action="store_true", help="apply new events until stopped")
    project.add_argument(
        "--seconds", type=float, default=None, help="with --follow: stop after this"
    )
    project.add_argument(
        "--rebuild",
        action="append",
        metavar="NAME|all",
        help="rebuild projections from the log, then swap them in",
    )
    project.add_argument(
        "--concurrent-indexes", action="store_true",
        help="with --rebuild: build the indexes with CREATE INDEX CONCURRENTLY, so live "
        "projections do not wait for them (waits for every older open transaction)",
    )
    project.add_argument(
        "--lag", action="store_true", help="show how far each projection is behind"
    )
    project.add_argument(
        "--with", dest="with_", action="append", default=[], metavar="MODULE:ATTR",
        help="a projection of your own (@projection) to follow or rebuild too (repeatable; "
        "also CRASHLOG_PROJECTIONS, comma-separated)",
    )
    project.add_argument(
        "--drop", metavar="NAME",
        help="remove a projection of your own: its tables, checkpoint and recorded errors",
    )
    project.add_argument("--json", action="store_true",
                         help="with --lag: print the lag as JSON (see docs/operations.md)")
    project.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                         help="with --follow: serve Prometheus metrics at http://HOST:PORT/metrics")
    project.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                         help="address the metrics server listens on (default 127.0.0.1)")


async def cmd_project(args: argparse.Namespace) -> int:
    from crashlog.projections import registry

    dsn = await asyncio.to_thread(resolve_dsn, args.dsn)
    conn = await open_connection(dsn)  # reach the server first: a clear error if it is not there
    await conn.close()
    extra = registry.register([*registry.from_environment(), *registry.load_all(args.with_)])
    if args.drop:
        await drop(dsn, args.drop)
    if args.rebuild:
        await rebuild(dsn, [n for part in args.rebuild for n in part.split(",")], extra,
                      concurrent_indexes=args.concurrent_indexes)
    if args.follow:
        await follow(dsn, args.seconds, extra, metrics=_metrics_server(args))
    if args.lag or not (args.rebuild or args.follow or args.drop):
        await show_lag(dsn, as_json=args.json)
    return 0


async def drop(dsn: str, name: str) -> None:
    """Remove the user's projection ``name`` and say which tables went with it."""
    from crashlog.projections import registry

    conn, _ = await connection(dsn)
    try:
        tables = await registry.drop(conn, name)
    finally:
        await conn.close()
    say(f"dropped projection {name}" + (f" and its tables: {', '.join(tables)}" if tables else ""))


async def rebuild(dsn: str, names: list[str], extra: Sequence[Projection] = (), *,
                  concurrent_indexes: bool = False) -> None:
    """Rebuild ``names`` with a progress bar, then say how many events it took and how fast."""
    from crashlog.projections import runner

    started, events = time.monotonic(), [0]
    with progress_bar(f"rebuilding {', '.join(names)}", "events") as bar:
        task = bar.add_task("rebuild", total=None)

        def advance(done: int, total: int) -> None:
            events[0] = done
            bar.update(task, completed=done, total=total)

        await runner.rebuild(dsn, names, progress=advance, extra=extra,
                             concurrent_indexes=concurrent_indexes)
    took = time.monotonic() - started
    say(f"rebuilt: {', '.join(names)} ({events[0]:,} events in {took:.1f} s, "
        f"{events[0] / max(took, 1e-9):,.0f} events/s)")


def _metrics_server(args: argparse.Namespace) -> Callable[[Sequence[Runner]], object] | None:
    """With ``--metrics-port``: a function that serves the runners' metrics once they start."""
    if args.metrics_port is None:
        return None
    from crashlog import metrics  # needs the metrics extra: fail before following

    def serve(runners: Sequence[Runner]) -> None:
        metrics.register_runners(runners)
        metrics.serve(args.metrics_port, args.metrics_host)
        log.info("serving metrics at http://%s:%d/metrics", args.metrics_host, args.metrics_port,
                 extra={"metrics_host": args.metrics_host, "metrics_port": args.metrics_port})

    return serve


async def follow(dsn: str, seconds: float | None, extra: Sequence[Projection] = (),
                 metrics: Callable[[Sequence[Runner]], object] | None = None) -> None:
    """Apply new events until Ctrl-C, or for ``seconds``; ``metrics`` is given the runners."""
    from crashlog.projections import runner

    stop = asyncio.Event()
    if seconds:
        asyncio.get_running_loop().call_later(seconds, stop.set)
    say(f"following the log on {mask_dsn(dsn)} (Ctrl-C to stop)", console=err)
    with contextlib.suppress(asyncio.CancelledError):
        await runner.follow(dsn, stop_event=stop, extra=extra, observe=metrics)


async def show_lag(dsn: str, *, as_json: bool = False) -> None:
    from crashlog.projections import progress

    conn, _ = await connection(dsn)
    try:
        listing = await progress.lag_listing(conn)
    finally:
        await conn.close()
    if as_json:
        print_json(orjson.dumps(lag_json(listing)).decode())
    else:
        out.print(lag_table(listing))


def lag_json(listing: Sequence[ProjectionLag]) -> dict[str, object]:
    """``{"projections": [{"name", "events_behind", "oldest_waiting_seconds", "skipped_events",
    "stopped", "stopped_at", "stopped_event_id", "stopped_error", "alias_of"}]}``
    (docs/operations.md); an old name's entry has its projection's figures and ``alias_of``."""
    rows = []
    for row in listing:
        state = row.state
        stopped = state is not None and state.stopped_at is not None
        rows.append({
            "name": row.name, "events_behind": row.events_behind,
            "oldest_waiting_seconds": row.oldest_waiting_seconds,
            "skipped_events": state.skipped if state else 0, "stopped": stopped,
            "stopped_at": state.stopped_at.isoformat() if stopped and state and state.stopped_at else None,
            "stopped_event_id": str(state.stopped_event_id) if stopped and state else None,
            "stopped_error": state.stopped_error if stopped and state else None,
            "alias_of": row.alias_of,
        })
    return {"projections": rows}


def lag_table(listing: Sequence[ProjectionLag]) -> DataTable:
    """Per projection (and old name: "round_outcomes (part of rounds)"): how far behind, events
    skipped as unreadable, and whether stopped."""
    columns = ("projection", "events behind", "oldest waiting (s)", "skipped", "state")
    table = make_table("projection lag", columns, right=columns[1:4])
    for row in listing:
        known = row.events_behind is not None and row.oldest_waiting_seconds is not None
        table.add_row(row.label, f"{row.events_behind:,}" if known else "-",
                      f"{row.oldest_waiting_seconds:.1f}" if known else "-",
                      f"{row.state.skipped:,}" if row.state else "0", _state_text(row.state))
    return table


def _state_text(state: State | None) -> Text:
    if state is None or state.stopped_at is None:
        return plain("running")
    return plain(f"STOPPED at event {state.stopped_event_id} (position "
                f"{state.stopped_position}) since {state.stopped_at:%Y-%m-%d %H:%M:%S}: "
                f"{state.stopped_error}")
