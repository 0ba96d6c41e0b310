"""The demo: simulated bots play a simulated crash game, logged through the SDK.

Every bot watches the same game (one crash point per round, drawn by the real law) and
plays it with its strategy. Each bot registers, starts a session, emits a
``RoundSettled`` per round and ends its session; then the logger syncs (committed and
projected) and the per-bot statistics are read back from the read tables.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import attrs

import crashlog
from crashlog import analytics
from crashlog.events import (
    BotRegistered,
    GameConfigured,
    RoundSettled,
    SessionEnded,
    SessionStarted,
)
from crashlog.law import DEFAULT_RTP
from crashlog.simulator import STRATEGIES, CrashGame, SimulatedBot, make_strategy

GAME, PLATFORM = "aviator", "demo"
#: Cash-out targets the bots take in turn when no target is given (so no two bots are alike).
TARGETS = (Decimal("2.00"), Decimal("1.50"), Decimal("3.00"))
#: Simulated seconds between rounds (a real crash game runs a round every 10 s or so).
ROUND_SECONDS = 10


@attrs.frozen
class DemoResult:
    """What the demo did and measured."""

    run_id: str
    statistics: list[analytics.Statistics]
    events: int
    write_seconds: float  # from the first emit until everything was committed
    sync_seconds: float  # from the first emit until everything was projected

    @property
    def write_rate(self) -> float:
        return self.events / self.write_seconds if self.write_seconds > 0 else float("inf")


def plan_strategies(strategy: str, bots: int) -> list[str]:
    """The strategy of each bot: the one asked for, or all three in turn for ``mixed``."""
    if strategy == "mixed":
        names = list(STRATEGIES)
        return [names[i % len(names)] for i in range(bots)]
    make_strategy(strategy)  # refuses an unknown name, naming it
    return [strategy] * bots


async def run_demo(
    dsn: str | None = None,
    *,
    bots: int = 6,
    rounds: int = 2_000,
    strategy: str = "mixed",
    rtp: float = DEFAULT_RTP,
    seed: int | None = None,
    target: Decimal | str | None = None,
    progress: Callable[[int], None] | None = None,
) -> DemoResult:
    """Play ``rounds`` rounds with ``bots`` bots and log them into ``dsn``.

    Without ``target``, the bots of each strategy cash out at 2.00, 1.50 and 3.00 in turn.
    ``progress(rounds_done)`` is called now and then. Returns the statistics of each bot.
    """
    if bots < 1 or rounds < 1:
        raise ValueError(f"invalid bots={bots}, rounds={rounds}: both must be at least 1")
    run_id = uuid.uuid4().hex[:6]
    game = CrashGame(rtp=rtp, seed=seed)
    names = plan_strategies(strategy, bots)
    players = [
        SimulatedBot(
            f"demo-{run_id}-{i + 1}-{name}",
            make_strategy(name, target=Decimal(target) if target else _turn(i, names)),
        )
        for i, name in enumerate(names)
    ]
    start = datetime.now(UTC) - timedelta(seconds=ROUND_SECONDS * (rounds + 1))
    async with crashlog.connect(dsn) as log:
        began = time.perf_counter()
        events = await _open_sessions(log, players, run_id, start, rtp)
        for n in range(1, rounds + 1):
            crash = game.next_crash()
            at = start + timedelta(seconds=ROUND_SECONDS * n)
            for bot in players:
                played = bot.play(crash)
                await log.emit(
                    RoundSettled(
                        bot_id=bot.bot_id,
                        session_id=f"{run_id}-session",
                        occurred_at=at,
                        game=GAME,
                        platform=PLATFORM,
                        game_round_id=f"{run_id}-{n}",
                        strategy_name=bot.strategy.name,
                        **attrs.asdict(played),
                    )
                )
            events += len(players)
            if progress is not None and (n % 100 == 0 or n == rounds):
                progress(n)
        end = start + timedelta(seconds=ROUND_SECONDS * (rounds + 1))
        for bot in players:
            await log.emit(
                SessionEnded(
                    bot_id=bot.bot_id,
                    session_id=f"{run_id}-session",
                    occurred_at=end,
                    balance=bot.balance,
                    reason="demo over",
                )
            )
        events += len(players)
        await log.flush()
        written = time.perf_counter() - began
        await log.sync()
        synced = time.perf_counter() - began
        stats = [await analytics.bot_statistics(log.pool, bot.bot_id, rtp=rtp) for bot in players]
    return DemoResult(run_id, stats, events, written, synced)


def _turn(index: int, names: list[str]) -> Decimal:
    """The target of bot ``index``: the next of ``TARGETS`` among bots of its strategy."""
    same_before = names[:index].count(names[index])
    return TARGETS[same_before % len(TARGETS)]


async def _open_sessions(
    log: crashlog.Logger, players: list[SimulatedBot], run_id: str, at: datetime, rtp: float
) -> int:
    """Register the bots, configure the game and start a session for each: events emitted."""
    await log.emit(
        GameConfigured(
            bot_id=players[0].bot_id,
            occurred_at=at,
            game=GAME,
            platform=PLATFORM,
            min_stake=Decimal("0.10"),
            max_stake=Decimal("1000.00"),
            rtp_percent=(Decimal(str(rtp)) * 100).normalize(),
            currency="USD",
        )
    )
    for bot in players:
        await log.emit(
            BotRegistered(
                bot_id=bot.bot_id,
                occurred_at=at,
                bot_name=bot.bot_id,
                strategy_name=bot.strategy.name,
                initial_balance=bot.balance,
                currency="USD",
                metadata={"demo": run_id},
            )
        )
        await log.emit(
            SessionStarted(
                bot_id=bot.bot_id,
                session_id=f"{run_id}-session",
                occurred_at=at,
                game=GAME,
                platform=PLATFORM,
                balance=bot.balance,
                strategy_name=bot.strategy.name,
            )
        )
    return 1 + 2 * len(players)
