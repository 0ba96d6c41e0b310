"""``bot_statistics`` and ``strategy_statistics`` (analytics/performance.py) read from the
database equal an independent computation from the rounds. (``summarize`` and its interval
functions, without a database: tests/unit/test_performance.py.)"""

from __future__ import annotations

import math
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crashlog
from crashlog.analytics import bot_statistics, strategy_statistics
from crashlog.events import RoundSettled

D = Decimal
START = datetime(2025, 1, 1, tzinfo=UTC)

# -- an independent computation -----------------------------------------------------------


def independent(rounds: list[dict]) -> dict:
    """The statistics, computed the plain way from the list of rounds (in order)."""
    bets = [r for r in rounds if r["outcome"] != "SKIP"]
    wins = sum(r["outcome"] == "WIN" for r in rounds)
    staked = sum((r["stake"] for r in bets), D(0))
    profit = sum((r["profit_loss"] for r in rounds), D(0))
    cumulative, running = [D(0)], D(0)
    for r in rounds:
        running += r["profit_loss"]
        cumulative.append(running)
    drawdown = max(max(cumulative[: i + 1]) - cumulative[i] for i in range(len(cumulative)))
    outcomes = "".join(r["outcome"][0] for r in bets)  # W / L, skips left out
    streak = max((len(run) for run in outcomes.split("W")), default=0)
    out = {
        "rounds": len(rounds),
        "wins": wins,
        "losses": len(bets) - wins,
        "skips": len(rounds) - len(bets),
        "total_staked": staked,
        "total_profit": profit,
        "max_drawdown": drawdown,
        "longest_losing_streak": streak,
    }
    if bets:
        profits = [float(r["profit_loss"]) for r in bets]
        out["expected_value"] = statistics.fmean(profits)
        if len(bets) > 1:
            half = 1.959964 * statistics.stdev(profits) / math.sqrt(len(bets))
            out["ev_interval"] = (out["expected_value"] - half, out["expected_value"] + half)
        if staked:
            roi = float(profit) / float(staked)
            out["roi"] = roi
            if len(bets) > 1:
                residuals = sum(
                    (float(r["profit_loss"]) - roi * float(r["stake"])) ** 2 for r in bets
                )
                half = 1.959964 * math.sqrt(residuals * len(bets) / (len(bets) - 1)) / float(staked)
                out["roi_interval"] = (roi - half, roi + half)
    return out


cents = st.integers(min_value=1, max_value=100_000).map(lambda c: D(c) / 100)
cashouts = st.integers(min_value=101, max_value=1_000).map(lambda c: D(c) / 100)


@st.composite
def a_round(draw: st.DrawFn) -> dict:
    outcome = draw(st.sampled_from(["WIN", "LOSS", "LOSS", "SKIP"]))
    stake, cashout = draw(cents), draw(cashouts)
    profit = {"WIN": stake * (cashout - 1), "LOSS": -stake, "SKIP": D("0.00")}[outcome]
    return {
        "outcome": outcome,
        "stake": D("0.00") if outcome == "SKIP" else stake,
        "target_multiplier": cashout,
        "cashout_multiplier": cashout if outcome == "WIN" else None,
        "profit_loss": profit,
        "strategy_name": draw(st.sampled_from(["steady", "bold"])),
    }


def check(stats: crashlog.analytics.Statistics, expected: dict) -> None:
    for key in ("rounds", "wins", "losses", "skips", "longest_losing_streak"):
        assert getattr(stats, key) == expected[key], key
    for key in ("total_staked", "total_profit", "max_drawdown"):  # money: to the cent, exactly
        assert getattr(stats, key).quantize(D("0.01")) == expected[key].quantize(D("0.01")), key
    if "expected_value" in expected:
        assert stats.expected_value == pytest.approx(expected["expected_value"], abs=0.005)
    if "ev_interval" in expected:
        interval = stats.expected_value_interval
        assert (interval.low, interval.high) == pytest.approx(expected["ev_interval"], abs=0.005)
    if "roi" in expected:
        assert stats.roi == pytest.approx(expected["roi"], rel=1e-9)
    if "roi_interval" in expected:
        interval = stats.roi_interval
        assert (interval.low, interval.high) == pytest.approx(expected["roi_interval"], abs=1e-6)
    if expected["wins"] + expected["losses"]:
        assert stats.win_rate == expected["wins"] / (expected["wins"] + expected["losses"])


async def emit_rounds(log: crashlog.Logger, bot_id: str, rounds: list[dict]) -> None:
    balance = D("1000.00")
    for number, r in enumerate(rounds, start=1):
        await log.emit(
            RoundSettled(
                bot_id=bot_id,
                game="aviator",
                platform="demo",
                session_id="s1",
                round_number=number,
                occurred_at=START + timedelta(seconds=number),
                crash_multiplier=D("5.00"),
                balance_before=balance,
                balance_after=balance + r["profit_loss"],
                **r,
            )
        )
        balance += r["profit_loss"]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rounds=st.lists(a_round(), min_size=0, max_size=60))
async def test_statistics_equal_an_independent_computation(
    log: crashlog.Logger, rounds: list[dict]
) -> None:
    bot_id = f"bot-{uuid.uuid4().hex[:8]}"
    await emit_rounds(log, bot_id, rounds)
    await log.sync(timeout=30)
    check(await bot_statistics(log.pool, bot_id), independent(rounds))
    steady = [r for r in rounds if r["strategy_name"] == "steady"]
    check(await bot_statistics(log.pool, bot_id, "steady"), independent(steady))


async def test_strategy_statistics_pool_bots_and_count_streaks_per_bot(
    log: crashlog.Logger,
) -> None:
    lose = {
        "outcome": "LOSS",
        "stake": D("1.00"),
        "profit_loss": D("-1.00"),
        "target_multiplier": D("2.00"),
        "cashout_multiplier": None,
        "strategy_name": "m",
    }
    win = dict(lose, outcome="WIN", profit_loss=D("1.00"), cashout_multiplier=D("2.00"))
    await emit_rounds(log, "a", [lose, lose, win])
    await emit_rounds(log, "b", [lose, win, lose])  # interleaved in time with a's rounds
    await log.sync(timeout=30)
    stats = await strategy_statistics(log.pool, "m")
    assert (stats.rounds, stats.wins, stats.losses) == (6, 2, 4)
    assert stats.total_profit == D("-2.00")
    assert stats.longest_losing_streak == 2  # a's two losses; never b's loss joined to a's


async def test_empty_history(log: crashlog.Logger) -> None:
    stats = await bot_statistics(log.pool, "nobody")
    assert (stats.rounds, stats.total_profit, stats.win_rate, stats.roi) == (0, 0, None, None)
    assert stats.warning
