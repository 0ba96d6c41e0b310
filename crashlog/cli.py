"""The ``crashlog`` command: demo, migrate, roles, project, stats, signals, quality, export,
bench, tail, verify, doctor.

Every verb takes ``--dsn`` (default ``CRASHLOG_DSN``, else the embedded PostgreSQL).
Errors are one line on stderr, with any password masked, and exit status 1; tables and
progress bars go through rich (progress on stderr, so stdout stays clean for data).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
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

from crashlog import analytics, exports, migrations, store
from crashlog.database import ConnectFailed, mask_dsn, open_connection, resolve_dsn
from crashlog.errors import CrashlogError
from crashlog.features import FeatureSpec
from crashlog.simulator import DEFAULT_RTP, STRATEGIES

# Tables are wide: when stdout is not a terminal, do not squeeze them into 80 columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
#: ``export --features`` options, each a FeatureSpec field: (type, default and meaning).
FEATURE_OPTIONS: dict[str, tuple[Any, str]] = {
    "target": (Decimal, "2.00: hit = multiplier >= target"),
    "rtp": (float, f"{DEFAULT_RTP}: baseline rtp/target and the PIT's law"),
    "seed": (int, "0: the PIT's uniforms"),
    "lags": (int, "5 previous multipliers"),
    "windows": (str, "10,50,100 rounds"),
}


# -- helpers ------------------------------------------------------------------------------


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


async def connection(dsn_argument: str | None) -> tuple[asyncpg.Connection, str]:
    """A connection with crashlog's codecs to the chosen server, and its DSN."""
    dsn = await asyncio.to_thread(resolve_dsn, dsn_argument)
    conn = await open_connection(dsn)
    await store.init_connection(conn)
    return conn, dsn


def with_connection(
    work: Callable[[asyncpg.Connection, str, argparse.Namespace], Awaitable[int | None]],
) -> Callable[[argparse.Namespace], Awaitable[int | None]]:
    async def run(args: argparse.Namespace) -> int | None:
        conn, dsn = await connection(args.dsn)
        try:
            return await work(conn, dsn, args)
        finally:
            await conn.close()

    return run


def money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:+.2%}" if value < 0 else f"{value:.2%}"


# -- demo ---------------------------------------------------------------------------------


async def cmd_demo(args: argparse.Namespace) -> int:
    from crashlog.demo import run_demo

    dsn = await asyncio.to_thread(resolve_dsn, args.dsn)
    err.print(f"demo: {args.bots} bots x {args.rounds} rounds, rtp {args.rtp}, on {mask_dsn(dsn)}")
    with progress_bar("playing", "rounds") as bar:
        task = bar.add_task("rounds", total=args.rounds)
        result = await run_demo(
            dsn,
            bots=args.bots,
            rounds=args.rounds,
            strategy=args.strategy,
            rtp=args.rtp,
            seed=args.seed,
            target=args.target,
            progress=lambda n: bar.update(task, completed=n),
        )
    out.print(statistics_table(result.statistics, f"demo {result.run_id}: per-bot statistics"))
    note = warnings_note(result.statistics)
    if note:
        out.print(note, markup=False)
    out.print(
        f"{result.events:,} events written in {result.write_seconds:.2f} s "
        f"({result.write_rate:,.0f} events/s), projected after {result.sync_seconds:.2f} s"
    )
    return 0


def statistics_table(rows: Sequence[analytics.Statistics], title: str) -> Table:
    table = Table(title=title)
    # "streak" is the longest losing streak; "by chance" the longest expected for that
    # cash-out and number of bets.
    for column in (
        "bot",
        "target",
        "rounds",
        "win rate",
        "95% CI",
        "staked",
        "profit",
        "ROI",
        "95% CI ",
        "EV/bet",
        "max DD",
        "streak",
        "by chance",
    ):
        table.add_column(column, justify="left" if column == "bot" else "right", no_wrap=True)
    for s in rows:
        chance = s.expected_longest_losing_streak
        table.add_row(
            s.bot_id or s.strategy or "",
            "" if s.cashout is None else f"{s.cashout:.2f}",
            f"{s.rounds:,}",
            percent(s.win_rate),
            span(s.win_rate_interval),
            money(s.total_staked),
            money(s.total_profit),
            percent(s.roi),
            span(s.roi_interval),
            "" if s.expected_value is None else f"{s.expected_value:+.3f}",
            money(s.max_drawdown),
            str(s.longest_losing_streak),
            "" if chance is None else f"{chance:.1f}",
        )
    return table


