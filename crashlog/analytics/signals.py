"""Signals scored against what happened: is a signal type better than chance?

Under the law of crash games a prediction "this round reaches ``c``" comes true with
probability ``P(X >= c) = r / c`` (for ``c`` on the two-decimal grid; ``r`` the RTP)
whatever the signal knows, unless it knows something. So each signal type is scored
against that baseline, not against 50%:

- its hit rate with a Wilson interval, beside the baseline: the mean of ``r / c_i`` over
  its signals (a type may predict different targets);
- a two-sided test of its hits against the Poisson-binomial law of independent signals
  with chances ``r / c_i``, by the normal approximation ``z = (H - sum p_i) /
  sqrt(sum p_i (1 - p_i))``. With one target this is the score test the Wilson interval
  inverts (Wilson 1927), so "the interval excludes the baseline" and "p < 1 - confidence"
  say the same thing;
- Benjamini–Hochberg (1995) across signal types at false discovery rate ``q``: a type is
  called better or worse than chance only when its interval excludes the baseline *and*
  its test survives BH; otherwise it shows no evidence of skill;
- the Brier score of ``confidence_score`` as a forecast of a hit (Brier 1950), against the
  Brier score of forecasting the law's ``r / c_i`` for every signal (the skill score
  ``1 - BS / BS_ref``: above 0 the confidences beat chance, below 0 they do worse), and
  a reliability table (Murphy & Winkler 1977): per confidence bin, the mean forecast, the
  observed hit rate and the count;
- optionally a time-ordered holdout: only the last ``holdout`` fraction of the signals
  (by ``occurred_at``) is scored, so a type tuned on earlier data is judged on later data.

``score_signals`` is the pure function over plain rows; ``signal_report`` reads
``crashlog.round_signals`` (resolved signals only; it says how many wait for their round).
The tallies, tests and verdicts per type are in ``analytics.signal_scoring``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from contextlib import aclosing
from datetime import datetime
from typing import Any

import asyncpg
import attrs

from crashlog.analytics.connections import borrows_from_pool
from crashlog.analytics.inference import CONFIDENCE
from crashlog.analytics.rtp import RtpSourceKind, check_rtp, choose_rtp, rtp_note
from crashlog.analytics.signal_scoring import (
    BETTER,
    NO_EVIDENCE,
    WORSE,
    ReliabilityBin,
    Scorer,
    SignalTypeScore,
    chance_of_hit,
    is_scored,
)
from crashlog.law import DEFAULT_RTP
from crashlog.streaming import CHUNK, snapshot, stream_rows

__all__ = [
    "BETTER",
    "FDR",
    "NO_EVIDENCE",
    "RELIABILITY_BINS",
    "WORSE",
    "ReliabilityBin",
    "RtpSource",
    "SignalReport",
    "SignalTypeScore",
    "chance_of_hit",
    "holdout_split",
    "report_notes",
    "score_signals",
    "signal_report",
]

#: The false discovery rate of the Benjamini–Hochberg step across signal types.
FDR = 0.05
#: Confidence bins of the reliability table: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0].
RELIABILITY_BINS = 10


# -- the pieces (the scoring itself is in analytics.signal_scoring) ---------------------------


def holdout_split(count: int, holdout: float | None) -> int:
    """How many of ``count`` time-ordered signals are the 'train' part left unscored."""
    if holdout is None:
        return 0
    if not 0 < holdout < 1:
        raise ValueError(f"invalid holdout={holdout!r}: must be a fraction in (0, 1), e.g. 0.3")
    return math.floor(count * (1 - holdout) + 1e-9)  # 1000 * (1 - 0.3) is 699.999...


# -- the report ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RtpSource:
    """The RTP used for one game's signals, and where it came from."""

    platform: str | None
    game: str | None
    rtp: float
    source: RtpSourceKind


@attrs.frozen(kw_only=True)
class SignalReport:
    """What ``score_signals`` and ``signal_report`` return."""

    types: tuple[SignalTypeScore, ...]
    signals: int  # scored: resolved, with a predicted multiplier (test part with a holdout)
    unresolved: int  # their round is not known yet
    unscored: int  # resolved but without a predicted multiplier
    holdout: float | None
    train: int  # earlier signals left out by the holdout
    scored_from: datetime | None
    scored_to: datetime | None
    rtp: float | None  # None when the games' RTPs differ (see rtp_sources)
    rtp_source: str
    rtp_sources: tuple[RtpSource, ...]
    q: float
    confidence: float

    def type(self, signal_type: str) -> SignalTypeScore:
        """The score of ``signal_type``; KeyError naming it when there is none."""
        for score in self.types:
            if score.signal_type == signal_type:
                return score
        raise KeyError(f"no signal_type={signal_type!r} in this report")

    def as_dict(self) -> dict[str, Any]:
        """Plain values (intervals as ``[low, high]``), e.g. for JSON."""
        return _plain(attrs.asdict(self, recurse=True))


