"""Data for the report's and the dashboard's tests: simulated bots, a watched game, signals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import crashlog
from crashlog.demo import run_demo
from crashlog.events import RoundObserved, SignalRaised
from crashlog.simulator import CrashGame

# The watched game's rounds end about when the demo's start: the flags' hours touch.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)


async def record(dsn: str) -> None:
    """Three simulated bots (simulator + connect + sync), and a watched game with signals
    (with confidences) and one round two observers read differently (a quality flag)."""
    await run_demo(dsn, bots=3, rounds=300, seed=5)
    crashes = list(CrashGame(seed=9).crashes(200))
    common = {"game": "aviator", "platform": "spribe"}
    async with crashlog.connect(dsn) as log:
        for i, crash in enumerate(crashes):
            at, rid = START + timedelta(minutes=i), f"r{i}"
            await log.emit(SignalRaised(bot_id="sig", signal_type="hunch", predicted_multiplier=Decimal("2.00"),
                                        confidence_score=0.3 + 0.5 * (i % 3) / 2, for_game_round_id=rid,
                                        occurred_at=at, **common))
            await log.emit(RoundObserved(bot_id="obs1", crash_multiplier=crash, game_round_id=rid,
                                         occurred_at=at + timedelta(seconds=5), **common))
            if i % 50 == 0:  # a second reader that misreads every 50th round
                await log.emit(RoundObserved(bot_id="obs2", crash_multiplier=crash + Decimal("0.10"),
                                             game_round_id=rid, occurred_at=at + timedelta(seconds=6), **common))
        await log.sync()
