"""The law of crash games: what every analysis compares the recorded crash points with.

A crash game with return to player ``r`` (the RTP) crashes at ``X`` with ``P(X >= x) = r / x``
for every ``x >= 1``, shown rounded *down* to two decimals and capped at ``MAX_CRASH``. So a
round crashes at once (1.00) with probability ``1 - r / 1.01``, a bet cashing out at ``c``
wins with probability ``r / c``, and each value of the two-decimal grid has an exact
probability.

Games differ in the details, so the law is a value, ``Law``: a family and its ``rtp``.

- ``r_over_x`` (``R_OVER_X``, ``law_named("bustabit")`` at 0.99): ``P(X >= x) = r / x``, as
  above. bustabit v2 and classic (``floor(99 / (1 - u))`` cents) follow it at r = 0.99.
- the instant-bust family (``instant_bust(share)``: Roobet 1/33, bustabit v1 and ethercrash
  1/101): a share of games busts at once, the others are ``floor((100e - h) / (e - h))``
  cents, so ``P(X >= x) = r / (x - 0.01)`` for ``x >= 1.01`` with ``r = (1 - share) 0.99``
  (Roobet: ``(32/33) 0.99 / (x - 0.01)``).
- ``stake_float``: Stake's crash points are unrounded doubles ``max(1, 0.99 * 2^32 / (n + 1))``,
  shown rounded down to the cent; so they are read floored (``Law.floors``) and then follow
  r/x at 0.99 exactly.

The module-level functions below are the r/x law's (with ``rtp`` as last argument and
``DEFAULT_RTP`` as default), as before the law became a value.

The simulator (``crashlog.simulator``) draws crash points from this law; the analytics,
the features and the exports read it from here, never from the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal

import attrs

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
    "LAWS",
    "MAX_CRASH",
    "R_OVER_X",
    "Law",
    "instant_bust",
    "law_named",
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


# -- the law as a value ---------------------------------------------------------------------

_CAP_H = int(MAX_CRASH * 100)


@attrs.frozen
class Law:
    """A crash law: ``P(X >= x) = rtp / (x - shift / 100)`` on the cent grid, ``x >= 1.01``.

    Promises: every probability of a displayed (two-decimal) crash point, exactly; the shape
    above 1.00 (``conditional_mass``) does not depend on ``rtp``, so the whole likelihood of
    ``rtp`` is in the share of 1.00 busts (``rtp_from_share``). ``floors``: the game gives
    unrounded floats that it shows rounded down (Stake); an analysis floors them first.
    """

    name: str
    rtp: float = attrs.field(converter=check_rtp)
    #: 0 for r/x, 1 for the ``(x - 0.01)`` shape of the instant-bust family (in cents).
    shift: int = 0
    floors: bool = False
    #: One line on where the law comes from, for reports.
    about: str = ""

    def with_rtp(self, rtp: float) -> Law:
        """The same family at another RTP."""
        return attrs.evolve(self, rtp=rtp)

    @property
    def bust_scale(self) -> float:
        """``P(X >= 1.01) / rtp``: 1/1.01 for r/x, 1 for the instant-bust family."""
        return 100 / (101 - self.shift)

    def survival_h(self, hundredths: int) -> float:
        """``P(X >= h / 100)`` for a whole number of cents ``h``."""
        if hundredths <= 100:
            return 1.0
        if hundredths > _CAP_H:
            return 0.0
        return self.rtp * 100 / (hundredths - self.shift)

    def survival(self, x: Decimal | float | str) -> float:
        """``P(X >= x)`` for a two-decimal ``x``: exact."""
        value = Decimal(str(x))
        if value <= 1:
            return 1.0
        if value > MAX_CRASH:
            return 0.0
        return self.survival_h(int(value * 100)) if value == value.quantize(CENT) else self.rtp / float(
            value - Decimal(self.shift) / 100
        )

    def instant_bust_probability(self) -> float:
        """``P(X = 1.00)``: ``1 - rtp * bust_scale``."""
        return 1.0 - self.rtp * self.bust_scale

    def value_probability(self, value: Decimal) -> float:
        """``P(X = value)`` for a two-decimal ``value``."""
        h = int(Decimal(value) * 100)
        return self.survival_h(h) - self.survival_h(h + 1)

    def conditional_mass(self, hundredths: int) -> float:
        """``P(X = h / 100 | X >= 1.01)`` below the cap: the shape, whatever ``rtp``."""
        shifted = hundredths - self.shift
        return (101 - self.shift) / (shifted * (shifted + 1))

    def randomized_pit(self, x: Decimal | float | str, v: float) -> float:
        """``P(X < x) + v P(X = x)``: exactly uniform under the law (see ``randomized_pit``)."""
        if not 0 <= v < 1:
            raise ValueError(f"invalid v={v!r}: must be in [0, 1)")
        value = Decimal(str(x))
        if value < 1 or value != value.quantize(CENT):
            raise ValueError(f"invalid x={x!r}: must be a two-decimal multiplier of at least 1.00")
        h = int(value * 100)
        at_least, above = self.survival_h(h), self.survival_h(h + 1)
        return (1.0 - at_least) + v * (at_least - above)

    def bin_probabilities(self, edges: Sequence[Decimal]) -> list[float]:
        """Exact probabilities of ``[edges[i], edges[i+1])`` and ``[edges[-1], inf)``."""
        if not edges or Decimal(edges[0]) != Decimal("1.00"):
            raise ValueError("edges must start at 1.00")
        tails = [self.survival_h(int(Decimal(edge) * 100)) for edge in edges] + [0.0]
        return [tails[i] - tails[i + 1] for i in range(len(edges))]

    def rtp_from_share(self, share: float) -> float:
        """The RTP whose law has ``share`` 1.00 busts: ``(1 - share) / bust_scale``."""
        return (1 - share) / self.bust_scale

    def floor(self, value: Decimal) -> Decimal:
        """``value`` rounded down to the cent, as the game shows it."""
        return value.quantize(CENT, rounding=ROUND_FLOOR)

    def describe(self, *, with_rtp: bool = True) -> str:
        """``roobet: P(X >= x) = 0.96 / (x - 0.01)``: the name and the formula, for reports
        (``r`` for the RTP when ``with_rtp`` is False: only the shape is tested)."""
        x = "x" if not self.shift else f"(x - {self.shift / 100:.2f})"
        r = f"{self.rtp:.4g}" if with_rtp else "r"
        floored = ", floats floored to the cent" if self.floors else ""
        return f"{self.name}: P(X >= x) = {r} / {x}{floored}"


def instant_bust(share: float, *, name: str, edge: float = 0.01, about: str = "") -> Law:
    """The instant-bust family: ``share`` of games bust at once, the rest follow
    ``floor((100e - h) / (e - h))`` cents with house edge ``edge``: ``r = (1 - share)(1 - edge)``."""
    if not 0 <= share < 1:
        raise ValueError(f"invalid share={share!r}: must be in [0, 1)")
    return Law(name, (1 - share) * (1 - edge), shift=1, about=about)


#: The law as crashlog assumed it before laws were values: r/x at ``DEFAULT_RTP``.
R_OVER_X = Law("r_over_x", DEFAULT_RTP, about="P(X >= x) = r / x on the cent grid")

#: Named laws, for ``law=`` and ``--law``.
LAWS: dict[str, Law] = {
    "r_over_x": R_OVER_X,
    "bustabit": Law("bustabit", 0.99, about="bustabit v2 and classic: floor(99 / (1 - u)) cents"),
    "stake_float": Law("stake_float", 0.99, floors=True, about="Stake: max(1, 0.99 2^32 / (n + 1)), shown floored"),
    "roobet": instant_bust(1 / 33, name="roobet", about="Roobet: 1 game in 33 busts, else bustabit v1's formula"),
    "bustabit_v1": instant_bust(1 / 101, name="bustabit_v1", about="bustabit v1: 1 game in 101 busts"),
    "ethercrash": instant_bust(1 / 101, name="ethercrash", about="ethercrash, a bustabit v1 clone"),
}


def law_named(law: Law | str | None, rtp: float | None = None) -> Law:
    """``law`` as a Law (a name of ``LAWS``, a Law, or None for r/x), at ``rtp`` when given.

    ValueError naming the law and the known names when the name is unknown.
    """
    if law is None:
        chosen = R_OVER_X
    elif isinstance(law, Law):
        chosen = law
    else:
        try:
            chosen = LAWS[str(law)]
        except KeyError:
            raise ValueError(f"invalid law={law!r}: known laws are {', '.join(LAWS)}") from None
    return chosen if rtp is None else chosen.with_rtp(rtp)


# -- the r/x law, as functions --------------------------------------------------------------


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