def report_notes(report: SignalReport) -> list[str]:
    """Plain sentences saying what a report rests on: counts, the RTP, the holdout, the test."""
    notes = []
    window = ""
    if report.scored_from is not None and report.scored_to is not None:
        window = f" from {report.scored_from:%Y-%m-%d %H:%M} to {report.scored_to:%Y-%m-%d %H:%M}"
    notes.append(
        f"{report.signals:,} signals scored{window}; {report.unresolved:,} wait for their round "
        f"(unresolved); {report.unscored:,} have no predicted multiplier."
    )
    if report.holdout is not None:
        notes.append(
            f"Holdout: only the last {report.holdout:.0%} of the signals in time are scored; "
            f"the {report.train:,} earlier ones are the train part."
        )
    for source in report.rtp_sources:
        where = "" if source.game is None else f" for {source.platform}/{source.game}"
        notes.append(f"RTP{where}: {rtp_note(source.rtp, source.source)}; the baseline is r / target.")
    notes.append(
        f"A type is better or worse than chance only when its {report.confidence:.0%} interval "
        f"excludes the baseline and it survives Benjamini-Hochberg at q={report.q:g}."
    )
    return notes


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"low", "high"}:
            return [value["low"], value["high"]]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- scoring ------------------------------------------------------------------------------


def _check(q: float, confidence: float) -> None:
    if not 0 < q < 1:
        raise ValueError(f"invalid q={q!r}: must be in (0, 1), e.g. 0.05")
    if not 0 < confidence < 1:
        raise ValueError(f"invalid confidence={confidence!r}: must be in (0, 1), e.g. 0.95")


def score_signals(
    rows: Iterable[Mapping[str, Any]],
    *,
    rtp: float = DEFAULT_RTP,
    holdout: float | None = None,
    q: float = FDR,
    confidence: float = CONFIDENCE,
    bins: int = RELIABILITY_BINS,
    unresolved: int = 0,
) -> SignalReport:
    """Score resolved signals, given as mappings (dicts or records) with the keys
    ``signal_type``, ``predicted_multiplier``, ``confidence_score`` (or None), ``hit`` and
    ``occurred_at``; an optional ``rtp`` key overrides ``rtp`` for that row.

    A row without a predicted multiplier or a hit is counted as unscored. With
    ``holdout``, the rows are put in ``occurred_at`` order (stable) and only the last
    ``holdout`` fraction is scored. ``unresolved`` is passed through to the report.
    """
    _check(q, confidence)
    ordered = list(rows)
    train = 0
    if holdout is not None:
        unscored = [r for r in ordered if not is_scored(r)]
        scored = [r for r in ordered if is_scored(r)]
        train = holdout_split(len(scored), holdout)
        scored.sort(key=lambda r: r["occurred_at"])
        ordered = unscored + scored[train:]
    scorer = Scorer(rtp=rtp, bins=bins)
    for row in ordered:
        scorer.add(row)
    source = RtpSource(platform=None, game=None, rtp=rtp, source="given")
    return _report(
        scorer,
        q=q,
        confidence=confidence,
        holdout=holdout,
        train=train,
        unresolved=unresolved,
        sources=(source,),
    )


def _report(
    scorer: Scorer,
    *,
    q: float,
    confidence: float,
    holdout: float | None,
    train: int,
    unresolved: int,
    sources: tuple[RtpSource, ...],
) -> SignalReport:
    types = tuple(scorer.finish(q=q, confidence=confidence))
    rtps = {s.rtp for s in sources}
    kinds = sorted({s.source for s in sources})
    return SignalReport(
        types=types,
        signals=sum(t.n for t in types),
        unresolved=unresolved,
        unscored=scorer.unscored,
        holdout=holdout,
        train=train,
        scored_from=scorer.first,
        scored_to=scorer.last,
        rtp=rtps.pop() if len(rtps) == 1 else None,
        rtp_source=kinds[0] if len(kinds) == 1 else "mixed",
        rtp_sources=sources,
        q=q,
        confidence=confidence,
    )


# -- reading crashlog.round_signals -------------------------------------------------------

