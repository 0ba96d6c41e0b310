"""Prometheus metrics of a logger and of the projection runners (the ``metrics`` extra).

``register(log, registry=None, labels=None)`` exposes a logger's counters on ``registry``
(None: prometheus_client's default ``REGISTRY``), and those of its in-process projections
with ``connect(project=True)``; ``register_runners(runners, ...)`` the projections' lag and
counters of ``crashlog project --follow``. Nothing is registered
unless asked.

Promises:
- Values are read from ``log.metrics()`` (and the runners' own counters) at scrape time:
  no thread, no timer, no cost between scrapes; a closed logger simply reports nothing.
- Several loggers (and runner groups) share one registry: each brings constant ``labels``
  (e.g. ``{"bot": "b1"}``) and one collector per registry yields a sample per source, so
  names never collide; the same labels twice on one registry are refused (``ValueError``).
- Names follow Prometheus conventions (``_total`` counters, seconds, bytes) and are the
  ones listed in DESIGN "Operating" (the Grafana dashboard is built on them): see
  ``LOGGER_COUNTERS``, ``LOGGER_GAUGES``, ``crashlog_flush_seconds`` (histogram) and
  ``crashlog_projection_*`` / ``crashlog_runner_state``.
- A runner reports the lag only of the projections it applies (holds the lease of),
  refreshed on its own connection in the background (``runner.LAG_REFRESH``), so a scrape
  never queries the database.
- A projection's old names (``crashlog.projections.ALIASES``: ``round_outcomes`` is part of
  ``rounds``) keep their series: each ``crashlog_projection_*`` sample of a projection is
  repeated with ``projection="<old name>"`` and ``alias_of="<projection>"``, the same value,
  so an alert or a panel on the old label keeps working (sum over ``alias_of=""`` to count
  each projection once).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crashlog.errors import CrashlogError, MissingExtra
from crashlog.projections import aliases_of

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.metrics_core import Metric
    from prometheus_client.utils import floatToGoString
except ImportError as missing:  # pragma: no cover - depends on the environment
    raise MissingExtra(
        "crashlog.metrics needs prometheus_client: pip install 'crashlog[metrics]'"
    ) from missing

if TYPE_CHECKING:
    from crashlog.logger import Logger
    from crashlog.projections.runner import Runner

#: Logger counters: metric name (without ``_total``), ``Metrics`` field, help text.
LOGGER_COUNTERS = (
    ("crashlog_events_emitted", "emitted", "Events accepted by emit."),
    ("crashlog_events_committed", "committed", "Events committed to the log."),
    ("crashlog_events_duplicate", "duplicates", "Events already stored (an idempotent retry)."),
    ("crashlog_events_rejected", "rejected", "Events the server refused, kept in rejected_events."),
    ("crashlog_events_spooled", "spooled", "Events written to the local spool."),
    ("crashlog_batches_retried", "retried", "Batch attempts retried after a transient failure."),
    ("crashlog_batches_refused", "refused_batches", "Batches the server refused whole (kept, retried)."),
    ("crashlog_batches", "batches", "Batches finished (committed or spooled)."),
    ("crashlog_spool_errors", "spool_errors", "Spool writes that failed (disk error or cap); kept."),
    ("crashlog_writer_restarts", "writer_restarts", "Writer lanes restarted after ending unexpectedly."),
)
#: Logger gauges: metric name, a function of ``Metrics``, help text.
LOGGER_GAUGES: tuple[tuple[str, Callable[[Any], float], str], ...] = (
    ("crashlog_buffer_events", lambda m: m.buffered + m.in_flight,
     "Events held in memory (buffered and in flight); emit waits or raises at buffer_size."),
    ("crashlog_in_flight_events", lambda m: m.in_flight, "Events in batches being written."),
    ("crashlog_spool_bytes", lambda m: m.spool_bytes, "Bytes in the spool not yet replayed."),
)
#: Runner counters per projection: metric name (without ``_total``), counter key, help text.
PROJECTION_COUNTERS = (
    ("crashlog_projection_errors", "failed_attempts",
     "Failed attempts to apply a batch (retried with back-off)."),
    ("crashlog_projection_skipped_events", "skipped_events",
     "Unreadable events skipped (recorded in crashlog.projection_errors)."),
    ("crashlog_projection_batches_applied", "batches_applied", "Batches applied."),
)
RUNNER_STATES = ("applying", "standby", "reconnecting", "stopped")

Labels = Mapping[str, str]
_lock = threading.Lock()
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, _Collector] = weakref.WeakKeyDictionary()


def register(log: Logger, registry: CollectorRegistry | None = None,
             labels: Labels | None = None) -> Callable[[], None]:
    """Expose ``log``'s counters on ``registry`` with constant ``labels``; returns a function
    that takes them off again."""
    return _collector(registry).add(("logger", _labels(labels)), lambda key: _logger_metrics(log, key))


def register_runners(runners: Sequence[Runner], registry: CollectorRegistry | None = None,
                     labels: Labels | None = None) -> Callable[[], None]:
    """Expose the projection runners' lag, counters and states on ``registry``."""
    runners = list(runners)
    return _collector(registry).add(("runners", _labels(labels)), lambda key: _runner_metrics(runners, key))


