"""Every ``crashlog`` verb, run as a user runs it: a subprocess against the test's database."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

import crashlog
from crashlog.events import RoundSettled
from crashlog.projections import NAMES
from crashlog.spool import Spool
from crashlog.store import Row

_SCRIPT = Path(sys.executable).with_name("crashlog")
# The installed console script when there is one (as after `pip install`), else the module.
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "crashlog.cli"]


def crashlog_cli(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CRASHLOG_DSN"}
    env["CRASHLOG_NEW_PASSWORD"] = "not-a-secret-test-password"
    done = subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check:
        assert done.returncode == 0, f"crashlog {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done


async def count(dsn: str, query: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


VERBS = [
    "demo", "migrate", "roles", "project", "stats", "signals", "quality", "export", "report", "bench", "tail",
    "subscriptions", "verify", "doctor",
]


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    from crashlog.cli import main

    with pytest.raises(SystemExit) as exit:
        main([verb, "--help"])
    assert exit.value.code == 0
    assert "--dsn" in capsys.readouterr().out


def test_the_verbs_are_these_and_the_module_names_each() -> None:
    import argparse

    from crashlog import cli

    (subparsers,) = (a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(subparsers.choices) == VERBS
    summary = " ".join((cli.__doc__ or "").split("\n\n")[0].split())
    assert all(f" {verb}," in summary or f" {verb}." in summary for verb in VERBS), summary


async def test_demo_then_stats_export_tail(dsn: str, tmp_path: Path) -> None:
    done = crashlog_cli("demo", "--dsn", dsn, "--bots", "3", "--rounds", "200", "--seed", "5")
    assert "per-bot statistics" in done.stdout and "events/s" in done.stdout
    assert await count(dsn, "SELECT count(*) FROM crashlog.rounds") == 600
    bots = json.loads(crashlog_cli("stats", "--dsn", dsn, "--json").stdout)
    assert sorted(b["rounds"] for b in bots) == [200, 200, 200]

    bot = bots[0]["bot_id"]
    one = json.loads(crashlog_cli("stats", "--dsn", dsn, "--bot", bot, "--json").stdout)
    assert one["rounds"] == 200 and Decimal(one["total_profit"]) == Decimal(bots[0]["total_profit"])
    assert "fixed" in crashlog_cli("stats", "--dsn", dsn, "--strategy", "fixed").stdout

    crashlog_cli("export", "rounds", "--dsn", dsn, "--bot", bot, "-o", str(tmp_path / "r.csv"))
    with open(tmp_path / "r.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 200
    lines = crashlog_cli("export", "multipliers", "--dsn", dsn).stdout.splitlines()
    assert len(lines) == 200 and json.loads(lines[0])["observers"] == 3

    shown = crashlog_cli("tail", "--dsn", dsn, "--from-start", "--count", "4").stdout.splitlines()
    conn = await asyncpg.connect(dsn)
    first = await conn.fetch(
        "SELECT position, event_type FROM crashlog.events ORDER BY tx_id, position LIMIT 4"
    )
    await conn.close()
    assert [line.split()[0] for line in shown] == [str(r["position"]) for r in first]
    assert all(r["event_type"] in line for r, line in zip(first, shown, strict=True))


async def test_tail_follows_new_events_live(dsn: str) -> None:
    tail = subprocess.Popen(
        [*COMMAND, "tail", "--dsn", dsn, "--last", "0", "--count", "1", "--type", "RoundSettled"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The event below must come after tail is following: it says so on stderr.
        assert "following" in tail.stderr.readline()
        async with crashlog.connect(dsn, project=False) as log:
            await log.emit(
                RoundSettled(
                    bot_id="live-bot",
                    game="aviator",
                    platform="p",
                    stake=1,
                    crash_multiplier=2,
                    outcome="LOSS",
                    profit_loss=-1,
                )
            )
        output, errors = tail.communicate(timeout=60)
    finally:
        tail.kill()
    assert tail.returncode == 0, errors
    assert "RoundSettled live-bot" in output


async def test_migrate_project_doctor(empty_dsn: str, tmp_path: Path) -> None:
    assert "pending" in crashlog_cli("migrate", "--check", "--dsn", empty_dsn, check=False).stdout
    unmigrated = crashlog_cli("stats", "--dsn", empty_dsn, check=False)
    assert unmigrated.returncode == 1 and "run: crashlog migrate" in unmigrated.stderr
    assert "applied: 001_event_log.sql" in crashlog_cli("migrate", "--dsn", empty_dsn).stdout
    crashlog_cli("migrate", "--check", "--dsn", empty_dsn)
    assert "rounds" in crashlog_cli("project", "--dsn", empty_dsn).stdout
    rebuilt = crashlog_cli("project", "--rebuild", "all", "--dsn", empty_dsn).stdout
    assert re.search(r"rebuilt: all \([\d,]+ events in [\d.]+ s, [\d,]+ events/s\)", rebuilt), rebuilt
    concurrently = crashlog_cli("project", "--rebuild", "rounds", "--concurrent-indexes", "--dsn", empty_dsn).stdout
    assert "rebuilt: rounds" in concurrently, concurrently
    crashlog_cli("project", "--follow", "--seconds", "1", "--dsn", empty_dsn)
    report = crashlog_cli(
        "doctor", "--dsn", empty_dsn, "--spool-dir", str(tmp_path / "spool")
    ).stdout
    assert "FAIL" not in report and "none pending" in report

    spool = Spool.open(tmp_path / "spool")  # a spool with events waiting: doctor must say so
    event = RoundSettled(
        bot_id="b",
        game="g",
        platform="p",
        stake=1,
        crash_multiplier=2,
        outcome="LOSS",
        profit_loss=-1,
    )
    from crashlog.events import encode_payload

    spool.append(
        [
            Row(
                event.event_id,
                event.event_type,
                1,
                "b",
                None,
                event.occurred_at,
                encode_payload(event),
            )
        ]
    )
    spool.close()
    done = crashlog_cli(
        "doctor", "--dsn", empty_dsn, "--spool-dir", str(tmp_path / "spool"), check=False
    )
    assert done.returncode == 1 and "1 events" in done.stdout


async def test_bench_runs_the_benchmarks(dsn: str) -> None:
    assert "write_throughput" in crashlog_cli("bench", "--list").stdout
    done = crashlog_cli("bench", "write_throughput", "--dsn", dsn, "--extra=--events=300")
    assert "raw COPY" in done.stdout
    done = crashlog_cli("bench", "rebuild_each", "--dsn", dsn, "--extra=--events=300")
    assert all(f"\n{name} " in done.stdout for name in NAMES), done.stdout
    done = crashlog_cli("bench", "storage", "--dsn", dsn, "--extra=--events=300")
    assert "\nevents " in done.stdout and "GB per bot and month" in done.stdout, done.stdout


async def test_bench_log_growth_measures_each_size_and_drops_its_database(dsn: str) -> None:
    done = crashlog_cli("bench", "log_growth", "--dsn", dsn, "--extra=--sizes=300,2000",
                        "--extra=--sample=150", "--extra=--rate=200", "--extra=--lag-seconds=0.5")
    table = done.stdout.split("\nlog growth,", 1)[1].splitlines()
    sizes = {line.split()[0]: line.split() for line in table if re.match(r"\s+(300|2,000)\s", line)}
    assert sorted(sizes) == ["2,000", "300"], done.stdout
    assert all(cells[-1] == "0" for cells in sizes.values()), "projection errors"  # rows projected
    assert any(line.strip().startswith("× 6.67 events") for line in table), done.stdout
    scratch = re.search(r"scratch database (\w+)", done.stdout)
    assert scratch, done.stdout
    conn = await asyncpg.connect(dsn)
    try:
        assert not await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", scratch[1])
    finally:
        await conn.close()


def test_a_bad_dsn_says_what_failed_without_the_password() -> None:
    done = crashlog_cli("stats", "--dsn", "postgresql://user:s3cr3t@127.0.0.1:1/db", check=False)
    assert done.returncode == 1
    assert "could not connect" in done.stderr and "***" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("CRASHLOG_TEST_DSN")),
    reason="uses no test server: it runs once, in the embedded-server pass of the suite",
)
def test_demo_with_defaults_on_the_embedded_server(tmp_path: Path) -> None:
    """`crashlog demo` with nothing set up: no DSN, a fresh CRASHLOG_HOME."""
    env = {k: v for k, v in os.environ.items() if k not in ("CRASHLOG_DSN", "XDG_RUNTIME_DIR")}
    env["CRASHLOG_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [*COMMAND, "demo", "--rounds", "300"], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "per-bot statistics" in done.stdout


async def test_roles(dsn: str) -> None:
    from crashlog.roles import drop_roles

    prefix = f"cli_{os.urandom(4).hex()}"
    try:
        done = crashlog_cli("roles", "--dsn", dsn, "--prefix", prefix, "--login", f"{prefix}_bot")
        assert f"{prefix}_writer" in done.stdout and f"login {prefix}_bot created" in done.stdout
    finally:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP ROLE IF EXISTS "{prefix}_bot"')
        await drop_roles(conn, prefix)
        await conn.close()
