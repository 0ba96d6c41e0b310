"""Signals through the database: emitted through a logger, projected, and read back with
``signal_report`` (analytics/signals.py) and the ``crashlog signals`` verb (cli/stats.py).
(Scoring alone, on simulated signals: tests/unit/test_signals.py.)"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from helpers.signals import START, TWO

import crashlog
from crashlog.analytics import signal_report
from crashlog.analytics.signals import BETTER, NO_EVIDENCE
from crashlog.events import GameConfigured, RoundObserved, SignalRaised
from crashlog.simulator import CrashGame

D = Decimal



async def record_game(log: crashlog.Logger, rounds: int = 120) -> list[Decimal]:
    """Rounds seen by an observer, signals raised by two bots before each round:
    'cheat' (bot sig_a) predicts 2.00 on the rounds that reach it; 'coin' (sig_a) predicts
    2.00 or 3.00 on every round, knowing nothing; 'other' (sig_b) predicts 2.00 on all.
    One signal names a round never seen (unresolved), one predicts no multiplier."""
    crashes = list(CrashGame(seed=11).crashes(rounds))
    pick = random.Random(11)
    common = {"game": "aviator", "platform": "spribe"}
    await log.emit(GameConfigured(bot_id="observer", rtp_percent=D("99"), **common))
    for i, crash in enumerate(crashes):
        at = START + timedelta(seconds=10 * i)
        rid = f"r{i}"
        if crash >= TWO:
            await log.emit(SignalRaised(
                bot_id="sig_a", signal_type="cheat", predicted_multiplier=TWO,
                confidence_score=0.9, for_game_round_id=rid, occurred_at=at, **common,
            ))  # fmt: skip
        await log.emit(SignalRaised(
            bot_id="sig_a", signal_type="coin", predicted_multiplier=pick.choice([TWO, D("3.00")]),
            confidence_score=0.5, for_game_round_id=rid, occurred_at=at, **common,
        ))  # fmt: skip
        await log.emit(SignalRaised(
            bot_id="sig_b", signal_type="other", predicted_multiplier=TWO,
            for_game_round_id=rid, occurred_at=at, **common,
        ))  # fmt: skip
        await log.emit(RoundObserved(
            bot_id="observer", crash_multiplier=crash, game_round_id=rid,
            occurred_at=at + timedelta(seconds=5), **common,
        ))  # fmt: skip
    await log.emit(SignalRaised(
        bot_id="sig_a", signal_type="cheat", predicted_multiplier=TWO,
        for_game_round_id="not-yet", occurred_at=START, **common,
    ))  # fmt: skip
    await log.emit(SignalRaised(
        bot_id="sig_a", signal_type="coin", for_game_round_id="r0", occurred_at=START, **common,
    ))  # fmt: skip
    await log.sync(timeout=60)
    return crashes


async def test_signal_report_reads_the_projected_signals(log: crashlog.Logger) -> None:
    crashes = await record_game(log)
    report = await signal_report(log.pool, game="aviator", platform="spribe")
    assert (report.rtp, report.rtp_source) == (0.99, "game_configs")
    assert (report.unresolved, report.unscored) == (1, 1)
    cheat, coin, other = (report.type(t) for t in ("cheat", "coin", "other"))
    reaching = sum(c >= TWO for c in crashes)
    assert (cheat.n, cheat.hits, cheat.verdict) == (reaching, reaching, BETTER)
    assert cheat.baseline == pytest.approx(0.99 / 2)
    assert (other.n, other.hits) == (len(crashes), reaching)
    assert other.verdict == coin.verdict == NO_EVIDENCE
    assert coin.brier_skill is not None and coin.targets == (TWO, D("3.00"))
    assert report.signals == cheat.n + coin.n + other.n

    # Filters, a given RTP, and the holdout in time order.
    mine = await signal_report(log.pool, bot_id="sig_b", rtp=0.97)
    assert [t.signal_type for t in mine.types] == ["other"] and mine.rtp_source == "given"
    assert mine.type("other").baseline == pytest.approx(0.485)
    held = await signal_report(log.pool, bot_id="sig_b", holdout=0.25)
    assert (held.train, held.type("other").n) == (90, 30)
    assert held.type("other").hits == sum(c >= TWO for c in crashes[90:])
    late = await signal_report(log.pool, bot_id="sig_b", since=START + timedelta(seconds=1000))
    assert late.type("other").n == len(crashes) - 100
    nothing = await signal_report(log.pool, game="no-such-game")
    assert (nothing.types, nothing.rtp_source, nothing.rtp) == ((), "default", 0.97)


async def test_crashlog_signals_prints_the_verdicts(
    log: crashlog.Logger, dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from crashlog.cli import main

    await record_game(log, rounds=60)
    status = await asyncio.to_thread(main, ["signals", "--dsn", dsn, "--game", "aviator"])
    shown = capsys.readouterr().out
    assert status == 0
    assert "better than chance" in shown and "no evidence of skill" in shown
    assert "1 wait for their round" in shown and "configured rtp_percent" in shown

    status = await asyncio.to_thread(
        main, ["signals", "--dsn", dsn, "--bot", "sig_b", "--holdout", "0.5", "--json"]
    )
    data = json.loads(capsys.readouterr().out)
    assert status == 0 and data["train"] == 30 and data["types"][0]["n"] == 30
    low, high = data["types"][0]["interval"]
    assert 0 <= low <= data["types"][0]["hit_rate"] <= high <= 1

    status = await asyncio.to_thread(main, ["signals", "--dsn", dsn, "--holdout", "2"])
    assert status == 1 and "holdout=2" in capsys.readouterr().err
