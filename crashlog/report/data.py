"""What the report shows, read through a read-only ``AsyncReader`` (``crashlog.reading``).

``gather(reader, filters)`` reads, each in one pass over a server-side cursor:

- ``rounds`` (filtered by bot, game, platform, time): per bot, ``analytics.summarize`` (the
  same statistics as ``crashlog stats``) and its cumulative profit, round by round;
- ``round_multipliers`` (game, platform, time; it merges every bot's readings, so the bot
  filter does not apply): per game and platform the values for ``analytics.fit`` against the
  game's law, the survival curve, and the ``quality_flags`` per day (or hour);
- the quality report's verdict per game and platform, the signal report;
- the projections' lag (old names too: ``progress.lag_listing``) and the log's size (the
  whole log: filters do not apply).

Nothing here writes; everything is a plain value the renderer (``report.html``) draws.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from contextlib import aclosing
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from crashlog import analytics
from crashlog.analytics.rtp import resolve_rtp
from crashlog.law import LAWS, R_OVER_X, Law
from crashlog.projections import progress
from crashlog.quality_flags import LOW_OCR_CONFIDENCE
from crashlog.streaming import stream_chunks

if TYPE_CHECKING:
    from crashlog.reading import AsyncReader

#: The flags ``round_multipliers`` sets (sql/005), in the order the chart lists them.
FLAGS = ("off_grid", "disagreement", "low_ocr_confidence")
_ROUND_COLUMNS = ["bot_id", "strategy_name", "outcome", "stake", "profit_loss",
                  "target_multiplier", "cashout_multiplier", "occurred_at"]
_MULTIPLIER_COLUMNS = ["game", "platform", "multiplier", "first_seen_at", "quality_flags"]

# The log's size: rows, bytes with indexes, rejected rows; and its growth: events committed in
# each of 60 equal stretches of time between the first commit and the last, whatever the span.
_LOG_SIZE = """
SELECT (SELECT count(*) FROM crashlog.events) AS events,
       pg_total_relation_size('crashlog.events') AS bytes,
       (SELECT count(*) FROM crashlog.rejected_events) AS rejected
"""
_LOG_GROWTH = """
WITH span AS (SELECT extract(epoch FROM min(recorded_at)) AS lo,
                     extract(epoch FROM max(recorded_at)) + 0.001 AS hi FROM crashlog.events)
SELECT max(e.recorded_at) AS until, count(*) AS events
FROM crashlog.events e, span
GROUP BY width_bucket(extract(epoch FROM e.recorded_at), span.lo, span.hi, 60)
ORDER BY 1
"""


@attrs.frozen
class Filters:
    """What the report is about; None: everything."""

    bot: str | None = None
    game: str | None = None
    platform: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def any(self) -> bool:
        return any(v is not None for v in attrs.astuple(self))

    def describe(self) -> str:
        """``--bot b1 --since 2026-12-01T00:00:00+00:00``: the filters as given."""
        given = [(k, v) for k, v in attrs.asdict(self).items() if v is not None]
        return " ".join(f"--{k} {v.isoformat() if isinstance(v, datetime) else v}" for k, v in given)


@attrs.frozen
class BotReport:
    """One bot: its statistics and its cumulative profit after each of its rounds."""

    bot_id: str
    strategy: str
    statistics: analytics.Statistics
    curve: list[tuple[float, float]]  # (round number, cumulative profit)
    drawdown: tuple[int, int] | None  # round numbers of the worst drawdown's peak and trough


@attrs.frozen
class GameReport:
    """One game on one platform: the law it is held to, the fit, the values, the flags."""

    game: str
    platform: str
    law: Law
    rtp_source: str
    fit: analytics.FitReport
    values: list[float]  # sorted ascending
    quality_verdict: str
    quality_suspects: tuple[str, ...]


@attrs.frozen
class ReportData:
    """Everything the page shows (see the module)."""

    filters: Filters
    made_at: datetime
    bots: list[BotReport]
    games: list[GameReport]
    flags: dict[datetime, Counter[str]]  # bucket start -> counts of each flag and "rounds"
    flag_bucket: str  # "day" or "hour"
    signals: analytics.SignalReport | None
    lag: dict[str, tuple[int, float]]  # label ("round_outcomes (part of rounds)" for an old name) -> lag
    log_events: int
    log_bytes: int
    rejected: int
    log_growth: list[tuple[datetime, int]]  # (last commit in a stretch, events in it)

    @classmethod
    def nothing(cls, filters: Filters) -> ReportData:
        """The report of a database where nothing was ever recorded."""
        return cls(filters=filters, made_at=datetime.now(UTC), bots=[], games=[], flags={}, flag_bucket="day",
                   signals=None, lag={}, log_events=0, log_bytes=0, rejected=0, log_growth=[])

    @property
    def empty(self) -> bool:
        """Nothing recorded at all: no event in the log."""
        return self.log_events == 0

    @property
    def matched(self) -> bool:
        """The filters matched some rounds, signals or (without ``--bot``, which the merged
        multipliers cannot honour) multipliers."""
        signals = bool(self.signals and (self.signals.signals or self.signals.unresolved))
        return bool(self.bots or signals or (self.games and self.filters.bot is None))


def law_of(game: str, platform: str) -> Law:
    """The game's own law when ``crashlog.law.LAWS`` names it (by game, else platform), else r/x."""
    return LAWS.get(game.lower()) or LAWS.get(platform.lower()) or R_OVER_X


