"""Statistics of a bot's rounds, with the uncertainty a small sample deserves.

``bot_statistics(conn, bot_id)`` reads ``crashlog.rounds`` (kept by the projections) in
the bot's own order and returns counts, money, a 95% Wilson interval on the win rate, the
expected value per round with a 95% interval, the ROI with its interval, the max drawdown
and the longest losing streak beside the one chance alone would give. Money is exact
(``Decimal``); the intervals and rates are floats.

Conventions: a SKIP places no bet, so win rate, ROI, expected value and streaks count
bets (WIN and LOSS rounds) only, and a SKIP neither extends nor breaks a losing streak.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import aclosing
from decimal import Decimal
from typing import Any

import asyncpg
import attrs

from crashlog.analytics.connections import borrows_from_pool
from crashlog.analytics.inference import (
    Interval,
    expected_longest_run,
    mean_interval,
    wilson_interval,
    z_value,
)
from crashlog.law import DEFAULT_RTP
from crashlog.streaming import CHUNK, stream_rows

#: Fewer bets than this and nothing is worth concluding, whatever the intervals say.
MIN_BETS = 30
_ZERO = Decimal(0)


# -- the statistics -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Statistics:
    """What ``bot_statistics`` returns. Money is ``Decimal``; rates are fractions (0.5 = 50%)."""

    bot_id: str | None
    strategy: str | None
    rounds: int
    wins: int
    losses: int
    skips: int
    win_rate: float | None
    win_rate_interval: Interval
    total_staked: Decimal
    total_profit: Decimal
    roi: float | None
    roi_interval: Interval | None
    expected_value: float | None  # mean profit per bet, in money
    expected_value_interval: Interval | None
    max_drawdown: Decimal
    longest_losing_streak: int
    cashout: Decimal | None  # the usual cash-out target the chance figures assume
    expected_longest_losing_streak: float | None
    house_edge: float
    warning: str | None

    @property
    def bets(self) -> int:
        return self.wins + self.losses

    def as_dict(self) -> dict[str, Any]:
        """Plain values (intervals as ``[low, high]``), e.g. for JSON."""
        out = attrs.asdict(self, recurse=False)
        for key, value in out.items():
            if isinstance(value, Interval):
                out[key] = [value.low, value.high]
        return out


class _Accumulator:
    """One pass over rounds in order: counts, money, moments, drawdown, streaks."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.staked = _ZERO
        self.profit = _ZERO
        self.peak = _ZERO
        self.max_drawdown = _ZERO
        self.streaks: dict[str, int] = {}
        self.longest_streak = 0
        self.targets: Counter[Decimal] = Counter()
        self.cashouts: Counter[Decimal] = Counter()
        # Welford's running count, means and co-moments (sums of products of deviations) of
        # profit and stake: raw sums of squares cancel to nothing when profits are large and alike.
        self.profit_count = 0
        self.profit_mean = 0.0
        self.stake_mean = 0.0
        self.profit_squares = 0.0
        self.stake_squares = 0.0
        self.profit_stake = 0.0

    def add(self, row: Mapping[str, Any]) -> None:
        outcome = row["outcome"]
        self.counts[outcome] += 1
        profit, stake = row["profit_loss"], row["stake"]
        self.profit += profit
        self.peak = max(self.peak, self.profit)
        self.max_drawdown = max(self.max_drawdown, self.peak - self.profit)
        if outcome == "SKIP":
            return
        self.staked += stake
        p, s = float(profit), float(stake)
        self.profit_count += 1
        dp, ds = p - self.profit_mean, s - self.stake_mean
        self.profit_mean += dp / self.profit_count
        self.stake_mean += ds / self.profit_count
        self.profit_squares += dp * (p - self.profit_mean)
        self.stake_squares += ds * (s - self.stake_mean)
        self.profit_stake += dp * (s - self.stake_mean)
        if row["target_multiplier"] is not None:
            self.targets[row["target_multiplier"]] += 1
        elif outcome == "WIN" and row["cashout_multiplier"] is not None:
            self.cashouts[row["cashout_multiplier"]] += 1
        bot = row.get("bot_id", "")
        streak = self.streaks.get(bot, 0) + 1 if outcome == "LOSS" else 0
        self.streaks[bot] = streak
        self.longest_streak = max(self.longest_streak, streak)

    def usual_cashout(self) -> Decimal | None:
        for counter in (self.targets, self.cashouts):
            if counter:
                return counter.most_common(1)[0][0]
        return None