_FILTER = """
    ($1::text IS NULL OR s.game = $1) AND ($2::text IS NULL OR s.platform = $2)
    AND ($3::text IS NULL OR s.bot_id = $3)
    AND ($4::timestamptz IS NULL OR s.occurred_at >= $4)
    AND ($5::timestamptz IS NULL OR s.occurred_at < $5)
"""

# One row per game: its configured RTP (if any) and how many signals are in each state.
_GAMES = f"""
SELECT s.platform, s.game, g.rtp_percent,
       count(*) FILTER (WHERE s.hit IS NOT NULL) AS scored,
       count(*) FILTER (WHERE s.resolved AND s.hit IS NULL) AS unscored,
       count(*) FILTER (WHERE NOT s.resolved) AS unresolved
FROM crashlog.round_signals s
LEFT JOIN crashlog.game_configs g ON g.platform = s.platform AND g.game = s.game
WHERE {_FILTER}
GROUP BY s.platform, s.game, g.rtp_percent
ORDER BY s.platform, s.game
"""

# hit is set exactly when the round is known and the signal predicted a multiplier.
_SIGNALS = f"""
SELECT s.signal_type, s.predicted_multiplier, s.confidence_score, s.hit, s.occurred_at,
       s.platform, s.game
FROM crashlog.round_signals s
WHERE s.hit IS NOT NULL AND {_FILTER}
ORDER BY s.occurred_at, s.position
"""

#: Rows fetched per round trip when streaming signals.
PREFETCH = CHUNK


def _rtp_sources(games: Sequence[Mapping[str, Any]], rtp: float | None) -> tuple[RtpSource, ...]:
    sources = []
    for game in games:
        value, source = choose_rtp(rtp, game["rtp_percent"])
        sources.append(
            RtpSource(platform=game["platform"], game=game["game"], rtp=value, source=source)
        )
    if not sources:
        value, source = choose_rtp(rtp, None)
        sources.append(RtpSource(platform=None, game=None, rtp=value, source=source))
    return tuple(sources)


@borrows_from_pool
async def signal_report(
    conn: asyncpg.Connection,
    *,
    game: str | None = None,
    platform: str | None = None,
    bot_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    rtp: float | None = None,
    holdout: float | None = None,
    q: float = FDR,
    confidence: float = CONFIDENCE,
) -> SignalReport:
    """Score the signals in ``crashlog.round_signals`` per signal type (see the module).

    ``conn``: a connection, or a pool to borrow one from.

    Filters: ``game``, ``platform``, ``bot_id``, and the signal's ``occurred_at`` in
    ``[since, until)``. Only resolved signals with a predicted multiplier are scored; the
    report counts the ones still waiting for their round (``unresolved``) and the ones
    without a predicted multiplier (``unscored``). ``rtp``: given, else each game's
    configured ``rtp_percent`` from ``crashlog.game_configs``, else ``DEFAULT_RTP``; the
    report says which (``rtp_sources``). Call ``log.sync()`` first to include what was
    just emitted. Reads in one repeatable-read snapshot, so the counts agree.
    """
    _check(q, confidence)
    if rtp is not None:
        check_rtp(rtp)
    holdout_split(0, holdout)  # refuse a bad fraction before reading anything
    args = (game, platform, bot_id, since, until)
    async with snapshot(conn):  # the counts and the signals from one state of the tables
        return await _read(conn, args, rtp=rtp, holdout=holdout, q=q, confidence=confidence)


async def _read(
    conn: asyncpg.Connection,
    args: tuple[Any, ...],
    *,
    rtp: float | None,
    holdout: float | None,
    q: float,
    confidence: float,
) -> SignalReport:
    games = await conn.fetch(_GAMES, *args)
    sources = _rtp_sources(games, rtp)
    by_game = {(s.platform, s.game): s.rtp for s in sources if s.platform is not None}
    scored = sum(g["scored"] for g in games)
    train = holdout_split(scored, holdout)
    scorer = Scorer(rtp=DEFAULT_RTP if rtp is None else rtp, bins=RELIABILITY_BINS)
    seen = 0
    async with aclosing(stream_rows(conn, _SIGNALS, args, chunk=PREFETCH)) as rows:
        async for row in rows:
            seen += 1
            if seen > train:  # time order: the first `train` signals are the train part
                scorer.add({**row, "rtp": by_game[(row["platform"], row["game"])]})
    scorer.unscored = sum(g["unscored"] for g in games)
    return _report(
        scorer,
        q=q,
        confidence=confidence,
        holdout=holdout,
        train=train,
        unresolved=sum(g["unresolved"] for g in games),
        sources=sources,
    )
