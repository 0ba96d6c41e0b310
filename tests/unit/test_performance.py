"""``summarize`` (analytics/performance.py) without a database, and the interval functions it uses
(analytics/inference.py) against published values. (Statistics read from the database:
tests/integration/test_bot_statistics.py.)"""

from __future__ import annotations

from decimal import Decimal

import pytest

from crashlog.analytics import expected_longest_run, summarize, wilson_interval

D = Decimal

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


# -- summarize: the warning and the expected streak ----------------------------------------


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
