"""Projections: the read tables derived from the event log, and the runner that feeds them.

``PROJECTIONS`` lists every built-in read model (``@projection`` and ``Batch`` make a user's
own: ``crashlog.projections.user``); ``crashlog.projections.runner`` applies them
(``follow``), rebuilds them (``rebuild``) and reports how far behind they are (``lag``).
"""

from __future__ import annotations

from collections.abc import Sequence

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
from crashlog.projections.user import Batch, projection

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

#: Old names of projections merged into another: old name -> the projection it is part of now.
#: round_outcomes became a view over rounds (migration 016). An old name selects its projection
#: (``select``: ``--rebuild``, ``follow(names=)``), and wherever crashlog lists projections by
#: name it is listed too, with its projection's figures (``aliases_of``): ``project --lag``
#: (``progress.lag_listing``), the metrics' ``projection`` label (``crashlog.metrics``),
#: ``doctor``, the report and the dashboard. A future merge adds one line here.
ALIASES: dict[str, str] = {"round_outcomes": "rounds"}


def aliases_of(name: str) -> tuple[str, ...]:
    """The old names (``ALIASES``) of projection ``name``, in the order listed: () for most."""
    return tuple(old for old, new in ALIASES.items() if new == name)


def called(name: str) -> str:
    """``name`` for a message, with its old names: ``"rounds (also known as round_outcomes)"``."""
    old = aliases_of(name)
    return f"{name} (also known as {', '.join(old)})" if old else name


def select(
    names: list[str] | tuple[str, ...] | None, extra: Sequence[Projection] = ()
) -> list[Projection]:
    """The projections called ``names`` (``None`` or ``["all"]``: every one), among the
    built-ins and ``extra`` (users' projections), in registry order. An old name
    (``ALIASES``) selects the projection it is part of now.

    Raises ``UnknownProjection`` (a ``CrashlogError``) naming an unknown projection and the known ones.
    """
    known = [*PROJECTIONS, *extra]
    if not names or "all" in names:
        return known
    names = [ALIASES.get(name, name) for name in names]
    unknown = sorted(set(names) - {p.name for p in known})
    if unknown:
        listed = ", ".join(called(p.name) for p in known)
        raise UnknownProjection(
            f"unknown projection {unknown[0]!r}; known: {listed} (or 'all'; a projection of "
            "your own needs --with module:attribute)"
        )
    return [p for p in known if p.name in names]


__all__ = [
    "ALIASES", "NAMES", "PROJECTIONS", "Batch", "Projection", "aliases_of", "called", "projection", "select",
]
