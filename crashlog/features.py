"""Leak-free features of a multiplier series, the label and its baseline: rows to train on.

``FeatureStream`` reads the rounds of ``crashlog.round_multipliers`` one at a time, in time
order, and returns each as a row of ``ml_columns(spec)``. It promises:

- **No leak.** A round's features come only from the *earlier* rounds of its own
  (platform, game): the state is read before the round is added to it, so the row of
  round ``i`` is the same whatever rounds come after it (the tests change later rounds and
  cut the series short to check this).
- **Streaming.** It holds, per (platform, game), the last ``max(lags, windows)`` rounds and
  a few counters; never the series.
- **Reproducible.** Everything is a function of the rounds and the spec. The randomized PIT
  draws its uniform from a keyed hash of (seed, platform, game, round key), so a round's
  ``pit`` is the same in every export with the same seed, however the export is filtered
  and however many rounds were added since.

Columns about the round itself (``instant_bust``, ``log_multiplier``, ``pit``, ``hit``) are
what a model predicts or is judged on, never inputs: they are the round's own outcome.
``baseline_hit_probability`` is ``P(X >= target) = rtp / target`` under the published law,
the hit rate every model of ``hit`` has to beat.

With ``exclude_flagged`` a round with quality flags gets no row, but it still enters the
history of the rounds after it: a model used live sees every round the collector reads,
flagged or not (a flag such as ``disagreement`` is only known once every observer has
reported), so the features of the kept rows are the ones it would have had.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import attrs

from crashlog.analytics.rtp import check_rtp
from crashlog.analytics.signal_scoring import chance_of_hit
from crashlog.law import CENT, DEFAULT_RTP, randomized_pit

#: Columns read from each source row (``crashlog.round_multipliers``; event_id as text).
SOURCE_COLUMNS: tuple[str, ...] = (
    "platform",
    "game",
    "game_round_id",
    "event_id",
    "round_number",
    "first_seen_at",
    "multiplier",
    "observers",
    "readings",
    "ocr_confidence",
    "quality_flags",
)

ONE = Decimal("1.00")
TWO = Decimal("2.00")
TEN = Decimal("10.00")
# Logs are summed as integers in units of 2**-52: a window's sum is exact, so its mean is a
# function of the window's rounds alone and no rounding drifts along a long series.
_LOG_SCALE = 2**52


def _count_in(name: str, limit: int) -> Any:
    def check(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise ValueError(f"invalid {name}={value!r}: must be an integer in 0..{limit}")

    return check


def _windows(value: Iterable[int] | str) -> tuple[int, ...]:
    """Window sizes as integers, or as text such as ``"10,50,100"`` (the command line's)."""
    try:
        windows = (
            tuple(int(w) for w in value.split(",")) if isinstance(value, str) else tuple(value)
        )
    except ValueError:
        windows = ()
    if not windows or any(
        isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 10_000 for w in windows
    ):
        raise ValueError(f"invalid windows={value!r}: must be one or more integers in 1..10000")
    return tuple(sorted(set(windows)))


def _target(value: Any) -> Decimal:
    target = Decimal(str(value))
    if not target.is_finite() or target <= 1:
        raise ValueError(f"invalid target={value!r}: a cash-out target must be above 1.00")
    return target


@attrs.frozen
class FeatureSpec:
    """What an ML export computes: ``lags`` previous multipliers, rolling figures over each
    of ``windows`` earlier rounds, the label ``hit = multiplier >= target`` with its baseline
    ``rtp / target``, and the PIT under ``rtp`` with uniforms drawn from ``seed``."""

    lags: int = attrs.field(default=5, validator=_count_in("lags", 1_000))
    windows: tuple[int, ...] = attrs.field(default=(10, 50, 100), converter=_windows)
    target: Decimal = attrs.field(default=TWO, converter=_target)
    rtp: float = attrs.field(default=DEFAULT_RTP, converter=check_rtp)
    seed: int = attrs.field(default=0, validator=_count_in("seed", 2**63 - 1))

    @property
    def depth(self) -> int:
        """How many earlier rounds of a series the features look back at most."""
        return max(self.lags, *self.windows)


def ml_columns(spec: FeatureSpec) -> tuple[tuple[str, str], ...]:
    """The (name, kind) of every column of an ML export, in order (kinds as in
    ``crashlog.exports``): the round's key and values, its label and outcome, its features."""
    columns: list[tuple[str, str]] = [
        ("platform", "text"),
        ("game", "text"),
        ("game_round_id", "text"),
        ("event_id", "uuid"),
        ("round_number", "int"),
        ("first_seen_at", "time"),
        ("multiplier", "decimal"),
        ("observers", "int32"),
        ("readings", "int32"),
        ("ocr_confidence", "float"),
        ("quality_flags", "texts"),
        ("hit", "bool"),
        ("baseline_hit_probability", "float"),
        ("instant_bust", "bool"),
        ("log_multiplier", "float"),
        ("pit", "float"),
        ("prior_rounds", "int"),
    ]
    columns += [(f"lag_{k}", "decimal") for k in range(1, spec.lags + 1)]
    for w in spec.windows:
        columns += [
            (f"mean_log_{w}", "float"),
            (f"instant_bust_share_{w}", "float"),
            (f"share_at_least_2_{w}", "float"),
        ]
    columns += [("rounds_since_instant_bust", "int"), ("rounds_since_10x", "int")]
    return tuple(columns)


# -- the round's own values -----------------------------------------------------------------


def log_multiplier(multiplier: Decimal) -> float | None:
    """``ln(multiplier)`` (0.0 for an instant bust); None if the value has no logarithm."""
    return math.log(float(multiplier)) if multiplier.is_finite() and multiplier > 0 else None


def pit_uniform(seed: int, platform: str, game: str, round_key: str) -> float:
    """The uniform in [0, 1) the PIT of a round uses: 53 bits of a BLAKE2b hash of
    (seed, platform, game, round key), so each round has its own, independent of the others
    and of which rounds an export holds."""
    message = "\x1f".join((str(seed), platform, game, round_key)).encode()
    digest = hashlib.blake2b(message, digest_size=8, person=b"crashlog-pit").digest()
    return (int.from_bytes(digest, "big") >> 11) / 2**53


def round_pit(multiplier: Decimal, v: float, rtp: float) -> float | None:
    """``randomized_pit`` of an on-grid multiplier; None off the two-decimal grid or below 1."""
    if not multiplier.is_finite() or multiplier < 1 or multiplier != multiplier.quantize(CENT):
        return None
    return randomized_pit(multiplier, v, rtp)


# -- the history of a series ----------------------------------------------------------------


class _Totals(NamedTuple):
    """A round of a series, with running totals over the series up to and including it."""

    multiplier: Decimal | None  # None: the start of the series, before any round
    log_units: int  # sum of ln(multiplier) in units of 2**-52
    no_log: int  # rounds without a logarithm
    instant_busts: int
    at_least_2: int


_START = _Totals(None, 0, 0, 0, 0)


class SeriesHistory:
    """What the features of the next round of one (platform, game) may use: its earlier
    rounds, the last ``spec.depth`` of them kept with running totals, so the sum over any
    window is a difference of two totals."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.lags = spec.lags
        self.windows = spec.windows
        self.recent: deque[_Totals] = deque([_START], maxlen=spec.depth + 1)
        self.seen = 0
        self.since_instant_bust: int | None = None
        self.since_10x: int | None = None

    def features(self) -> list[Any]:
        """The features of the next round, in ``ml_columns`` order from ``prior_rounds``."""
        recent, seen = self.recent, self.seen
        values: list[Any] = [seen]
        values += [recent[-k].multiplier if k <= seen else None for k in range(1, self.lags + 1)]
        last = recent[-1]
        for w in self.windows:
            if seen < w:  # a partial window would be a different statistic: none yet
                values += (None, None, None)
                continue
            before = recent[-1 - w]
            no_log = last.no_log - before.no_log
            values += (
                None if no_log else (last.log_units - before.log_units) / (w * _LOG_SCALE),
                (last.instant_busts - before.instant_busts) / w,
                (last.at_least_2 - before.at_least_2) / w,
            )
        values += (self.since_instant_bust, self.since_10x)
        return values

    def add(self, multiplier: Decimal, log: float | None) -> None:
        """Take the round just played (and its ``log_multiplier``) into the history."""
        last = self.recent[-1]
        instant_bust = multiplier == ONE
        self.recent.append(
            _Totals(
                multiplier,
                last.log_units + (0 if log is None else round(log * _LOG_SCALE)),
                last.no_log + (log is None),
                last.instant_busts + instant_bust,
                last.at_least_2 + (multiplier >= TWO),
            )
        )
        self.seen += 1
        # Rounds played since the last one of each kind (0: the round just before was one).
        since = self.since_instant_bust
        self.since_instant_bust = 0 if instant_bust else None if since is None else since + 1
        since = self.since_10x
        self.since_10x = 0 if multiplier >= TEN else None if since is None else since + 1


class FeatureStream:
    """Rows of ``crashlog.round_multipliers`` in time order in, ML rows out (see the module).

    Source rows are mappings (an ``asyncpg.Record`` or a dict) holding ``SOURCE_COLUMNS``;
    ``quality_flags`` may be missing or None (no flags) and ``event_id`` is text.
    """

    def __init__(self, spec: FeatureSpec | None = None, *, exclude_flagged: bool = False) -> None:
        self.spec = spec or FeatureSpec()
        self.exclude_flagged = exclude_flagged
        self.columns = ml_columns(self.spec)
        self.baseline = chance_of_hit(self.spec.target, self.spec.rtp)
        self._series: dict[tuple[str, str], SeriesHistory] = {}

    def row(self, source: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The ML row of the next round, or None when it is left out (flagged); either way
        the round then joins its series' history."""
        spec = self.spec
        platform, game = source["platform"], source["game"]
        history = self._series.get((platform, game))
        if history is None:
            history = self._series[(platform, game)] = SeriesHistory(spec)
        features = history.features()  # before the round is added: only earlier rounds
        multiplier = Decimal(source["multiplier"])
        log = log_multiplier(multiplier)
        history.add(multiplier, log)
        flags = list(source.get("quality_flags") or ())
        if self.exclude_flagged and flags:
            return None
        game_round_id, event_id = source["game_round_id"], source["event_id"]
        round_key = game_round_id if game_round_id is not None else f"event:{event_id}"
        v = pit_uniform(spec.seed, platform, game, round_key)
        return (
            platform,
            game,
            game_round_id,
            event_id,
            source["round_number"],
            source["first_seen_at"],
            multiplier,
            source["observers"],
            source["readings"],
            source.get("ocr_confidence"),
            flags,
            multiplier >= spec.target,
            self.baseline,
            multiplier == ONE,
            log,
            round_pit(multiplier, v, spec.rtp),
            *features,
        )

    def rows(self, sources: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Any, ...]]:
        """``row`` of each source in turn, leaving out the rows that are None."""
        for source in sources:
            made = self.row(source)
            if made is not None:
                yield made

    def batch(self, sources: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """``rows`` of one fetched chunk, as a list (what the export writers take)."""
        return list(self.rows(sources))
