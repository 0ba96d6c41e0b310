"""The law of crash games: what every analysis compares the recorded crash points with.

A crash game with return to player ``r`` (the RTP) crashes at ``X`` with ``P(X >= x) = r / x``
for every ``x >= 1``, shown rounded *down* to two decimals and capped at ``MAX_CRASH``. So a
round crashes at once (1.00) with probability ``1 - r / 1.01``, a bet cashing out at ``c``
wins with probability ``r / c``, and each value of the two-decimal grid has an exact
probability.

Today there is one law, r/x, and its parameter is ``r``: every function here takes ``rtp``
as its last argument, with ``DEFAULT_RTP`` as default, and validates it with ``check_rtp``.
Kept that way, the functions of the section below can become the methods of a law value
that carries its own parameters (instant-bust families, unrounded floats), and the
analytics that call them today keep their shape.

The simulator (``crashlog.simulator``) draws crash points from this law; the analytics,
the features and the exports read it from here, never from the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from crashlog.events.fields import MULTIPLIER_CAP

#: The RTP assumed when neither the caller nor the game's configuration gives one.
DEFAULT_RTP = 0.97
#: The grid crash points are shown on.
CENT = Decimal("0.01")
#: The largest crash point the game shows (the event catalogue's multiplier cap).
MAX_CRASH = MULTIPLIER_CAP

__all__ = [
    "CENT",
    "DEFAULT_RTP",
    "MAX_CRASH",
    "bin_probabilities",
    "check_rtp",
    "instant_bust_probability",
    "randomized_pit",
    "survival",
    "value_probability",
]


def check_rtp(rtp: float | Decimal | str) -> float:
    """``rtp`` as a float in (0, 1]; ValueError naming it otherwise."""
    try:
        value = float(rtp)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 < value <= 1:
        raise ValueError(f"invalid rtp={rtp!r}: must be in (0, 1], e.g. 0.97")
    return value


# -- the r/x law --------------------------------------------------------------------------


def survival(x: Decimal | float | str, rtp: float = DEFAULT_RTP) -> float:
    """``P(X >= x)`` for the displayed crash point ``X`` and a two-decimal ``x``: exact."""
    value = Decimal(str(x))
    if value <= 1:
        return 1.0
    if value > MAX_CRASH:
        return 0.0
    return rtp / float(value)


def instant_bust_probability(rtp: float = DEFAULT_RTP) -> float:
    """``P(X = 1.00)``: the share of rounds that crash at once, ``1 - rtp / 1.01``."""
    return 1.0 - check_rtp(rtp) / 1.01


def value_probability(value: Decimal, rtp: float = DEFAULT_RTP) -> float:
    """``P(X = value)`` for a two-decimal ``value``: exact."""
    return survival(value, rtp) - survival(value + CENT, rtp)


def randomized_pit(x: Decimal | float | str, v: float, rtp: float = DEFAULT_RTP) -> float:
    """The randomized probability-integral transform of a displayed crash point ``x``.

    ``P(X < x) + v * P(X = x)`` for a uniform ``v`` in [0, 1): under the law it is exactly
    uniform on [0, 1) even though ``X`` is discrete (Brockwell 2007, "Universal residuals"),
    which a plain PIT of a two-decimal value is not. ``x`` must be on the two-decimal grid.
    """
    if not 0 <= v < 1:
        raise ValueError(f"invalid v={v!r}: must be in [0, 1)")
    value = Decimal(str(x))
    if value < 1 or value != value.quantize(CENT):
        raise ValueError(f"invalid x={x!r}: must be a two-decimal multiplier of at least 1.00")
    at_least = survival(value, rtp)
    above = survival(value + CENT, rtp)
    return (1.0 - at_least) + v * (at_least - above)


def bin_probabilities(edges: Sequence[Decimal], rtp: float = DEFAULT_RTP) -> list[float]:
    """Exact probabilities of ``[edges[i], edges[i+1])`` and of the last ``[edges[-1], inf)``.

    ``edges`` are increasing two-decimal multipliers starting at 1.00.
    """
    if not edges or Decimal(edges[0]) != Decimal("1.00"):
        raise ValueError("edges must start at 1.00")
    tails = [survival(edge, rtp) for edge in edges] + [0.0]
    return [tails[i] - tails[i + 1] for i in range(len(edges))]
