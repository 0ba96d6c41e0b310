"""``crashlog project`` with users' projections, run as a user runs it: ``--with``,
``CRASHLOG_PROJECTIONS``, ``--rebuild NAME --with``, ``--lag``, ``doctor`` and ``--drop``."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg

import crashlog
from crashlog.events import Outcome, RoundSettled
from crashlog.projections import NAMES

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
TARGET = "helpers.user_projections:bot_rounds"


def cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``crashlog ARGS`` in a subprocess that imports this worktree's crashlog and the tests'
    helpers (where the projections live)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CRASHLOG_DSN", "CRASHLOG_PROJECTIONS")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    environ.update(env or {})
    done = subprocess.run([sys.executable, "-m", "crashlog.cli", *args], capture_output=True,
                          text=True, timeout=120, env=environ)
    if check:
        assert done.returncode == 0, f"crashlog {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done


async def fetch(dsn: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


async def emit_rounds(dsn: str, bots: dict[str, int]) -> None:
    async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
        for bot, rounds in bots.items():
            for n in range(rounds):
                await log.emit(RoundSettled(
                    bot_id=bot, game="aviator", platform="demo", round_number=n,
                    stake=Decimal("10"), crash_multiplier=Decimal("2"), outcome=Outcome.LOSS,
                    profit_loss=Decimal("-10")))


async def per_bot(dsn: str) -> dict[str, int]:
    return {r[0]: r[1] for r in await fetch(dsn, "SELECT bot_id, rounds FROM crashlog.bot_rounds")}


async def test_follow_with_lag_rebuild_and_drop(dsn):
    await emit_rounds(dsn, {"b1": 3, "b2": 2})
    cli("project", "--dsn", dsn, "--follow", "--seconds", "3", "--with", TARGET)
    assert await per_bot(dsn) == {"b1": 3, "b2": 2}
    # Listed from the database's checkpoints, with no --with: a runner elsewhere is seen.
    lag = cli("project", "--dsn", dsn, "--lag").stdout
    assert "bot_rounds" in lag
    doctor = cli("doctor", "--dsn", dsn, check=False).stdout
    assert f"all {len(NAMES) + 1} projections" in doctor
    await emit_rounds(dsn, {"b3": 4})
    # Rebuilt alone, from the whole log, when named with its target.
    cli("project", "--dsn", dsn, "--rebuild", "bot_rounds", "--with", TARGET)
    assert await per_bot(dsn) == {"b1": 3, "b2": 2, "b3": 4}
    unnamed = cli("project", "--dsn", dsn, "--rebuild", "bot_rounds", check=False)
    assert unnamed.returncode != 0 and "bot_rounds" in unnamed.stderr
    refused = cli("project", "--dsn", dsn, "--drop", "rounds", check=False)
    assert refused.returncode != 0 and "'rounds' is a built-in" in refused.stderr
    assert "bot_rounds" in cli("project", "--dsn", dsn, "--drop", "bot_rounds").stdout
    assert await fetch(dsn, "SELECT to_regclass('crashlog.bot_rounds') AS t") == [(None,)]
    assert await fetch(dsn, "SELECT name FROM crashlog.projection_checkpoints"
                            " WHERE name = 'bot_rounds'") == []


async def test_crashlog_projections_registers_them_for_a_runner(dsn):
    await emit_rounds(dsn, {"b1": 2})
    cli("project", "--dsn", dsn, "--follow", "--seconds", "3",
        env={"CRASHLOG_PROJECTIONS": f"{TARGET}, helpers.user_projections:bot_rounds"})
    assert await per_bot(dsn) == {"b1": 2}


def test_an_unknown_with_target_is_refused_naming_it(dsn):
    for target, named in [("no_such_module_x:thing", "no_such_module_x"),
                          ("helpers.user_projections:missing", "missing"),
                          ("helpers.user_projections", "module:attribute")]:
        done = cli("project", "--dsn", dsn, "--follow", "--seconds", "1", "--with", target,
                   check=False)
        assert done.returncode != 0 and named in done.stderr, done.stderr
    env = {"CRASHLOG_PROJECTIONS": "no_such_module_y:p"}
    done = cli("project", "--dsn", dsn, "--lag", env=env, check=False)
    assert done.returncode != 0 and "no_such_module_y" in done.stderr