def span(value: analytics.Interval | None) -> str:
    """An interval of fractions as ``46.9 .. 51.2%``."""
    return "" if value is None else f"{value.low * 100:.1f} .. {value.high * 100:.1f}%"


def warnings_note(rows: Sequence[analytics.Statistics]) -> str | None:
    """One line for the bots whose sample cannot tell their ROI from the house edge."""
    warned = [s for s in rows if s.warning]
    if not warned:
        return None
    edge = warned[0].house_edge
    return (
        f"{len(warned)} of {len(rows)} bots have too few bets to tell their ROI from the "
        f"house edge ({edge:+.1%}); `crashlog stats --bot NAME` says how many would be needed."
    )


# -- migrate ------------------------------------------------------------------------------


@with_connection
async def cmd_migrate(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    if args.check:
        pending = await migrations.pending_migrations(conn)
        for m in pending:
            out.print(f"pending: {m.name}")
        out.print("up to date" if not pending else f"{len(pending)} pending")
        return 1 if pending else 0
    applied = await migrations.migrate(conn)
    for m in applied:
        out.print(f"applied: {m.name}")
    out.print(f"{mask_dsn(dsn)}: schema up to date ({len(applied)} applied now)")
    return 0


# -- roles ------------------------------------------------------------------------------


@with_connection
async def cmd_roles(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    """Create the writer, projector and analyst roles; optionally a login in one of them."""
    from crashlog import roles

    made = await roles.create_roles(conn, args.prefix)
    table = Table(title="roles")
    table.add_column("role")
    table.add_column("may")
    table.add_row(made.writer, "append to crashlog.events (bots, with project=False)")
    table.add_row(made.projector, "read the log, own and write the read tables")
    table.add_row(made.analyst, "read every crashlog table")
    out.print(table)
    if args.login:
        password = os.environ.get("CRASHLOG_NEW_PASSWORD")
        if password is None:
            import getpass

            password = getpass.getpass(f"password for {args.login}: ")
        await roles.create_login(conn, args.login, args.kind, prefix=args.prefix, password=password)
        out.print(f"login {args.login} created in {args.prefix}_{args.kind}")
    return 0


# -- project ------------------------------------------------------------------------------


async def cmd_project(args: argparse.Namespace) -> int:
    from crashlog.projections import runner

    dsn = await asyncio.to_thread(resolve_dsn, args.dsn)
    conn = await open_connection(dsn)  # reach the server first: a clear error if it is not there
    await conn.close()
    if args.rebuild:
        names = [n for part in args.rebuild for n in part.split(",")]
        started, events = time.monotonic(), [0]

        def advance(done: int, total: int) -> None:
            events[0] = done
            bar.update(task, completed=done, total=total)

        with progress_bar(f"rebuilding {', '.join(names)}", "events") as bar:
            task = bar.add_task("rebuild", total=None)
            await runner.rebuild(dsn, names, progress=advance)
        took = time.monotonic() - started
        out.print(f"rebuilt: {', '.join(names)} ({events[0]:,} events in {took:.1f} s, "
                  f"{events[0] / max(took, 1e-9):,.0f} events/s)")
    if args.follow:
        stop = asyncio.Event()
        if args.seconds:
            asyncio.get_running_loop().call_later(args.seconds, stop.set)
        err.print(f"following the log on {mask_dsn(dsn)} (Ctrl-C to stop)")
        try:
            await runner.follow(dsn, stop_event=stop)
        except asyncio.CancelledError:
            pass
    if args.lag or not (args.rebuild or args.follow):
        conn, _ = await connection(dsn)
        try:
            out.print(lag_table(await runner.lag(conn)))
        finally:
            await conn.close()
    return 0


def lag_table(lag: dict[str, tuple[int, float]]) -> Table:
    table = Table(title="projection lag")
    table.add_column("projection")
    table.add_column("events behind", justify="right")
    table.add_column("oldest waiting (s)", justify="right")
    for name, (events, seconds) in lag.items():
        table.add_row(name, f"{events:,}", f"{seconds:.1f}")
    return table


# -- stats --------------------------------------------------------------------------------


@with_connection
async def cmd_stats(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    if args.bot or args.strategy:
        if args.bot:
            stats = await analytics.bot_statistics(conn, args.bot, args.strategy, rtp=args.rtp)
        else:
            stats = await analytics.strategy_statistics(conn, args.strategy, rtp=args.rtp)
        if args.json:
            out.print_json(orjson.dumps(stats.as_dict(), default=str).decode())
        else:
            out.print(statistics_table([stats], f"statistics of {args.bot or args.strategy}"))
            if stats.warning:
                out.print(f"[yellow]{stats.warning}[/]")
        return 0
    summaries = await analytics.bot_summaries(conn)
    if args.json:
        out.print_json(orjson.dumps(summaries, default=str).decode())
        return 0
    table = Table(title=f"bots ({len(summaries)})")
    for column in ("bot", "rounds", "wins", "losses", "skips", "staked", "profit", "ROI"):
        table.add_column(column, justify="left" if column == "bot" else "right")
    for s in summaries:
        roi = s["total_profit"] / s["total_staked"] if s["total_staked"] else None
        table.add_row(
            s["bot_id"],
            f"{s['rounds']:,}",
            f"{s['wins']:,}",
            f"{s['losses']:,}",
            f"{s['skips']:,}",
            money(s["total_staked"]),
            money(s["total_profit"]),
            percent(None if roi is None else float(roi)),
        )
    out.print(table)
    return 0


# -- signals ------------------------------------------------------------------------------


@with_connection
async def cmd_signals(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    from crashlog.analytics import signals

    report = await signals.signal_report(
        conn,
        game=args.game,
        platform=args.platform,
        bot_id=args.bot,
        rtp=args.rtp,
        holdout=args.holdout,
        q=args.q,
    )
    if args.json:
        out.print_json(orjson.dumps(report.as_dict(), default=str).decode())
        return 0
    out.print(signals_table(report))
    for line in signals.report_notes(report):
        out.print(line, markup=False)
    return 0


def signals_table(report: analytics.SignalReport) -> Table:
    from crashlog.analytics import signals

    table = Table(title=f"signals against chance (Benjamini-Hochberg at q={report.q:g})")
    # p: two-sided, hits against the baseline; BH p: adjusted across types; skill: Brier
    # skill score of the confidences against forecasting the baseline.
    for column in (
        "signal type",
        "targets",
        "signals",
        "hit rate",
        "95% CI",
        "baseline",
        "p",
        "BH p",
        "Brier",
        "skill",
        "verdict",
    ):
        left = column in ("signal type", "verdict")
        table.add_column(column, justify="left" if left else "right", no_wrap=not left)
    for t in report.types:
        targets = ", ".join(f"{c:.2f}" for c in t.targets[:3])
        colour = {signals.BETTER: "green", signals.WORSE: "red"}.get(t.verdict)
        table.add_row(
            t.signal_type,
            targets + (" ..." if len(t.targets) > 3 else ""),
            f"{t.n:,}",
            percent(t.hit_rate),
            span(t.interval),
            percent(t.baseline),
            "" if t.p_value is None else f"{t.p_value:.3g}",
            "" if t.adjusted_p is None else f"{t.adjusted_p:.3g}",
            "" if t.brier is None else f"{t.brier:.3f}",
            "" if t.brier_skill is None else f"{t.brier_skill:+.3f}",
            f"[{colour}]{t.verdict}[/]" if colour else t.verdict,
        )
    return table


# -- quality ------------------------------------------------------------------------------


@with_connection
async def cmd_quality(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    report = await analytics.quality_report(
        conn,
        game=args.game,
        platform=args.platform,
        bot_id=args.bot,
        since=args.since,
        until=args.until,
        rtp=args.rtp,
        significance=args.significance,
    )
    if args.json:
        out.print_json(orjson.dumps(report.as_dict(), default=str).decode())
        return 0
    out.print(quality_table(report))
    for check in report.shown_checks():
        if check.verdict == "suspect":
            out.print(f"{check.name}: {check.detail}", markup=False)
    return 0


def quality_table(report: analytics.QualityReport) -> Table:
    who = f" ({report.bot_id}'s readings)" if report.bot_id else ""
    table = Table(
        title=f"quality of {report.game} on {report.platform}{who}: {report.rounds:,} rounds",
        caption=f"{report.rtp_note}, significance {report.significance:g} (Holm-adjusted)",
    )
    for column in ("check", "figure", "expected", "verdict"):
        table.add_column(column, justify="right" if column == "figure" else "left")
    colours = {"ok": "green", "suspect": "red", "insufficient data": "yellow"}
    for check in report.shown_checks():
        verdict = f"[{colours[check.verdict]}]{check.verdict}[/]"
        table.add_row(check.name, check.figure, check.expected, verdict)
    return table


def iso_time(value: str) -> datetime:
    """An ISO 8601 time for --since/--until; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {value!r}: use ISO 8601, e.g. 2025-06-01T12:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- export -------------------------------------------------------------------------------


@with_connection
async def cmd_export(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    fmt = args.format or _format_of(args.output)
    if fmt == "parquet" and args.output == "-":
        raise CrashlogError("Parquet goes to a file: give --output FILE.parquet")
    filters: dict[str, Any] = {"game": args.game, "platform": args.platform}
    if args.what == "rounds":
        if args.features or args.exclude_flagged:
            raise CrashlogError("--features and --exclude-flagged are for multipliers")
        filters["bot_id"] = args.bot
    else:
        filters.update(exclude_flagged=args.exclude_flagged, features=_feature_spec(args))
    total = await exports.count_rows(conn, args.what, **filters)
    export = exports.export_rounds if args.what == "rounds" else exports.export_multipliers
    target: Any = sys.stdout.buffer if args.output == "-" else Path(args.output)
    with progress_bar(f"exporting {args.what}", args.what) as bar:
        task = bar.add_task(args.what, total=total)
        written = await export(
            conn, target, fmt, progress=lambda n: bar.update(task, completed=n), **filters
        )
    if args.output != "-":
        err.print(f"{written:,} {args.what} written to {args.output} ({fmt})")
    return 0


def _format_of(output: str) -> str:
    suffix = Path(output).suffix.lower().lstrip(".")
    return suffix if suffix in exports.FORMATS else "jsonl"


def _feature_spec(args: argparse.Namespace) -> FeatureSpec | None:
    """The ML export's settings from ``--features`` and the options that go with it."""
    given = {name: getattr(args, name) for name in FEATURE_OPTIONS}
    given = {name: value for name, value in given.items() if value is not None}
    if not args.features:
        if given:
            raise CrashlogError(f"--{next(iter(given))} goes with --features")
        return None
    return FeatureSpec(**given)


# -- bench --------------------------------------------------------------------------------


async def cmd_bench(args: argparse.Namespace) -> int:
    scripts = sorted(p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
    if not scripts:
        raise CrashlogError(f"no benchmarks found in {BENCHMARKS} (they ship with the source tree)")
    if args.list:
        for script in scripts:
            out.print(script.stem)
        return 0
    chosen = [s for s in scripts if not args.names or s.stem in args.names]
    unknown = set(args.names) - {s.stem for s in scripts}
    if unknown:
        known = ", ".join(s.stem for s in scripts)
        raise CrashlogError(f"unknown benchmark {sorted(unknown)[0]!r}; known: {known}")
    env = dict(os.environ)
    if args.dsn:
        env["CRASHLOG_DSN"] = args.dsn
    status = 0
    for script in chosen:
        err.print(f"[bold]== {script.stem} ==[/]")
        extra = ["--dsn", args.dsn] if args.dsn else []
        completed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(script), *extra, *args.extra],
            env=env,
            cwd=BENCHMARKS,
        )
        status = status or completed.returncode
    return status


# -- tail ---------------------------------------------------------------------------------

_TAIL = """
SELECT tx_id::text::bigint AS tx, position, event_type, bot_id, session_id, occurred_at,
       payload::text AS payload
FROM crashlog.events
WHERE (tx_id, position) > ($1::text::xid8, $2::bigint)
  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
  AND ($3::text IS NULL OR bot_id = $3)
  AND ($4::text IS NULL OR event_type = $4)
ORDER BY tx_id, position
LIMIT 1000
"""

_LAST = """
SELECT tx_id::text::bigint AS tx, position FROM crashlog.events
WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx_id DESC, position DESC LIMIT 1 OFFSET $1
"""


@with_connection
async def cmd_tail(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    """Print events as they commit, in the log's commit-safe order."""
    after = (0, 0)
    if not args.from_start:
        last = await conn.fetchrow(_LAST, args.last)
        if last is not None:
            after = (last["tx"], last["position"])
    wake = asyncio.Event()
    await conn.add_listener("crashlog_events", lambda *_: wake.set())
    err.print("following new events (Ctrl-C to stop)")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.seconds if args.seconds else None
    shown = 0
    while args.count is None or shown < args.count:
        rows = await conn.fetch(_TAIL, str(after[0]), after[1], args.bot, args.type)
        for row in rows:
            print_event(row)
            after = (row["tx"], row["position"])
            shown += 1
            if args.count is not None and shown >= args.count:
                return 0
        if deadline is not None and loop.time() >= deadline:
            return 0
        if not rows:
            wake.clear()
            try:  # woken by NOTIFY at each commit; the poll covers a held-back horizon
                await asyncio.wait_for(wake.wait(), 0.5)
            except TimeoutError:
                pass
    return 0


def print_event(row: asyncpg.Record) -> None:
    payload = row["payload"]
    if len(payload) > 160:
        payload = payload[:157] + "..."
    out.print(
        f"{row['position']:>9} {row['occurred_at']:%Y-%m-%d %H:%M:%S} "
        f"[bold]{row['event_type']}[/] {row['bot_id']} {payload}",
        markup=True,
        soft_wrap=True,
    )


# -- verify -------------------------------------------------------------------------------


@with_connection
async def cmd_verify(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> int:
    """Recorded rounds against a published hash chain, or recorded Spribe popups."""
    from crashlog import fairness

    if args.spribe:
        return await verify_spribe(conn, args)
    missing = [o for o, v in (("--game", args.game), ("--platform", args.platform),
                              ("--scheme", args.scheme), ("--hash", args.hash)) if not v]
    if missing:
        raise CrashlogError(f"verify needs {', '.join(missing)} (or --spribe)")
    report = await fairness.verify_chain(
        conn, platform=args.platform, game=args.game, scheme=args.scheme,
        latest_hash=args.hash, game_id=args.game_id, rounds=args.rounds,
    )
    table = Table(title=f"{report.game} on {report.platform}: rounds that differ from "
                        f"{report.scheme}")
    for column in ("game", "recorded", "readings", "computed", "observers", "ocr conf.",
                   "flags", "game hash"):
        table.add_column(column, justify="left" if column in ("flags", "game hash") else "right")
    for m in report.mismatches:
        spread = "" if m.min_multiplier == m.max_multiplier else (
            f"{m.min_multiplier}-{m.max_multiplier}")
        table.add_row(
            m.game_round_id, str(m.recorded), f"{m.readings} {spread}".strip(), str(m.computed),
            str(m.observers), "" if m.ocr_confidence is None else f"{m.ocr_confidence:.2f}",
            ",".join(m.quality_flags), m.game_hash,
        )
    if report.mismatches:
        out.print(table)
    out.print(
        f"games {report.latest_game_id - report.walked + 1}-{report.latest_game_id} "
        f"recomputed: {report.walked:,}; recorded: {report.recorded:,}; match: "
        f"{report.matched:,}; mismatch: {len(report.mismatches):,}; not recorded: "
        f"{report.missing:,}",
        markup=False,
    )
    if report.on_chain:
        out.print(f"the hash is game {report.latest_game_id} of the chain {report.scheme} "
                  "committed to", markup=False)
    else:
        out.print("the hash was not checked against a committed chain (--game-id given)",
                  markup=False)
    if report.recorded >= 10 and report.matched == 0:
        out.print("no recorded round matches: is --game-id the game whose hash --hash is, "
                  "and --scheme its operator's?", markup=False)
    return 1 if report.mismatches else 0


_FAIRNESS_RECORDS = """
SELECT platform, game, game_round_id, bot_id, result, findings::text AS findings, problems
FROM crashlog.fairness_records
WHERE ($1::text IS NULL OR game = $1) AND ($2::text IS NULL OR platform = $2)
ORDER BY occurred_at, event_id
"""


async def verify_spribe(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    rows = await conn.fetch(_FAIRNESS_RECORDS, args.game, args.platform)
    statuses: dict[str, dict[str, int]] = {}
    table = Table(title="provably-fair records with a failed or unconfirmed check")
    for column in ("game", "platform", "round", "bot", "result", "check", "status", "detail"):
        table.add_column(column)
    for row in rows:
        for finding in orjson.loads(row["findings"]):
            counts = statuses.setdefault(finding["check"], {})
            counts[finding["status"]] = counts.get(finding["status"], 0) + 1
            if finding["check"] in row["problems"]:
                table.add_row(row["game"], row["platform"], row["game_round_id"] or "",
                              row["bot_id"], str(row["result"] or ""), finding["check"],
                              finding["status"], finding["detail"])
    if table.row_count:
        out.print(table)
    out.print(f"{len(rows):,} provably-fair records", markup=False)
    for check, counts in statuses.items():
        summary = ", ".join(f"{status}: {n:,}" for status, n in sorted(counts.items()))
        out.print(f"  {check}: {summary}", markup=False)
    return 1 if table.row_count else 0


# -- doctor -------------------------------------------------------------------------------


async def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the server, the migrations, the projections' lag and the spool."""
    checks: list[tuple[str, bool, str]] = []
    try:
        conn, dsn = await connection(args.dsn)
    except ConnectFailed as exc:
        checks.append(("server", False, str(exc)))
        return report(checks)
    try:
        version = await conn.fetchval("SHOW server_version")
        checks.append(("server", True, f"PostgreSQL {version} at {mask_dsn(dsn)}"))
        checks.append(await check_migrations(conn))
        if checks[-1][1]:
            checks.append(await check_lag(conn, args.max_lag))
            checks.append(await check_records(conn))
    finally:
        await conn.close()
    checks.append(check_spool(args.spool_dir))
    return report(checks)


async def check_migrations(conn: asyncpg.Connection) -> tuple[str, bool, str]:
    try:
        pending = await migrations.pending_migrations(conn)
    except CrashlogError as exc:
        return "migrations", False, str(exc)
    if pending:
        names = ", ".join(m.name for m in pending)
        return "migrations", False, f"pending: {names} (run: crashlog migrate)"
    return "migrations", True, f"{len(migrations.load_migrations())} applied, none pending"


async def check_lag(conn: asyncpg.Connection, max_lag: int) -> tuple[str, bool, str]:
    from crashlog.projections import runner

    lag = await runner.lag(conn)
    worst = max(lag.items(), key=lambda item: item[1][0], default=("-", (0, 0.0)))
    name, (events, seconds) = worst
    ok = events <= max_lag
    detail = (
        f"all {len(lag)} projections within {max_lag:,} events"
        if ok
        else f"{name} is {events:,} events ({seconds:.0f} s) behind: is a runner "
        f"running? (crashlog project --follow)"
    )
    return "projections", ok, detail


async def check_records(conn: asyncpg.Connection) -> tuple[str, bool, str]:
    rejected = await conn.fetchval("SELECT count(*) FROM crashlog.rejected_events")
    contradictory = await conn.fetchval(
        "SELECT count(*) FROM crashlog.rounds WHERE is_contradictory"
    )
    return (
        "records",
        True,
        f"{rejected:,} rejected events, {contradictory:,} contradictory rounds (kept, flagged)",
    )


def check_spool(spool_dir: str | None) -> tuple[str, bool, str]:
    """Read-only look at a spool folder: segments and events waiting for the server."""
    from crashlog.spool import decode_batch, read_records

    if not spool_dir:
        return "spool", True, "no spool folder given (--spool-dir or CRASHLOG_SPOOL_DIR)"
    folder = Path(spool_dir).expanduser()
    if not folder.exists():
        return "spool", True, f"{folder}: empty (does not exist)"
    segments = sorted(folder.glob("*.spool"))
    events = sum(len(decode_batch(r)) for s in segments for r in read_records(s)[0])
    size = sum(s.stat().st_size for s in segments)
    if events:
        return (
            "spool",
            False,
            f"{folder}: {events:,} events in {len(segments)} segments "
            f"({size:,} bytes) wait to be replayed: start a logger with "
            f"spool_dir={str(folder)!r} while the server is up",
        )
    return "spool", True, f"{folder}: empty"


def report(checks: list[tuple[str, bool, str]]) -> int:
    table = Table(title="crashlog doctor")
    table.add_column("check")
    table.add_column("")
    table.add_column("detail")
    for name, ok, detail in checks:
        table.add_row(name, "[green]ok[/]" if ok else "[red]FAIL[/]", detail)
    out.print(table)
    return 0 if all(ok for _, ok, _ in checks) else 1


# -- the parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crashlog", description="An event-sourced logger for crash-game bots, on PostgreSQL."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(
        name: str, help: str, run: Callable[[argparse.Namespace], Awaitable[int | None]]
    ) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help, description=help)
        sub.add_argument(
            "--dsn",
            default=None,
            help="PostgreSQL DSN (default: CRASHLOG_DSN, else the embedded server)",
        )
        sub.set_defaults(run=run)
        return sub

    demo = verb(
        "demo", "simulated bots play a simulated crash game; print their statistics", cmd_demo
    )
    demo.add_argument("--bots", type=int, default=6, help="number of bots (default 6)")
    demo.add_argument("--rounds", type=int, default=2000, help="rounds per bot (default 2000)")
    demo.add_argument(
        "--strategy",
        default="mixed",
        choices=["mixed", *STRATEGIES],
        help="every bot's strategy, or mixed (the three in turn; default)",
    )
    demo.add_argument(
        "--target",
        default=None,
        help="every bot's cash-out multiplier (default: 2.00, 1.50, 3.00 in turn)",
    )
    demo.add_argument(
        "--rtp", type=float, default=DEFAULT_RTP, help="return to player (default 0.97)"
    )
    demo.add_argument("--seed", type=int, default=None, help="seed of the game (default random)")

    migrate = verb("migrate", "apply pending migrations (sql/NNN_*.sql)", cmd_migrate)
    migrate.add_argument(
        "--check", action="store_true", help="only list pending ones (exit 1 if any)"
    )

    roles = verb(
        "roles", "create the writer, projector and analyst roles (needs CREATEROLE)", cmd_roles
    )
    roles.add_argument("--prefix", default="crashlog", help="role names' prefix (default crashlog)")
    roles.add_argument(
        "--login",
        help="also create this login (password: CRASHLOG_NEW_PASSWORD "
        "or a prompt; sent to the server as a SCRAM verifier)",
    )
    roles.add_argument(
        "--kind",
        choices=["writer", "projector", "analyst"],
        default="writer",
        help="the role the login joins (default writer)",
    )

    project = verb(
        "project", "keep the read tables current, rebuild them, or show their lag", cmd_project
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
        "--lag", action="store_true", help="show how far each projection is behind"
    )

    stats = verb("stats", "statistics of a bot, a strategy, or every bot", cmd_stats)
    stats.add_argument("--bot", help="one bot's full statistics")
    stats.add_argument("--strategy", help="one strategy (with --bot: that bot's rounds of it)")
    stats.add_argument(
        "--rtp", type=float, default=DEFAULT_RTP, help="the game's RTP (default 0.97)"
    )
    stats.add_argument("--json", action="store_true", help="JSON instead of a table")

    signals_verb = verb(
        "signals", "score each signal type against chance (the law's r/c baseline)", cmd_signals
    )
    signals_verb.add_argument("--game")
    signals_verb.add_argument("--platform")
    signals_verb.add_argument("--bot", help="signals of this bot only")
    signals_verb.add_argument(
        "--holdout", type=float, default=None, help="score only the last fraction (e.g. 0.3)"
    )
    signals_verb.add_argument(
        "--rtp", type=float, default=None, help="default: the game's configured RTP, else 0.97"
    )
    signals_verb.add_argument("--q", type=float, default=0.05, help="BH false discovery rate")
    signals_verb.add_argument("--json", action="store_true", help="JSON instead of a table")

    quality = verb(
        "quality", "which collected multipliers can be trusted: checks against the law", cmd_quality
    )
    quality.add_argument("--game", required=True)
    quality.add_argument("--platform", required=True)
    quality.add_argument("--bot", help="check this bot's own readings")
    quality.add_argument("--since", type=iso_time, help="rounds first seen at or after (ISO 8601)")
    quality.add_argument("--until", type=iso_time, help="rounds first seen before (ISO 8601)")
    quality.add_argument(
        "--rtp", type=float, default=None, help="default: the game's configured RTP, else 0.97"
    )
    quality.add_argument(
        "--significance",
        type=float,
        default=analytics.quality.SIGNIFICANCE,
        help=f"significance level (default {analytics.quality.SIGNIFICANCE})",
    )
    quality.add_argument("--json", action="store_true", help="JSON instead of a table")

    export = verb(
        "export", "export rounds or multipliers (JSON lines, JSON, CSV, Parquet)", cmd_export
    )
    export.add_argument("what", choices=["rounds", "multipliers"])
    export.add_argument(
        "--format", choices=exports.FORMATS, help="default: from the output's extension, else jsonl"
    )
    export.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    export.add_argument("--bot", help="rounds of this bot only")
    export.add_argument("--game")
    export.add_argument("--platform")
    export.add_argument(
        "--exclude-flagged", action="store_true", help="multipliers: leave out flagged rounds"
    )
    export.add_argument(
        "--features",
        action="store_true",
        help="multipliers: add the label hit, its r/c baseline, the PIT and features "
        "from earlier rounds only (docs/ml_export.md)",
    )
    for name, (kind, default) in FEATURE_OPTIONS.items():
        export.add_argument(f"--{name}", type=kind, help=f"with --features (default {default})")

    bench = verb("bench", "run the benchmarks in benchmarks/ and print their tables", cmd_bench)
    bench.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    bench.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="ARG",
        help="argument passed to each benchmark (repeat), e.g. --extra=--events=20000",
    )

    tail = verb("tail", "print events as they are committed", cmd_tail)
    tail.add_argument("--from-start", action="store_true", help="from the first event")
    tail.add_argument("--last", type=int, default=10, help="show this many recent events first")
    tail.add_argument("--bot", help="only this bot's events")
    tail.add_argument("--type", help="only this event type, e.g. RoundSettled")
    tail.add_argument("--count", type=int, default=None, help="stop after this many events")
    tail.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")

    verify_verb = verb(
        "verify",
        "check recorded rounds against a published hash chain, or recorded Spribe popups",
        cmd_verify,
    )
    verify_verb.add_argument("--game")
    verify_verb.add_argument("--platform")
    verify_verb.add_argument(
        "--scheme", choices=["bustabit-v1", "bustabit-v2", "bustabit-classic", "stake"]
    )
    verify_verb.add_argument("--hash", help="the hash of game --game-id (a late game)")
    verify_verb.add_argument(
        "--game-id", type=int, default=None,
        help="the game number of --hash (default: found by hashing it to the scheme's "
        "terminating hash, which also proves it is on the committed chain)",
    )
    verify_verb.add_argument(
        "--rounds", type=int, default=1000, help="games to walk back (default 1000)"
    )
    verify_verb.add_argument(
        "--spribe", action="store_true", help="check the recorded FairnessRecorded popups"
    )

    doctor = verb(
        "doctor", "check the server, migrations, projection lag and the spool", cmd_doctor
    )
    doctor.add_argument(
        "--spool-dir",
        default=os.environ.get("CRASHLOG_SPOOL_DIR"),
        help="spool folder to inspect (default CRASHLOG_SPOOL_DIR)",
    )
    doctor.add_argument(
        "--max-lag",
        type=int,
        default=10_000,
        help="events a projection may be behind before it is a failure",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crashlog`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status = asyncio.run(args.run(args))
    except KeyboardInterrupt:
        return 130
    except asyncpg.UndefinedTableError as exc:
        err.print(
            f"crashlog {args.verb}: error: {exc}: the database has no crashlog schema "
            "yet (run: crashlog migrate)",
            markup=False,
        )
        return 1
    except (CrashlogError, ValueError, OSError, asyncpg.PostgresError) as exc:
        message = str(exc)
        if args.dsn:
            message = message.replace(args.dsn, mask_dsn(args.dsn))
        err.print(f"crashlog {args.verb}: error: {message}", markup=False)
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