async def gather(reader: AsyncReader, filters: Filters) -> ReportData:
    """Read everything the report shows (see the module)."""
    async with reader.pool.acquire() as conn:
        size = await conn.fetchrow(_LOG_SIZE)
        growth = [(r["until"], int(r["events"])) for r in await conn.fetch(_LOG_GROWTH)]
        lag = {row.label: (row.events_behind, row.oldest_waiting_seconds or 0.0)
               for row in await progress.lag_listing(conn) if row.events_behind is not None}
    bots = await _bots(reader, filters)
    games, flags, bucket = await _games(reader, filters)
    signals = await reader.signals(game=filters.game, platform=filters.platform, bot_id=filters.bot,
                                   since=filters.since, until=filters.until)
    return ReportData(
        filters=filters, made_at=datetime.now(UTC), bots=bots, games=games, flags=flags,
        flag_bucket=bucket, signals=signals if signals.signals or signals.unresolved else None,
        lag=lag, log_events=int(size["events"]), log_bytes=int(size["bytes"]),
        rejected=int(size["rejected"]), log_growth=growth,
    )


async def _rows(reader: AsyncReader, table: str, columns: list[str], filters: Filters,
                **where: Any) -> Any:
    """The rows of ``table`` in its time order, filtered (async iterator of records)."""
    wanted = {k: v for k, v in where.items() if v is not None}
    query = await reader.plan(table, filters.since, filters.until, columns, "decimal", wanted)
    async with reader.pool.acquire() as conn, aclosing(
        stream_chunks(conn, query.select(), query.args)
    ) as chunks:
        async for chunk in chunks:
            for row in chunk:
                yield row


async def _bots(reader: AsyncReader, filters: Filters) -> list[BotReport]:
    by_bot: dict[str, list[Any]] = defaultdict(list)
    async for row in _rows(reader, "rounds", _ROUND_COLUMNS, filters,
                           bot_id=filters.bot, game=filters.game, platform=filters.platform):
        by_bot[row["bot_id"]].append(row)
    return [_bot(bot_id, rows) for bot_id, rows in sorted(by_bot.items())]


def _bot(bot_id: str, rows: list[Any]) -> BotReport:
    strategies = Counter(r["strategy_name"] or "" for r in rows)
    profit, peak, worst = Decimal(0), (0, Decimal(0)), (0, 0, Decimal(0))
    curve: list[tuple[float, float]] = [(0.0, 0.0)]
    for i, row in enumerate(rows, start=1):
        profit += row["profit_loss"]
        curve.append((float(i), float(profit)))
        if profit > peak[1]:
            peak = (i, profit)
        if peak[1] - profit > worst[2]:
            worst = (peak[0], i, peak[1] - profit)
    return BotReport(
        bot_id=bot_id, strategy=strategies.most_common(1)[0][0],
        statistics=analytics.summarize(rows, bot_id=bot_id), curve=curve,
        drawdown=(worst[0], worst[1]) if worst[2] > 0 else None,
    )


async def _games(reader: AsyncReader, filters: Filters) -> tuple[list[GameReport], dict[datetime, Counter[str]], str]:
    values: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    seen: list[tuple[datetime, tuple[str, ...]]] = []
    async for row in _rows(reader, "round_multipliers", _MULTIPLIER_COLUMNS, filters,
                           game=filters.game, platform=filters.platform):
        values[(row["game"], row["platform"])].append(row["multiplier"])
        seen.append((row["first_seen_at"], tuple(row["quality_flags"] or ())))
    games = [await _game(reader, game, platform, found, filters)
             for (game, platform), found in sorted(values.items())]
    flags, bucket = _flag_counts(seen)
    return games, flags, bucket


async def _game(reader: AsyncReader, game: str, platform: str, found: list[Decimal],
                filters: Filters) -> GameReport:
    law = law_of(game, platform)
    async with reader.pool.acquire() as conn:
        rtp, source = await resolve_rtp(conn, platform=platform, game=game, given=None)
    if source == "default" and law is not R_OVER_X:
        rtp, source = law.rtp, "law"
    law = law.with_rtp(rtp)
    quality = await reader.quality(game, platform, since=filters.since, until=filters.until, law=law)
    return GameReport(
        game=game, platform=platform, law=law, rtp_source=source,
        fit=analytics.fit(found, rtp, law=law), values=sorted(float(v) for v in found),
        quality_verdict=str(quality.verdict), quality_suspects=quality.suspects,
    )


def _flag_counts(seen: list[tuple[datetime, tuple[str, ...]]]) -> tuple[dict[datetime, Counter[str]], str]:
    """Rounds and flags per day, or per hour when the rounds span less than three days."""
    if not seen:
        return {}, "day"
    span = max(t for t, _ in seen) - min(t for t, _ in seen)
    bucket = "hour" if span.total_seconds() < 3 * 86400 else "day"
    counts: dict[datetime, Counter[str]] = defaultdict(Counter)
    for moment, flags in seen:
        start = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if bucket == "day":
            start = start.replace(hour=0)
        counts[start]["rounds"] += 1
        counts[start].update(set(flags))
        if flags:
            counts[start]["any"] += 1
    return dict(sorted(counts.items())), bucket


__all__ = ["FLAGS", "LOW_OCR_CONFIDENCE", "BotReport", "Filters", "GameReport", "ReportData", "gather", "law_of"]
