"""A sequential monitor for a live feed of multipliers: an alarm when the game leaves its law.

Testing a growing sample again after every batch at level ``alpha`` raises a false alarm far
more often than ``alpha``: each look is another chance. ``Monitor`` instead keeps, for each
stream it watches, a likelihood ratio that is a martingale under the law, and alarms when it
reaches ``streams / alpha``. By Ville's inequality (Ville 1939; the "power-one" mixture
sequential probability ratio test of Robbins 1970) the chance that a feed following the law
*ever* raises an alarm, however long it runs and however often it is looked at, is at most
``alpha``.

Streams:

- ``instant_busts``: is this round a 1.00 bust? The law says ``p0 = 1 - r / 1.01``. More busts
  than that means the game keeps more than its RTP; fewer, usually, a collection that loses
  them.
- ``hits``, when a ``target`` is given: does this round reach ``target``? The law says
  ``r / target``, what a bot cashing out there relies on.

Each stream's ratio mixes the alternatives ``p`` over a Beta prior centred on the law's ``p0``
(``Beta(k p0, k (1 - p0))``): ``L_n = B(a + s, b + n - s) / B(a, b) / (p0^s (1 - p0)^(n - s))``
after ``s`` events in ``n`` rounds. It catches a shift in either direction and of any size;
``k`` is set so the prior's spread is an RTP shift of ``rtp_shift`` (default 0.02), the size
found fastest. With two streams each gets ``alpha / 2`` (a union bound: the two are not
independent within a round).
"""

from __future__ import annotations

import math
from decimal import Decimal

import attrs

from crashlog.analytics.fit import classify
from crashlog.law import DEFAULT_RTP, instant_bust_probability

_ONE = 100


@attrs.frozen
class Alarm:
    """The round at which a stream's evidence against the law crossed its threshold."""

    stream: str
    rounds: int
    events: int
    expected_rate: float
    observed_rate: float
    #: The RTP the stream's observed rate implies.
    implied_rtp: float
    #: The mixture likelihood ratio against the law, at least ``threshold``.
    evidence: float
    threshold: float
    message: str


@attrs.define
class _Stream:
    name: str
    p0: float
    a: float
    b: float
    #: dp / dr: how the stream's rate moves with the RTP (to tell the implied RTP).
    slope: float
    intercept: float
    rounds: int = 0
    events: int = 0
    _constant: float = attrs.field(init=False)
    _log_p0: float = attrs.field(init=False)
    _log_q0: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._constant = math.lgamma(self.a) + math.lgamma(self.b) - math.lgamma(self.a + self.b)
        self._log_p0 = math.log(self.p0)
        self._log_q0 = math.log1p(-self.p0)

    def log_ratio(self) -> float:
        """log of ``B(a + s, b + f) / B(a, b) / (p0^s (1 - p0)^f)``."""
        s, f = self.events, self.rounds - self.events
        mixture = math.lgamma(self.a + s) + math.lgamma(self.b + f) - math.lgamma(self.a + self.b + self.rounds)
        return mixture - self._constant - s * self._log_p0 - f * self._log_q0


class Monitor:
    """Watch a live feed against the law of a game with RTP ``rtp``; alarm at most ``alpha``.

    ``update(multiplier)`` for each round in order; it returns an ``Alarm`` on the round the
    evidence first crosses the threshold, else None. After an alarm the monitor keeps
    counting but stays quiet (``alarm`` holds it) until ``reset()``, which starts a new run
    with the same guarantee. A value the law does not allow (null, off the cent grid, below
    1.00) raises ValueError naming it: clean the feed first, ``fit`` and the quality report
    say what is wrong with it.
    """

    def __init__(
        self,
        rtp: float = DEFAULT_RTP,
        *,
        alpha: float = 0.01,
        target: Decimal | float | str | None = None,
        rtp_shift: float = 0.02,
    ) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"invalid alpha={alpha!r}: must be in (0, 1), e.g. 0.01")
        if not 0 < rtp_shift < 1:
            raise ValueError(f"invalid rtp_shift={rtp_shift!r}: must be in (0, 1), e.g. 0.02")
        self.rtp = rtp
        self.alpha = alpha
        bust = instant_bust_probability(rtp)
        streams = [_stream("instant_busts", bust, -1 / 1.01, 1.0, rtp_shift)]
        self.target: int | None = None
        if target is not None:
            hundredths = classify(Decimal(str(target)))
            if not isinstance(hundredths, int) or hundredths <= _ONE:
                raise ValueError(f"invalid target={target!r}: must be a two-decimal multiplier above 1.00")
            self.target = hundredths
            streams.append(_stream(f"hits at {hundredths // 100}.{hundredths % 100:02d}", rtp * 100 / hundredths,
                                   100 / hundredths, 0.0, rtp_shift))
        self._streams = streams
        #: Each stream's threshold on the likelihood ratio: ``streams / alpha``.
        self.threshold = len(streams) / alpha
        self._log_threshold = math.log(self.threshold)
        self.alarm: Alarm | None = None

    @property
    def rounds(self) -> int:
        """Rounds seen since the start or the last ``reset()``."""
        return self._streams[0].rounds

    def evidence(self) -> dict[str, float]:
        """Each stream's likelihood ratio against the law now (an alarm at ``threshold``)."""
        return {s.name: math.exp(min(s.log_ratio(), 700.0)) for s in self._streams}

    def reset(self) -> None:
        """Forget every round and any alarm: a new run, with its own ``alpha`` guarantee."""
        for stream in self._streams:
            stream.rounds = stream.events = 0
        self.alarm = None

    def update(self, multiplier: Decimal | float | str) -> Alarm | None:
        """Count one round; the Alarm if this round makes the evidence cross the threshold."""
        hundredths = classify(multiplier, self.rounds)
        if not isinstance(hundredths, int):
            raise ValueError(f"invalid multiplier={multiplier!r}: {hundredths.replace('_', ' ')}")
        bust, hit = self._streams[0], self._streams[-1]
        bust.rounds += 1
        bust.events += hundredths == _ONE
        if self.target is not None:
            hit.rounds += 1
            hit.events += hundredths >= self.target
        if self.alarm is not None:
            return None
        for stream in self._streams:
            if stream.log_ratio() >= self._log_threshold:
                self.alarm = self._alarm(stream)
                return self.alarm
        return None

    def _alarm(self, stream: _Stream) -> Alarm:
        rate = stream.events / stream.rounds
        implied = (rate - stream.intercept) / stream.slope
        direction = "more" if rate > stream.p0 else "fewer"
        return Alarm(
            stream=stream.name,
            rounds=stream.rounds,
            events=stream.events,
            expected_rate=stream.p0,
            observed_rate=rate,
            implied_rtp=implied,
            evidence=math.exp(min(stream.log_ratio(), 700.0)),
            threshold=self.threshold,
            message=(
                f"{stream.name}: {stream.events:,} in {stream.rounds:,} rounds ({rate:.2%}), {direction} than the "
                f"{stream.p0:.2%} of r = {self.rtp:g}; as if r were {implied:.3f}"
            ),
        )


def _stream(name: str, p0: float, slope: float, intercept: float, rtp_shift: float) -> _Stream:
    # Prior spread sqrt(p0 (1 - p0) / k) equal to the rate change an RTP shift of rtp_shift makes.
    spread = abs(slope) * rtp_shift
    strength = p0 * (1 - p0) / (spread * spread)
    return _Stream(name, p0, strength * p0, strength * (1 - p0), slope, intercept)
