"""bot_statistics equals an independent computation; its interval functions, published values."""

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
from crashlog.analytics import (
    bot_statistics,
    expected_longest_run,
    strategy_statistics,
    summarize,
    wilson_interval,
)
from crashlog.events import RoundSettled

D = Decimal
START = datetime(2025, 1, 1, tzinfo=UTC)

# -- interval functions against published values ------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, table I, method 3 (Wilson score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0000),
    ],
)
def test_wilson_interval_matches_newcombe(
    successes: int, trials: int, low: float, high: float
) -> None:
    interval = wilson_interval(successes, trials)
    assert interval.low == pytest.approx(low, abs=0.00006)
    assert interval.high == pytest.approx(high, abs=0.00006)


def test_wilson_interval_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="successes=5, trials=3"):
        wilson_interval(5, 3)
    assert wilson_interval(0, 0) == wilson_interval(0, 0).__class__(0.0, 1.0)


def exact_expected_longest_run(trials: int, q: float) -> float:
    """E[longest run] = sum over k of P(longest >= k), each by a run-length Markov chain."""
    total = 0.0
    for k in range(1, trials + 1):
        chain = [1.0] + [0.0] * (k - 1)  # probability of the current run length, given < k
        for _ in range(trials):
            moved = [sum(chain) * (1 - q)] + [0.0] * (k - 1)
            for j in range(k - 1):
                moved[j + 1] += chain[j] * q
            chain = moved
        at_least_k = 1 - sum(chain)
        total += at_least_k
        if at_least_k < 1e-12:
            break
    return total


@pytest.mark.parametrize(
    ("trials", "q"), [(200, 0.5), (100, 0.515), (500, 0.515), (150, 0.9), (1000, 0.2)]
)
def test_expected_longest_run_is_close_to_exact(trials: int, q: float) -> None:
    assert expected_longest_run(trials, q) == pytest.approx(
        exact_expected_longest_run(trials, q), abs=0.1
    )


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


def test_house_edge_warning_depends_on_the_sample() -> None:
    def rounds(bets: int) -> list[dict]:
        wins = round(bets * 0.485)  # exactly the house's ROI of -3% at cash-out 2.00
        return [
            {
                "outcome": "WIN" if i < wins else "LOSS",
                "stake": D(1),
                "target_multiplier": D(2),
                "cashout_multiplier": D(2) if i < wins else None,
                "profit_loss": D(1) if i < wins else D(-1),
            }
            for i in range(bets)
        ]

    small, large = summarize(rounds(1_000)), summarize(rounds(20_000))
    assert small.roi == pytest.approx(-0.03)
    assert small.warning and "too few" in small.warning and "-3.0%" in small.warning
    assert large.warning is None
    assert summarize(rounds(5)).warning.startswith("Only 5 bets")


def test_expected_streak_uses_the_cashout_and_sample_size() -> None:
    rows = [
        {
            "outcome": "LOSS",
            "stake": D(1),
            "target_multiplier": D(2),
            "cashout_multiplier": None,
            "profit_loss": D(-1),
        }
    ] * 200
    stats = summarize(rows, rtp=0.97)
    assert stats.cashout == D(2)
    assert stats.expected_longest_losing_streak == pytest.approx(
        expected_longest_run(200, 1 - 0.97 / 2)
    )
    assert stats.longest_losing_streak == 200
    assert stats.max_drawdown == D(200)


async def test_empty_history(log: crashlog.Logger) -> None:
    stats = await bot_statistics(log.pool, "nobody")
    assert (stats.rounds, stats.total_profit, stats.win_rate, stats.roi) == (0, 0, None, None)
    assert stats.warning
