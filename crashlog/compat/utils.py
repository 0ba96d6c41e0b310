"""The seed's analytics utilities (``backend.database.utils``), on the read tables.

Every function first waits until what was logged is committed and projected, so
``get_bot_statistics`` right after ``log_crash_round`` already counts that round.

- ``get_bot_statistics(bot_id)``: the seed's keys; money (``total_staked``,
  ``total_profit``, ``avg_profit_per_round``, ``max_drawdown``) as ``Decimal`` to the cent,
  rates in percent (floats).
- ``export_multipliers_for_ml(game_name, limit=None)``: the newest ``limit`` game rounds, in
  time order, as a list of dicts of JSON-native values (numbers, ISO 8601 text, lists), for
  ``json.dump``. The first version's form, a file name first (``export_multipliers_for_ml(
  "m.csv", game_name=...)``), still writes the file, with a ``DeprecationWarning``.
- ``export_rounds_to_json(output_file, bot_id=None)`` writes the rounds as a JSON array.
- ``get_database_size()``: bytes on disk, events and rounds held.
"""

from __future__ import annotations

import os
import warnings
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from crashlog.compat.connection import SYNC_TIMEOUT, current, synced
from crashlog.exports import EXTENSIONS, format_of

CENT = Decimal("0.01")


def _money(value: Decimal | float | None) -> Decimal:
    exact = value if isinstance(value, Decimal) else Decimal(repr(value or 0))
    return exact.quantize(CENT, rounding=ROUND_HALF_EVEN)


def _percent(fraction: float | None) -> float:
    return round(100 * fraction, 2) if fraction is not None else 0.0


def get_bot_statistics(bot_id: str, strategy_name: str | None = None) -> dict[str, Any]:
    """The bot's statistics with the seed's keys (money as ``Decimal`` to the cent, rates in
    percent). ``win_rate_percent`` and ``roi_percent`` count bets (WIN and LOSS; a SKIP
    places no bet); the ``*_interval`` keys and ``warning`` are new."""
    s = synced().bot_statistics(bot_id, strategy_name)
    ev = s.expected_value_interval
    return {
        "bot_id": bot_id,
        "total_rounds": s.rounds,
        "wins": s.wins,
        "losses": s.losses,
        "skips": s.skips,
        "win_rate_percent": _percent(s.win_rate),
        "win_rate_interval_percent": [_percent(s.win_rate_interval.low), _percent(s.win_rate_interval.high)],
        "total_staked": _money(s.total_staked),
        "total_profit": _money(s.total_profit),
        "roi_percent": _percent(s.roi),
        "avg_profit_per_round": _money(s.expected_value),
        "avg_profit_interval": None if ev is None else [round(ev.low, 2), round(ev.high, 2)],
        "max_drawdown": _money(s.max_drawdown),
        "longest_losing_streak": s.longest_losing_streak,
        "expected_longest_losing_streak": s.expected_longest_losing_streak,
        "warning": s.warning,
    }


# The newest $3 rounds (all with NULL) of a game and platform, then put back in time order.
_NEWEST_MULTIPLIERS = """
SELECT * FROM (
    SELECT platform, game, game_round_id, round_number, multiplier, observers, disagreement,
           quality_flags, first_seen_at, first_position
    FROM crashlog.round_multipliers
    WHERE ($1::text IS NULL OR game = $1) AND ($2::text IS NULL OR platform = $2)
    ORDER BY first_seen_at DESC, first_position DESC
    LIMIT $3
) newest
ORDER BY first_seen_at, first_position
"""


def _is_file(target: Any) -> bool:
    """Whether the first argument is the first version's output file rather than a game."""
    if isinstance(target, os.PathLike):
        return True
    return isinstance(target, str) and (
        "/" in target or os.sep in target or Path(target).suffix.lower().lstrip(".") in EXTENSIONS
    )


def export_multipliers_for_ml(
    target: Any = None,
    /,
    limit: Any = None,
    platform_code: str | None = None,
    *,
    game_name: str | None = None,
    output_file: str | Path | None = None,
) -> Any:
    """The newest ``limit`` rounds of ``game_name`` (all with None), in time order: a list of
    dicts (``round_id``, ``multiplier``, ``timestamp``, ``platform``, ``game``,
    ``round_number``, ``observers``, ``disagreement``, ``quality_flags``) of JSON-native values.

    Deprecated form: a file name first (or ``output_file=``), as the first version took
    (``export_multipliers_for_ml(output_file, game_name, platform_code)``), writes that file
    (format from its extension) and returns the row count.
    """
    if output_file is not None or _is_file(target):
        # The first version's positional order: (output_file, game_name, platform_code).
        path = output_file if output_file is not None else target
        game = game_name if game_name is not None else (target if output_file is not None else limit)
        return _write_multipliers(path, game, platform_code)
    game = game_name if game_name is not None else target
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"invalid limit={limit!r}: a whole number of rounds, 0 or more (None: all)")
    logger = synced()
    rows = logger.run(logger.pool.fetch(_NEWEST_MULTIPLIERS, game, platform_code, limit))
    return [_json_row(row) for row in rows]


def _json_row(row: Any) -> dict[str, Any]:
    return {
        "round_id": row["game_round_id"],
        "multiplier": float(row["multiplier"]),
        "timestamp": row["first_seen_at"].isoformat(),
        "platform": row["platform"],
        "game": row["game"],
        "round_number": row["round_number"],
        "observers": row["observers"],
        "disagreement": row["disagreement"],
        "quality_flags": list(row["quality_flags"]),
    }


def _write_multipliers(path: Any, game: str | None, platform: str | None) -> int:
    warnings.warn(
        "export_multipliers_for_ml(output_file, ...) is deprecated: "
        "export_multipliers_for_ml(game_name, limit=None) returns the rows (json.dump them), "
        "and crashlog.reader().export_multipliers(output_file) writes a file",
        DeprecationWarning,
        stacklevel=3,
    )
    logger = synced()
    return logger.export_multipliers(path, format_of(path, "csv"), game=game, platform=platform)


def export_rounds_to_json(output_file: str | Path = "rounds.json", bot_id: str | None = None) -> int:
    """Write the settled rounds (of one bot if given) as a JSON array, in time order (JSON
    lines if the name ends in .jsonl). Returns the row count."""
    return synced().export_rounds(output_file, format_of(output_file, "json"), bot_id=bot_id)


_SIZE = """
SELECT pg_database_size(current_database()) AS size_bytes,
       (SELECT count(*) FROM crashlog.events) AS total_events,
       (SELECT count(*) FROM crashlog.rounds) AS total_rounds
"""


def get_database_size() -> dict[str, Any]:
    """The database's size on disk and how many events and rounds it holds."""
    logger = current()
    logger.flush(SYNC_TIMEOUT)
    row = logger.run(logger.pool.fetchrow(_SIZE))
    return {
        "size_bytes": row["size_bytes"],
        "size_mb": round(row["size_bytes"] / 1_048_576, 2),
        "total_events": row["total_events"],
        "total_rounds": row["total_rounds"],
    }


__all__ = ["export_multipliers_for_ml", "export_rounds_to_json", "get_bot_statistics", "get_database_size"]
