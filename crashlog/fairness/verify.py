"""``verify_chain``: the rounds crashlog recorded against the crash points a hash chain gives.

Given the hash of a late game, anyone can recompute every earlier game (``chains``);
``verify_chain`` compares them with ``crashlog.round_multipliers``: a mismatch is a misread
(OCR, scraper) or a platform problem.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import attrs

from crashlog.errors import CrashlogError
from crashlog.fairness.chains import SCHEMES, locate_in_chain, walk_chain


@attrs.frozen
class Mismatch:
    """A recorded round whose readings differ from the crash point the chain gives."""

    game_round_id: str
    computed: Decimal
    recorded: Decimal
    min_multiplier: Decimal
    max_multiplier: Decimal
    observers: int
    readings: int
    ocr_confidence: float | None
    quality_flags: tuple[str, ...]
    game_hash: str


@attrs.frozen
class ChainReport:
    """What ``verify_chain`` found: every mismatch, and counts to judge them by."""

    scheme: str
    platform: str
    game: str
    latest_game_id: int
    #: True: ``latest_hash`` was found on the scheme's committed chain (as game
    #: ``latest_game_id``); None: not checked (the game number was given).
    on_chain: bool | None
    walked: int  # games recomputed
    recorded: int  # of those, rounds crashlog has
    matched: int
    mismatches: tuple[Mismatch, ...]

    @property
    def missing(self) -> int:
        """Games of the walked chain that crashlog has no round for."""
        return self.walked - self.recorded


_RECORDED = """
SELECT game_round_id, multiplier, min_multiplier, max_multiplier, observers, readings,
       ocr_confidence, quality_flags
FROM crashlog.round_multipliers
WHERE platform = $1 AND game = $2 AND game_round_id = ANY($3::text[])
"""


async def verify_chain(
    conn: asyncpg.Connection,
    *,
    platform: str,
    game: str,
    scheme: str,
    latest_hash: str,
    game_id: int | None = None,
    rounds: int = 1000,
) -> ChainReport:
    """Compare the rounds in ``round_multipliers`` with the chain ending at ``latest_hash``.

    ``latest_hash`` is the hash of game ``game_id``: a round's ``game_round_id`` is taken to be
    the operator's game number in decimal (bustabit.com/game/12345678 is "12345678"). Without
    ``game_id``, the hash is located on the scheme's committed chain (``locate_in_chain``:
    seconds, and proof that the games were fixed in advance); a hash not on it raises
    ``CrashlogError``. A round is a mismatch when any of its readings differs from the
    computed crash point.
    """
    try:
        chosen = SCHEMES[scheme]
    except KeyError:
        raise ValueError(f"scheme={scheme!r}: unknown; known: {', '.join(SCHEMES)}") from None
    on_chain = None
    if game_id is None:
        game_id = await asyncio.to_thread(locate_in_chain, latest_hash, scheme=chosen)
        if game_id is None:
            raise CrashlogError(
                f"hash={latest_hash!r} is not on the chain {scheme} committed to (terminating "
                f"hash {chosen.terminating_hash}): another scheme or era, or not a game hash; "
                "give --game-id to check a chain of your own"
            )
        on_chain = True
    chain = {str(r.game_id): r for r in walk_chain(
        latest_hash, scheme=chosen, game_id=game_id, rounds=rounds)}
    rows = await conn.fetch(_RECORDED, platform, game, list(chain))
    mismatches = []
    for row in rows:
        computed = chain[row["game_round_id"]]
        if row["min_multiplier"] == computed.crash_point == row["max_multiplier"]:
            continue
        mismatches.append(Mismatch(
            game_round_id=row["game_round_id"],
            computed=computed.crash_point,
            recorded=row["multiplier"],
            min_multiplier=row["min_multiplier"],
            max_multiplier=row["max_multiplier"],
            observers=row["observers"],
            readings=row["readings"],
            ocr_confidence=row["ocr_confidence"],
            quality_flags=tuple(row["quality_flags"] or ()),
            game_hash=computed.game_hash,
        ))
    mismatches.sort(key=lambda m: -int(m.game_round_id))
    return ChainReport(
        scheme=scheme,
        platform=platform,
        game=game,
        latest_game_id=game_id,
        on_chain=on_chain,
        walked=len(chain),
        recorded=len(rows),
        matched=len(rows) - len(mismatches),
        mismatches=tuple(mismatches),
    )
