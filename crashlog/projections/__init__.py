"""Projections: the read tables derived from the event log, and the runner that feeds them.

``PROJECTIONS`` lists every read model; ``crashlog.projections.runner`` applies them
(``follow``), rebuilds them (``rebuild``) and reports how far behind they are (``lag``).
"""

from __future__ import annotations

from crashlog.errors import UnknownProjection
from crashlog.projections import (
    bot_errors,
    bot_stats,
    bots,
    fairness_records,
    game_configs,
    ocr_readings,
    round_multipliers,
    round_signals,
    rounds,
    sessions,
)
from crashlog.projections.base import Projection

PROJECTIONS: tuple[Projection, ...] = (
    bots.PROJECTION,
    game_configs.PROJECTION,
    sessions.PROJECTION,
    rounds.PROJECTION,
    round_multipliers.PROJECTION,
    round_signals.PROJECTION,
    ocr_readings.PROJECTION,
    bot_errors.PROJECTION,
    bot_stats.PROJECTION,
    fairness_records.PROJECTION,
)

NAMES: tuple[str, ...] = tuple(p.name for p in PROJECTIONS)

#: Old names that still select a projection: round_outcomes became a view over rounds (016).
ALIASES: dict[str, str] = {"round_outcomes": "rounds"}


def select(names: list[str] | tuple[str, ...] | None) -> list[Projection]:
    """The projections called ``names`` (``None`` or ``["all"]``: every one), in registry order.

    Raises ``UnknownProjection`` (a ``CrashlogError``) naming an unknown projection and the known ones.
    """
    if not names or "all" in names:
        return list(PROJECTIONS)
    names = [ALIASES.get(name, name) for name in names]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise UnknownProjection(
            f"unknown projection {unknown[0]!r}; known: {', '.join(NAMES)} (or 'all')"
        )
    return [p for p in PROJECTIONS if p.name in names]


__all__ = ["ALIASES", "NAMES", "PROJECTIONS", "Projection", "select"]
