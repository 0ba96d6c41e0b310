"""The command line on ordinary-looking input: bot ids that look like rich markup or carry
terminal escape sequences are printed as text, escaped, by every verb that prints them; and a
server that dies under a verb ends it on one line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from faults import ThrowawayServer

import crashlog
from crashlog import migrations
from crashlog.events import Outcome, RoundObserved, RoundSettled

_SCRIPT = Path(sys.executable).with_name("crashlog")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "crashlog.cli"]

MARKUP = "[/]"
ESCAPE = "\x1b[31mred"
SHOWN_ESCAPE = "\\x1b[31mred"  # how the bot id must appear
BOTS = (MARKUP, ESCAPE, "[bold]x", "tab\there")


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CRASHLOG_DSN"}
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout, env=env)


def settled(bot: str, number: int) -> RoundSettled:
    return RoundSettled(
        bot_id=bot, session_id="s1", game="aviator", platform="demo", round_number=number,
        game_round_id=f"r{number}", stake=Decimal("10.00"), crash_multiplier=Decimal("2.45"),
        cashout_multiplier=Decimal("1.50"), outcome=Outcome.WIN, profit_loss=Decimal("5.00"),
    )


@pytest.fixture
async def odd_dsn(dsn: str) -> str:
    """A database whose bots have ids that look like markup or carry control characters."""
    async with crashlog.connect(dsn, flush_interval=0.01) as log:
        for bot in BOTS:
            for n in range(5):
                await log.emit(settled(bot, n))
                await log.emit(RoundObserved(bot_id=bot, game="aviator", platform="demo",
                                             crash_multiplier=Decimal("2.45"),
                                             game_round_id=f"r{n}", round_number=n))
        await log.sync(timeout=60)
    return dsn


def clean(done: subprocess.CompletedProcess, verb: str) -> str:
    """The verb succeeded, printed no raw control character, and its stdout is returned."""
    assert done.returncode == 0, f"{verb}: {done.returncode}\n{done.stderr}"
    for stream in (done.stdout, done.stderr):
        assert "\x1b" not in stream, (verb, stream)
        assert "\t" not in stream, (verb, stream)
    return done.stdout


@pytest.mark.parametrize("bot", [MARKUP, ESCAPE])
def test_bot_ids_are_printed_as_escaped_text_by_every_verb(odd_dsn: str, bot: str) -> None:
    expected = SHOWN_ESCAPE if bot == ESCAPE else MARKUP
    listing = clean(run("stats", "--dsn", odd_dsn), "stats")
    assert MARKUP in listing and SHOWN_ESCAPE in listing and "[bold]x" in listing
    assert "tab\\there" in listing
    assert expected in clean(run("stats", "--dsn", odd_dsn, "--bot", bot), "stats --bot")
    tail = clean(run("tail", "--dsn", odd_dsn, "--from-start", "--count", "40", "--seconds", "30"),
                 "tail")
    assert expected in tail and tail.count("\n") >= 40
    clean(run("quality", "--dsn", odd_dsn, "--game", "aviator", "--platform", "demo", "--bot", bot),
          "quality --bot")
    clean(run("signals", "--dsn", odd_dsn, "--bot", bot), "signals --bot")
    clean(run("verify", "--dsn", odd_dsn, "--spribe"), "verify --spribe")
    exported = clean(run("export", "rounds", "--dsn", odd_dsn, "--bot", bot), "export")
    rows = [json.loads(line) for line in exported.splitlines()]
    assert len(rows) == 5 and {r["bot_id"] for r in rows} == {bot}  # JSON escapes, data intact


def test_stats_json_escapes_what_json_leaves_raw(odd_dsn: str) -> None:
    done = clean(run("stats", "--dsn", odd_dsn, "--json"), "stats --json")
    assert {s["bot_id"] for s in json.loads(done)} == set(BOTS)


# -- a server killed under a verb --------------------------------------------------------


@pytest.mark.slow
async def test_a_server_killed_during_a_rebuild_ends_in_one_error_line() -> None:
    server = ThrowawayServer()
    server.start()
    try:
        name = f"cli_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(server.dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        dsn = server.dsn_for(name)
        conn = await asyncpg.connect(dsn)
        await migrations.migrate(conn)
        await conn.close()
        async with crashlog.connect(dsn, project=False, flush_interval=0.05) as log:
            for n in range(30_000):
                await log.emit(settled(f"b{n % 7}", n))
        env = {k: v for k, v in os.environ.items() if k != "CRASHLOG_DSN"}
        process = await asyncio.create_subprocess_exec(
            *COMMAND, "project", "--rebuild", "all", "--dsn", dsn, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        watcher = await asyncpg.connect(server.dsn)
        try:  # kill the server once the rebuild is under way
            async with asyncio.timeout(60):
                while not await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crashlog-rebuild'"
                        " AND state = 'active'"):
                    await asyncio.sleep(0.01)
        finally:
            watcher.terminate()
        await asyncio.to_thread(server.stop, "immediate")
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    finally:
        server.cleanup()
    lines = stderr.decode().splitlines()
    assert process.returncode == 1, stderr.decode()
    assert len(lines) == 1, stderr.decode()
    assert lines[0].startswith("crashlog project: error: "), lines[0]
    assert "Traceback" not in stderr.decode() and not stdout.strip()


def test_a_connection_lost_inside_a_transaction_is_named_not_the_drivers_complaint() -> None:
    """asyncpg raises "cannot call Transaction.__aexit__(): the underlying connection is
    closed" while handling the loss itself: the line names the loss, password masked."""
    from crashlog.cli import failure_line

    lost = asyncpg.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation: terminating connection due to administrator command")
    raised = asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed")
    raised.__context__ = lost  # as Python sets it: raised while the loss was being handled
    line = failure_line(raised, "postgresql://crashlog:s3cret@db:5432/fleet")
    assert line == ("connection was closed in the middle of operation: terminating connection due to"
                    " administrator command (ConnectionDoesNotExistError)")
    assert "__aexit__" not in line and "s3cret" not in line