def _labels(labels: Labels | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items()))


def _collector(registry: CollectorRegistry | None) -> _Collector:
    registry = REGISTRY if registry is None else registry
    with _lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = _Collector()
            registry.register(collector)
        return collector


Samples = Iterable[tuple[str, str, str, str, dict[str, str], float]]  # family, type, help, sample, labels, value
Key = tuple[str, tuple[tuple[str, str], ...]]


class _Collector:
    """Every source registered on one registry; builds the families at scrape time."""

    def __init__(self) -> None:
        self._sources: dict[Key, Callable[[Key], Samples]] = {}

    def add(self, key: Key, source: Callable[[Key], Samples]) -> Callable[[], None]:
        with _lock:
            if key in self._sources:
                raise ValueError(f"crashlog metrics with labels {dict(key[1])} are already registered"
                                 " on this registry: give each logger its own labels")
            self._sources[key] = source
        return lambda: self._sources.pop(key, None) and None

    def describe(self) -> list[Metric]:
        return []  # names are shared by design; collisions are checked by labels in add()

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for key, source in list(self._sources.items()):
            for family, kind, text, sample, labels, value in source(key):
                metric = families.get(family)
                if metric is None:
                    metric = families[family] = Metric(family, text, kind)
                metric.add_sample(sample, labels, value)
        yield from families.values()


def _logger_metrics(log: Logger, key: Key) -> Samples:
    try:
        m = log.metrics()
    except CrashlogError:  # closed (or never opened): nothing to report
        return
    base = dict(key[1])
    for name, field, text in LOGGER_COUNTERS:
        yield name, "counter", text, f"{name}_total", base, getattr(m, field)
    for name, value_of, text in LOGGER_GAUGES:
        yield name, "gauge", text, name, base, value_of(m)
    yield from _histogram("crashlog_flush_seconds", "Seconds a batch took to commit.", base, m)
    # connect(project=True): the projections this process applies, as `project --follow` has them.
    yield from _runner_metrics(list(getattr(log, "_runners", [])), key)


def _histogram(name: str, text: str, base: dict[str, str], m: Any) -> Samples:
    from crashlog.writer import FLUSH_BUCKETS

    counts = m.flush_seconds_buckets or (0,) * len(FLUSH_BUCKETS)
    for bound, count in zip(FLUSH_BUCKETS, counts):
        yield name, "histogram", text, f"{name}_bucket", {**base, "le": floatToGoString(bound)}, count
    yield name, "histogram", text, f"{name}_sum", base, m.flush_seconds_sum
    yield name, "histogram", text, f"{name}_count", base, m.flush_seconds_count


def _runner_metrics(runners: list[Runner], key: Key) -> Samples:
    base = dict(key[1])
    for index, runner in enumerate(runners):
        lag = dict(runner.lag)  # a snapshot: the runner replaces it, never edits it in place
        for projection, counts in runner.counters.items():
            for labels in _named(base, projection, runner.counters):
                for name, counter, text in PROJECTION_COUNTERS:
                    yield name, "counter", text, f"{name}_total", labels, counts[counter]
                if projection in lag:
                    events, seconds = lag[projection]
                    yield ("crashlog_projection_lag_events", "gauge", "Events in the log not yet applied.",
                           "crashlog_projection_lag_events", labels, events)
                    yield ("crashlog_projection_lag_seconds", "gauge", "Age of the oldest event not yet applied.",
                           "crashlog_projection_lag_seconds", labels, seconds)
        for state in RUNNER_STATES:
            yield ("crashlog_runner_state", "gauge", "1 for the runner's current state.",
                   "crashlog_runner_state", {**base, "runner": str(index), "state": state},
                   1.0 if runner.state == state else 0.0)


def _named(base: dict[str, str], projection: str, own: Mapping[str, object]) -> list[dict[str, str]]:
    """The labels of a projection's series: its own, then one per old name (``aliases_of``)
    with ``alias_of``, unless a projection in ``own`` has that name itself."""
    return [{**base, "projection": projection},
            *({**base, "projection": old, "alias_of": projection} for old in aliases_of(projection)
              if old not in own)]


def serve(port: int, host: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> None:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=REGISTRY if registry is None else registry)


__all__ = ["LOGGER_COUNTERS", "LOGGER_GAUGES", "PROJECTION_COUNTERS", "register", "register_runners", "serve"]
