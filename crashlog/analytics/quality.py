"""Which collected multipliers can be trusted: data-quality checks against the law of the game.

Under the published law of crash games, ``P(X >= x) = r / x`` rounded down to cents
(``crashlog.law``), so every share below is known exactly for a given RTP ``r``.
The largest deviations in real collections come from the collection itself: a screen reader
that returns 2.00 or 4.00 too often, a scraper that stores 1.00x busts as null, three-decimal
values, repeated rows, missed rounds, observers that disagree. Each check reports its
``figure``, what the law ``expected``, and a verdict: ``ok``, ``suspect`` or ``insufficient
data``.

Two entry points:

- ``check_quality(rows, rtp=..., significance=...)``: pure, over plain rows (mappings with the
  columns of ``crashlog.round_multipliers``, e.g. a ``crashlog export multipliers`` file, or bare
  multiplier values), in round order;
- ``quality_report(conn_or_pool, game=..., platform=...)``: the same over the read tables.

The checks themselves are in ``analytics.quality_checks``. The statistical checks (instant
busts, each whole or half value and their total, back-to-back repeats) are exact binomial
tests (mid-p) whose p-values are adjusted together by Holm's method, so on fair data the
chance that *any* of them says ``suspect`` is about the significance level, not the sum of
their levels (measured in tests/unit/test_quality.py).
The other checks count things the law says never happen (off-grid values, missing ids,
disagreeing observers): any at all is ``suspect``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg
import attrs

from crashlog.analytics.connections import borrows_from_pool
from crashlog.analytics.parsing import instant_bust_code as code_of
from crashlog.analytics.quality_checks import (
    EXACT_VALUES,
    GAP_FACTOR,
    INSUFFICIENT,
    MIN_EXPECTED,
    OK,
    STATISTICAL_CHECKS,
    SUSPECT,
    Check,
    Verdict,
    repeat_probability,
    run_checks,
)
from crashlog.analytics.rtp import RtpSourceKind, resolve_rtp, rtp_note
from crashlog.law import DEFAULT_RTP, Law, check_rtp, law_named

__all__ = [
    "EXACT_VALUES",
    "GAP_FACTOR",
    "INSUFFICIENT",
    "MIN_EXPECTED",
    "OK",
    "SIGNIFICANCE",
    "STATISTICAL_CHECKS",
    "SUSPECT",
    "Check",
    "QualityReport",
    "Verdict",
    "check_quality",
    "quality_report",
    "repeat_probability",
]

#: Default significance level: the chance that fair data gets any statistical ``suspect``.
SIGNIFICANCE = 0.01


@attrs.frozen(kw_only=True)
class QualityReport:
    """Every check of a set of rounds, and the assumptions they were made under."""

    rounds: int
    rtp: float
    #: Where ``rtp`` came from: ``given`` by the caller, ``game_configs`` (the game's
    #: configured rtp_percent) or ``default`` (DEFAULT_RTP), as signal_report says it.
    rtp_source: RtpSourceKind
    significance: float
    #: The law the checks compare with, at ``rtp`` (``Law.describe``).
    law: str
    checks: tuple[Check, ...]
    #: One check per whole or half value (``exact_1.50`` .. ``exact_10.00``); their total is
    #: the ``whole_half_values`` check.
    exact_values: tuple[Check, ...]
    game: str | None = None
    platform: str | None = None
    bot_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def check(self, name: str) -> Check:
        """The check called ``name`` (also ``exact_2.00`` and the like)."""
        for item in (*self.checks, *self.exact_values):
            if item.name == name:
                return item
        known = ", ".join(c.name for c in self.checks)
        raise KeyError(f"no check named {name!r}; checks: {known}")

    @property
    def suspects(self) -> tuple[str, ...]:
        """Names of the checks (and exact values) that are ``suspect``."""
        return tuple(c.name for c in (*self.checks, *self.exact_values) if c.verdict == SUSPECT)

    @property
    def verdict(self) -> Verdict:
        """``suspect`` if any check is; else ``insufficient data`` while a test against the law
        (instant busts, whole and half values, repeats) had too few rounds; else ``ok``."""
        if self.suspects:
            return SUSPECT
        tests = [c for c in self.checks if c.name in STATISTICAL_CHECKS]
        return OK if all(c.verdict == OK for c in tests) else INSUFFICIENT

    def shown_checks(self) -> tuple[Check, ...]:
        """The checks, with the suspect exact values right after ``whole_half_values``."""
        spikes = tuple(c for c in self.exact_values if c.verdict == SUSPECT)
        shown: list[Check] = []
        for item in self.checks:
            shown.append(item)
            if item.name == "whole_half_values":
                shown.extend(spikes)
        return tuple(shown)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, with the overall ``verdict``, the ``suspects`` and the ``rtp_note``,
        e.g. for JSON (``crashlog quality --json``)."""
        return {
            **attrs.asdict(self, recurse=True),
            "verdict": self.verdict,
            "suspects": list(self.suspects),
            "rtp_note": self.rtp_note,
        }

    @property
    def rtp_note(self) -> str:
        """Which RTP the expected figures assume, and why: ``r = 0.97 (the default: ...)``."""
        return rtp_note(self.rtp, self.rtp_source)


# -- the pure entry point -----------------------------------------------------------------


