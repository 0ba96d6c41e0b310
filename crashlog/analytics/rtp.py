"""The RTP an analysis assumes, where it came from, and what the 1.00x busts say it is.

Every report against the law needs the game's RTP ``r``. It is ``given`` by the caller, else
the game's configured ``rtp_percent`` (``crashlog.game_configs``, from a ``GameConfigured``
event), else ``DEFAULT_RTP``; a report names which with the words of ``RTP_SOURCES``, so
``quality``, ``signals`` and the command line say it alike.

Above 1.00 the law's shape does not depend on ``r`` (``P(X >= x | X >= 1.01) = 1.01 / x``), so
the whole likelihood of ``r`` is in the share ``s`` of 1.00x busts: ``rtp_from_busts`` gives
the maximum-likelihood ``r = 1.01 (1 - s)`` with its standard error and interval.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Literal

import asyncpg

from crashlog.analytics.inference import CONFIDENCE, Interval, wilson_interval
from crashlog.law import DEFAULT_RTP, Law, check_rtp

__all__ = [
    "RTP_SOURCES",
    "RtpSourceKind",
    "check_rtp",  # the law's (crashlog.law), where it was found first
    "choose_rtp",
    "resolve_rtp",
    "rtp_from_busts",
    "rtp_note",
]

RtpSourceKind = Literal["given", "game_configs", "default", "law"]

#: How a report says where its RTP came from, by source.
RTP_SOURCES: dict[str, str] = {
    "given": "given",
    "game_configs": "the game's configured rtp_percent",
    "default": "the default: no configured rtp_percent",
    "law": "the named law's published RTP",
}

_CONFIGURED_RTP = "SELECT rtp_percent FROM crashlog.game_configs WHERE platform = $1 AND game = $2"


def choose_rtp(
    given: float | None, rtp_percent: Decimal | float | None
) -> tuple[float, RtpSourceKind]:
    """The RTP to assume and its source: ``given``, else the configured percent, else the default."""
    if given is not None:
        return check_rtp(given), "given"
    if rtp_percent is not None:
        return float(rtp_percent) / 100, "game_configs"
    return DEFAULT_RTP, "default"


async def resolve_rtp(
    conn: asyncpg.Connection, *, platform: str, game: str, given: float | None
) -> tuple[float, RtpSourceKind]:
    """``choose_rtp`` for one game, reading its configured ``rtp_percent`` when none is given."""
    if given is not None:
        return choose_rtp(given, None)
    return choose_rtp(None, await conn.fetchval(_CONFIGURED_RTP, platform, game))


def rtp_note(rtp: float, source: str) -> str:
    """``r = 0.97 (the default: no configured rtp_percent)``: the RTP and where it came from."""
    return f"r = {rtp:g} ({RTP_SOURCES[source]})"


def rtp_from_busts(
    busts: int, rounds: int, confidence: float = CONFIDENCE, *, law: Law | None = None
) -> tuple[float, float, Interval]:
    """The maximum-likelihood RTP from ``busts`` 1.00x rounds among ``rounds``.

    ``(estimate, standard error, interval)``: for r/x (the default ``law``) ``1.01 (1 - s)``,
    ``1.01 sqrt(s (1 - s) / n)`` and the interval from Wilson's interval for the share ``s``;
    for another law, 1.01 is ``1 / law.bust_scale`` (1.00 for the instant-bust family).
    NaN (and ``[0, 1.01]``) without rounds.
    """
    scale = 1.01 if law is None else 1 / law.bust_scale
    if rounds == 0:
        return math.nan, math.nan, Interval(0.0, scale)
    share = busts / rounds
    interval = wilson_interval(busts, rounds, confidence)
    return (
        scale * (1 - share),
        scale * math.sqrt(share * (1 - share) / rounds),
        Interval(scale * (1 - interval.high), scale * (1 - interval.low)),
    )