def summarize(
    rows: Iterable[Mapping[str, Any]],
    *,
    bot_id: str | None = None,
    strategy: str | None = None,
    rtp: float = DEFAULT_RTP,
) -> Statistics:
    """Statistics of ``rows`` (dicts or records of ``crashlog.rounds``) taken in order."""
    acc = _Accumulator()
    for row in rows:
        acc.add(row)
    return _finish(acc, bot_id=bot_id, strategy=strategy, rtp=rtp)


def _finish(
    acc: _Accumulator, *, bot_id: str | None, strategy: str | None, rtp: float
) -> Statistics:
    wins, losses, skips = acc.counts["WIN"], acc.counts["LOSS"], acc.counts["SKIP"]
    bets = wins + losses
    ev, ev_interval = _expected_value(acc, bets)
    roi, roi_interval = _roi(acc, bets)
    cashout = acc.usual_cashout()
    expected_streak = None
    if cashout is not None and bets:
        lose_probability = max(0.0, 1 - rtp / float(cashout))
        expected_streak = expected_longest_run(bets, lose_probability)
    house_edge = round(rtp - 1, 12)  # -0.03, not -0.030000000000000027
    return Statistics(
        bot_id=bot_id,
        strategy=strategy,
        rounds=wins + losses + skips,
        wins=wins,
        losses=losses,
        skips=skips,
        win_rate=wins / bets if bets else None,
        win_rate_interval=wilson_interval(wins, bets),
        total_staked=acc.staked,
        total_profit=acc.profit,
        roi=roi,
        roi_interval=roi_interval,
        expected_value=ev,
        expected_value_interval=ev_interval,
        max_drawdown=acc.max_drawdown,
        longest_losing_streak=acc.longest_streak,
        cashout=cashout,
        expected_longest_losing_streak=expected_streak,
        house_edge=house_edge,
        warning=_warning(bets, roi, roi_interval, house_edge),
    )


def _expected_value(acc: _Accumulator, bets: int) -> tuple[float | None, Interval | None]:
    if not bets:
        return None, None
    mean = float(acc.profit) / bets
    # Welford's update (Knuth, TAOCP 2, 4.2.2): sum p^2 - n mean^2 cancelled to nothing, or
    # below 0, when profits are large and alike (a 1e8 stake winning by cents each round).
    variance = acc.profit_squares / (bets - 1) if bets > 1 else 0.0
    return mean, mean_interval(bets, mean, variance)


def _roi(acc: _Accumulator, bets: int) -> tuple[float | None, Interval | None]:
    """ROI = profit / staked, with the ratio estimator's (delta-method) interval."""
    if not bets or acc.staked <= 0:
        return None, None
    staked = float(acc.staked)
    roi = float(acc.profit) / staked
    if bets < 2:
        return roi, None
    # Sum of squared residuals (p_i - roi * s_i)^2 from the centred co-moments: roi is the ratio
    # of the means, so the term n * (mean_p - roi * mean_s)^2 of the expansion is zero.
    residuals = acc.profit_squares - 2 * roi * acc.profit_stake + roi * roi * acc.stake_squares
    variance = max(0.0, residuals) * bets / (bets - 1) / (staked * staked)
    half = z_value() * math.sqrt(variance)
    return roi, Interval(roi - half, roi + half)


