"""``quality_report`` through the log, the projections and the read tables, and the
``crashlog quality`` verb (analytics/quality.py, cli/stats.py). (``check_quality`` and each
check on rows alone: tests/unit/test_quality.py.)"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from helpers.quality import START, verdicts

import crashlog
from crashlog.analytics import check_quality, quality_report
from crashlog.events import GameConfigured, RoundObserved, RoundSettled
from crashlog.exports import export_multipliers
from crashlog.simulator import CrashGame


async def emit_rounds(log: crashlog.Logger, n: int, *, skip: range = range(0), spike_bot: str | None = None) -> None:
    """Two bots watch the same n rounds of a fair game; ``spike_bot`` misreads some as 2.00."""
    game = CrashGame(0.97, seed=21)
    for i, crash in enumerate(game.crashes(n)):
        if i in skip:
            continue
        at = START + timedelta(seconds=10 * i)
        seen = D("2.00") if spike_bot == "bot-b" and i % 25 == 0 else crash
        await log.emit(
            RoundObserved(
                bot_id="bot-a",
                occurred_at=at,
                game="aviator",
                platform="demo",
                crash_multiplier=crash,
                game_round_id=str(10_000 + i),
            )
        )
        await log.emit(
            RoundSettled(
                bot_id="bot-b",
                occurred_at=at + timedelta(seconds=1),
                game="aviator",
                platform="demo",
                game_round_id=str(10_000 + i),
                stake=D("1.00"),
                target_multiplier=D("100.00"),
                crash_multiplier=seen,
                outcome="LOSS",
                profit_loss=D("-1.00"),
                ocr_confidence=0.6 if seen != crash else 0.97,
            )
        )


async def test_quality_report_through_the_projections(log: crashlog.Logger, conn: Any, tmp_path: Path) -> None:
    await emit_rounds(log, 1500, skip=range(700, 720), spike_bot="bot-b")
    await log.sync()

    report = await quality_report(conn, game="aviator", platform="demo")
    assert report.rounds == 1480 and report.rtp == 0.97 and report.rtp_source == "default"
    assert report.game == "aviator" and report.platform == "demo"
    got = verdicts(report)
    assert got["round_id_gaps"] == "suspect" and report.check("round_id_gaps").figure.startswith("20 missing")
    assert got["observer_disagreement"] == "suspect"
    assert "bot-b on" in report.check("observer_disagreement").detail
    assert got["ocr_confidence"] == "suspect"
    assert "flagged rounds: median 0.60" in report.check("ocr_confidence").detail
    assert got["off_grid"] == "ok" and got["below_one"] == "ok"
    assert "refuses multipliers below 1.00" in report.check("below_one").detail

    # The same rows exported as JSON lines give the same verdicts through the pure function.
    exported = tmp_path / "multipliers.jsonl"
    await export_multipliers(conn, exported, "jsonl", game="aviator", platform="demo")
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert verdicts(check_quality(lines, rtp=report.rtp)) == got

    # bot-b's own readings carry its spike at 2.00; bot-a's do not.
    b = await quality_report(conn, game="aviator", platform="demo", bot_id="bot-b")
    assert b.rounds == 1480 and b.check("exact_2.00").verdict == "suspect"
    a = await quality_report(conn, game="aviator", platform="demo", bot_id="bot-a")
    assert a.check("exact_2.00").verdict != "suspect"

    # A time range, and the game's configured RTP.
    await log.emit(GameConfigured(bot_id="bot-a", game="aviator", platform="demo", rtp_percent=D("97")))
    await log.sync()
    part = await quality_report(
        conn, game="aviator", platform="demo", since=START, until=START + timedelta(seconds=10 * 500)
    )
    assert part.rounds == 500 and part.rtp_source == "game_configs" and part.rtp == 0.97
    assert verdicts(part)["round_id_gaps"] == "ok"
    given = await quality_report(conn, game="aviator", platform="demo", rtp=0.99)
    assert given.rtp == 0.99 and given.rtp_source == "given"
    assert (await quality_report(conn, game="jetx", platform="demo")).rounds == 0


# -- the command --------------------------------------------------------------------------


async def test_the_quality_command(log: crashlog.Logger, dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    from crashlog.cli import main

    await emit_rounds(log, 400, spike_bot="bot-b")
    await log.sync()
    argv = ["quality", "--dsn", dsn, "--game", "aviator", "--platform", "demo", "--bot", "bot-b"]
    status = await asyncio.to_thread(main, [*argv, "--since", "2025-06-01T00:00:00Z", "--rtp", "0.97"])
    out = capsys.readouterr().out
    assert status == 0
    for text in ("check", "figure", "expected", "verdict", "instant_busts", "exact_2.00", "suspect"):
        assert text in out, text
    assert "r = 0.97 (given)" in out and "significance 0.01" in out

    status = await asyncio.to_thread(main, ["quality", "--dsn", dsn, "--game", "aviator", "--platform", "demo"])
    assert status == 0 and "the default" in capsys.readouterr().out

    status = await asyncio.to_thread(main, [*argv, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0 and data["verdict"] == "suspect" and "exact_2.00" in data["suspects"]
    assert data["rtp_source"] == "default" and data["bot_id"] == "bot-b"
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["instant_busts"]["expected"].endswith("(1 - r/1.01)")
