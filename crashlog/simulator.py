"""A simulated crash game and simulated bots, for the demo, tests and benchmarks.

The crash point is drawn from the law of real crash games (``crashlog.law``):
``P(X >= x) = rtp / x`` for every ``x >= 1``, shown rounded *down* to two decimals, so a
round crashes at 1.00 with probability ``1 - rtp / 1.01`` (the house's instant crash) and a
bot that always cashes out at ``t`` wins with probability ``rtp / t`` and expects
``rtp - 1`` per unit staked, whatever ``t`` is. Everything is seeded: the same seed plays
the same game. The law's functions are re-exported here under their old names; the core
imports them from ``crashlog.law``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal

import attrs

from crashlog.law import (
    CENT,
    DEFAULT_RTP,
    MAX_CRASH,
    bin_probabilities,
    check_rtp,
    instant_bust_probability,
    randomized_pit,
    survival,
)

_MAX_HUNDREDTHS = int(MAX_CRASH * 100)

__all__ = [
    # the law, re-exported from crashlog.law (its home) for the code that found it here
    "CENT",
    "DEFAULT_RTP",
    "MAX_CRASH",
    "bin_probabilities",
    "instant_bust_probability",
    "randomized_pit",
    "survival",
    # the simulated game and bots
    "STRATEGIES",
    "AntiMartingale",
    "CrashGame",
    "Martingale",
    "PlayedRound",
    "SimulatedBot",
    "Strategy",
    "crash_point",
    "make_strategy",
    "to_cents",
]


def crash_point(u: float, rtp: float = DEFAULT_RTP) -> Decimal:
    """The crash point for a uniform draw ``u`` in [0, 1): ``rtp / (1 - u)`` rounded down.

    ``rtp / (1 - u)`` has ``P(X >= x) = rtp / x`` for ``x >= rtp``; anything below 1.00
    is the instant crash at 1.00. Capped at ``MAX_CRASH``.
    """
    if not 0 <= u < 1:
        raise ValueError(f"invalid u={u!r}: must be in [0, 1)")
    hundredths = math.floor(100 * rtp / (1.0 - u))
    return Decimal(min(max(hundredths, 100), _MAX_HUNDREDTHS)) / 100


class CrashGame:
    """An endless seeded sequence of crash points."""

    def __init__(self, rtp: float = DEFAULT_RTP, seed: int | None = None) -> None:
        self.rtp = check_rtp(rtp)
        self._random = random.Random(seed)

    def next_crash(self) -> Decimal:
        return crash_point(self._random.random(), self.rtp)

    def crashes(self, count: int) -> Iterator[Decimal]:
        for _ in range(count):
            yield self.next_crash()


# -- strategies ---------------------------------------------------------------------------


@attrs.define
class Strategy:
    """Fixed cash-out: stake ``base_stake`` every round, cash out at ``target``.

    Subclasses change the stake after a win or a loss. A stake is never above
    ``max_stake``; a bot that cannot afford its stake falls back to ``base_stake``,
    and skips the round when it cannot afford even that.
    """

    name = "fixed"
    target: Decimal = attrs.field(default=Decimal("2.00"), converter=Decimal)
    base_stake: Decimal = attrs.field(default=Decimal("1.00"), converter=Decimal)
    max_stake: Decimal = attrs.field(default=Decimal("1000.00"), converter=Decimal)
    stake: Decimal = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.target < Decimal("1.01"):
            raise ValueError(f"invalid target={self.target}: a cash-out target must be >= 1.01")
        if self.base_stake <= 0:
            raise ValueError(f"invalid base_stake={self.base_stake}: must be positive")
        self.stake = self.base_stake

    def next_stake(self, balance: Decimal) -> Decimal | None:
        """The stake for the next round, or None to skip it (cannot afford the base stake)."""
        if self.stake > balance:
            self.stake = self.base_stake
        return self.stake if self.stake <= balance else None

    def settle(self, won: bool) -> None:
        """Learn the outcome of the round just played."""


@attrs.define
class Martingale(Strategy):
    """Double the stake after a loss, back to the base stake after a win."""

    name = "martingale"

    def settle(self, won: bool) -> None:
        self.stake = self.base_stake if won else min(self.stake * 2, self.max_stake)


@attrs.define
class AntiMartingale(Strategy):
    """Double the stake after a win (up to ``streak_cap`` wins in a row), reset after a loss."""

    name = "anti-martingale"
    streak_cap: int = 3
    _streak: int = attrs.field(default=0, init=False)

    def settle(self, won: bool) -> None:
        self._streak = self._streak + 1 if won else 0
        if not won or self._streak >= self.streak_cap:
            self._streak = 0
            self.stake = self.base_stake
        else:
            self.stake = min(self.stake * 2, self.max_stake)


STRATEGIES: dict[str, type[Strategy]] = {
    "fixed": Strategy,
    "martingale": Martingale,
    "anti-martingale": AntiMartingale,
}


def make_strategy(name: str, **options: object) -> Strategy:
    """A strategy by name: ``fixed``, ``martingale`` or ``anti-martingale``."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        choices = ", ".join(STRATEGIES)
        raise ValueError(f"invalid strategy={name!r}: must be one of {choices}") from None
    return cls(**options)  # type: ignore[arg-type]


# -- bots ---------------------------------------------------------------------------------


@attrs.frozen
class PlayedRound:
    """One round as a bot settles it; the fields of a ``RoundSettled`` event."""

    round_number: int
    stake: Decimal
    target_multiplier: Decimal
    crash_multiplier: Decimal
    cashout_multiplier: Decimal | None
    outcome: str
    profit_loss: Decimal
    balance_before: Decimal
    balance_after: Decimal


@attrs.define
class SimulatedBot:
    """A bot with a balance and a strategy, playing the rounds it is shown."""

    bot_id: str
    strategy: Strategy
    balance: Decimal = attrs.field(default=Decimal("1000.00"), converter=Decimal)
    rounds_played: int = 0

    def play(self, crash: Decimal) -> PlayedRound:
        """Play one round that crashes at ``crash``: win iff it reaches the target."""
        self.rounds_played += 1
        before = self.balance
        target = self.strategy.target
        stake = self.strategy.next_stake(before)
        if stake is None:
            outcome, stake, cashout, profit = "SKIP", Decimal("0.00"), None, Decimal("0.00")
        elif crash >= target:
            # The game pays whole cents, rounding the win down.
            outcome, cashout, profit = "WIN", target, to_cents(stake * (target - 1))
            self.strategy.settle(True)
        else:
            outcome, cashout, profit = "LOSS", None, -stake
            self.strategy.settle(False)
        self.balance = before + profit
        return PlayedRound(
            round_number=self.rounds_played,
            stake=stake,
            target_multiplier=target,
            crash_multiplier=crash,
            cashout_multiplier=cashout,
            outcome=outcome,
            profit_loss=profit,
            balance_before=before,
            balance_after=self.balance,
        )


def to_cents(value: Decimal) -> Decimal:
    """``value`` rounded down to the cent, as a game displays money."""
    return value.quantize(CENT, rounding=ROUND_DOWN)