def _warning(
    bets: int, roi: float | None, interval: Interval | None, house_edge: float
) -> str | None:
    """A plain sentence when the sample cannot tell this ROI from the house edge."""
    if bets == 0:
        return "No bets yet: nothing to tell about this bot's ROI."
    if bets < MIN_BETS or roi is None or interval is None:
        return (
            f"Only {bets} bets: far too few to tell this bot's ROI from the house edge "
            f"({house_edge:+.1%}). Treat every figure here as noise."
        )
    if house_edge in interval and 0.0 in interval:
        # To exclude one of the two, the interval must be narrower than the gap between them;
        # its width shrinks as 1/sqrt(bets).
        width = interval.high - interval.low
        needed = math.ceil(bets * (width / abs(house_edge)) ** 2) if house_edge else None
        more = f" About {needed:,} bets would be needed." if needed else ""
        return (
            f"{bets} bets are too few to tell this ROI ({roi:+.2%}, 95% interval "
            f"{interval.low:+.2%} to {interval.high:+.2%}) from the house edge "
            f"({house_edge:+.1%}) or from breaking even.{more}"
        )
    return None


# -- reading the rounds table -------------------------------------------------------------

_ROUND_COLUMNS = "bot_id, outcome, stake, profit_loss, target_multiplier, cashout_multiplier"

_BOT_ROUNDS = f"""
SELECT {_ROUND_COLUMNS} FROM crashlog.rounds
WHERE bot_id = $1 AND ($2::text IS NULL OR strategy_name = $2)
ORDER BY occurred_at, position
"""

_STRATEGY_ROUNDS = f"""
SELECT {_ROUND_COLUMNS} FROM crashlog.rounds
WHERE strategy_name = $1
ORDER BY occurred_at, position
"""

#: Rows fetched per round trip when streaming a bot's rounds.
PREFETCH = CHUNK


async def _collect(
    conn: asyncpg.Connection, query: str, args: tuple[Any, ...], **labels: Any
) -> Statistics:
    acc = _Accumulator()
    # A server-side cursor in one snapshot: flat memory however long the bot's history.
    async with aclosing(stream_rows(conn, query, args, chunk=PREFETCH)) as rows:
        async for row in rows:
            acc.add(row)
    return _finish(acc, **labels)


@borrows_from_pool
async def bot_statistics(
    conn: asyncpg.Connection,
    bot_id: str,
    strategy: str | None = None,
    *,
    rtp: float = DEFAULT_RTP,
) -> Statistics:
    """Statistics of one bot's settled rounds (of one strategy if given), in its order.

    Reads ``crashlog.rounds``; call ``log.sync()`` first to include what was just emitted.
    ``rtp`` is the game's return to player, for the house edge and the streak expected
    by chance.
    """
    return await _collect(
        conn, _BOT_ROUNDS, (bot_id, strategy), bot_id=bot_id, strategy=strategy, rtp=rtp
    )


@borrows_from_pool
async def strategy_statistics(
    conn: asyncpg.Connection, strategy: str, *, rtp: float = DEFAULT_RTP
) -> Statistics:
    """Statistics of every bot's rounds played with ``strategy``, pooled in time order.

    Losing streaks are counted per bot (the longest of any bot is reported).
    """
    return await _collect(
        conn, _STRATEGY_ROUNDS, (strategy,), bot_id=None, strategy=strategy, rtp=rtp
    )


_BOT_SUMMARY = """
SELECT bot_id, rounds, wins, losses, skips, total_staked, total_profit, last_balance, updated_at
FROM crashlog.bot_stats WHERE strategy_name = '' ORDER BY bot_id
"""


async def bot_summaries(conn: asyncpg.Connection | asyncpg.Pool) -> list[dict[str, Any]]:
    """Every bot's running totals from ``crashlog.bot_stats`` (cheap: one row per bot)."""
    rows = await conn.fetch(_BOT_SUMMARY)
    return [dict(row) for row in rows]