def check_quality(
    rows: Iterable[Any],
    *,
    rtp: float | None = None,
    significance: float = SIGNIFICANCE,
    rtp_source: RtpSourceKind | None = None,
    from_log: bool = False,
    law: Law | str | None = None,
    instant_bust_code: object = None,
    floor_to_cent: bool | None = None,
    **labels: Any,
) -> QualityReport:
    """Every data-quality check of ``rows``, one per game round, in the order they were played.

    A row is a mapping with ``multiplier`` (or ``crash_multiplier``) and any of
    ``game_round_id``, ``first_seen_at`` (or ``occurred_at``), ``observers``,
    ``disagreement``, ``dissenters`` (bots off the majority), ``ocr_confidence`` and
    ``quality_flags``, as ``crashlog.round_multipliers`` has them; or a bare multiplier
    (Decimal, str, int or float). Checks against the law use the values on the two-decimal
    grid at 1.00 or above. ``labels`` (game, platform, bot_id, since, until) are kept in
    the report.

    ``law``: a ``crashlog.law.Law`` or its name (r/x by default); ``rtp`` None: the named
    law's RTP (``rtp_source`` ``law``), else DEFAULT_RTP for r/x. ``instant_bust_code``: the
    number the source writes for a 1.00 bust (e.g. 0); ``floor_to_cent``: read off-grid floats
    rounded down (default: the law's ``floors``). A cell that is not a number, or empty, is
    counted by ``unparseable_values`` and the rest is checked.
    """
    family = law_named(law)
    if rtp is None:
        # Without a law, DEFAULT_RTP counts as given, as check_quality always said.
        rtp, source = (DEFAULT_RTP, "given") if law is None else (family.rtp, "law")
    else:
        source = "given"
    rtp = check_rtp(rtp)
    if not 0 < significance < 1:
        raise ValueError(f"invalid significance={significance!r}: must be in (0, 1), e.g. 0.01")
    floors = family.floors if floor_to_cent is None else floor_to_cent
    count, checks, exact_checks = run_checks(
        rows, rtp=rtp, significance=significance, from_log=from_log, law=family,
        instant_bust_code=code_of(instant_bust_code), floor_to_cent=floors,
    )
    return QualityReport(
        rounds=count,
        rtp=rtp,
        rtp_source=rtp_source or source,  # type: ignore[arg-type]
        significance=significance,
        law=family.with_rtp(rtp).describe(),
        checks=checks,
        exact_values=exact_checks,
        **labels,
    )


# -- over the read tables -----------------------------------------------------------------

_ROUNDS = """
SELECT m.multiplier, m.game_round_id, m.first_seen_at, m.observers, m.disagreement,
       m.ocr_confidence, m.quality_flags,
       (SELECT array_agg(DISTINCT r.bot_id) FROM crashlog.round_multiplier_readings r
        WHERE m.disagreement AND r.platform = m.platform AND r.game = m.game
          AND r.game_round_id = m.game_round_id AND r.multiplier <> m.multiplier) AS dissenters
FROM crashlog.round_multipliers m
WHERE m.game = $1 AND m.platform = $2
  AND ($3::timestamptz IS NULL OR m.first_seen_at >= $3)
  AND ($4::timestamptz IS NULL OR m.first_seen_at < $4)
ORDER BY m.first_seen_at, m.first_position
"""

# One bot's own readings: what its collector saw, checked against the law and the others.
_BOT_ROUNDS = """
SELECT r.multiplier, r.game_round_id, r.occurred_at AS first_seen_at, m.observers,
       m.disagreement, r.ocr_confidence, m.quality_flags,
       CASE WHEN r.multiplier <> m.multiplier THEN ARRAY[r.bot_id] END AS dissenters
FROM crashlog.round_multiplier_readings r
LEFT JOIN crashlog.round_multipliers m
  ON m.platform = r.platform AND m.game = r.game
 AND (m.game_round_id = r.game_round_id OR m.event_id = r.event_id)
WHERE r.game = $1 AND r.platform = $2 AND r.bot_id = $5
  AND ($3::timestamptz IS NULL OR r.occurred_at >= $3)
  AND ($4::timestamptz IS NULL OR r.occurred_at < $4)
ORDER BY r.occurred_at, r.position
"""


@borrows_from_pool
async def quality_report(
    conn: asyncpg.Connection,
    *,
    game: str,
    platform: str,
    bot_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    rtp: float | None = None,
    significance: float = SIGNIFICANCE,
    law: Law | str | None = None,
) -> QualityReport:
    """Every data-quality check of a game's rounds on a platform, from the read tables.

    ``conn``: a connection, or a pool to borrow one from.

    Reads ``crashlog.round_multipliers`` (one row per game round, merged over observers) or,
    with ``bot_id``, that bot's own readings; ``since`` (inclusive) and ``until`` (exclusive)
    bound the time the round was first seen. ``rtp`` None: the game's configured
    ``rtp_percent`` (crashlog.game_configs) if a bot reported one, else DEFAULT_RTP; the
    report says which (``rtp_source``); with ``law`` and no configured RTP, the law's.
    Call ``log.sync()`` first to include what was just emitted.
    """
    rtp, source = await resolve_rtp(conn, platform=platform, game=game, given=rtp)
    if law is not None and source == "default":
        rtp, source = law_named(law).rtp, "law"
    query = _BOT_ROUNDS if bot_id is not None else _ROUNDS
    args: tuple[Any, ...] = (game, platform, since, until) + ((bot_id,) if bot_id is not None else ())
    rows = await conn.fetch(query, *args)
    return check_quality(
        rows,
        rtp=rtp,
        significance=significance,
        rtp_source=source,
        from_log=True,
        law=law,
        game=game,
        platform=platform,
        bot_id=bot_id,
        since=since,
        until=until,
    )
