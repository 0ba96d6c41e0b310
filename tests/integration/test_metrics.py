"""crashlog.metrics: a logger's Prometheus counters equal its own after a known workload,
several loggers share one registry, and nothing is registered unless asked."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from faults import free_port
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import crashlog
from crashlog import metrics
from crashlog.events import BotErrorRaised, RoundObserved


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the registry's exposition, parsed back as Prometheus reads it."""
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def errors(bot: str, count: int) -> list[BotErrorRaised]:
    return [BotErrorRaised(bot_id=bot, error_type="E", message=f"n{i}") for i in range(count)]


async def test_counters_equal_the_loggers_own_after_a_poison_row(dsn: str, conn: asyncpg.Connection) -> None:
    await conn.execute("ALTER TABLE crashlog.events ADD CONSTRAINT no_poison CHECK (bot_id <> 'poison')")
    registry = CollectorRegistry()
    async with crashlog.connect(dsn, project=False, flush_interval=0.01) as log:
        metrics.register(log, registry, labels={"bot": "b1"})
        for event in [*errors("b1", 30), *errors("poison", 1), *errors("b1", 9)]:
            await log.emit(event)
        await log.flush()
        own = log.metrics()
        found = samples(registry)
    assert (own.emitted, own.committed, own.rejected) == (40, 39, 1)
    assert value(found, "crashlog_events_emitted_total", bot="b1") == 40
    assert value(found, "crashlog_events_committed_total", bot="b1") == 39
    assert value(found, "crashlog_events_rejected_total", bot="b1") == 1
    assert value(found, "crashlog_events_spooled_total", bot="b1") == 0
    assert value(found, "crashlog_buffer_events", bot="b1") == 0
    # The writer's latency histogram: one observation per committed batch, all under +Inf.
    count = value(found, "crashlog_flush_seconds_count", bot="b1")
    assert count == own.flush_seconds_count >= 1
    assert value(found, "crashlog_flush_seconds_bucket", bot="b1", le="+Inf") == count
    assert value(found, "crashlog_flush_seconds_sum", bot="b1") > 0
    buckets = [s for (name, labels), s in found.items() if name == "crashlog_flush_seconds_bucket"]
    assert len(buckets) == len(own.flush_seconds_buckets)


async def test_spooled_events_after_an_outage_are_counted(tmp_path: Path) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/crashlog"
    registry = CollectorRegistry()
    log = await crashlog.connect(down, spool_dir=str(tmp_path / "spool"), connect_timeout=1,
                                 flush_interval=0.01)
    try:
        metrics.register(log, registry)
        for n in range(25):
            await log.emit(RoundObserved(bot_id="away", game="aviator", platform="demo", round_number=n,
                                         crash_multiplier=Decimal("1.50")))
        await log.flush(timeout=30)
        own = log.metrics()
        found = samples(registry)
    finally:
        await log.aclose(timeout=10)
    assert own.spooled == 25 and value(found, "crashlog_events_spooled_total") == 25
    assert value(found, "crashlog_events_committed_total") == 0
    assert value(found, "crashlog_spool_bytes") == own.spool_bytes > 0
    assert value(found, "crashlog_spool_errors_total") == own.spool_errors == 0
    assert samples(registry) == {}  # a closed logger reports nothing (it is not an error)


async def test_two_loggers_share_one_registry_without_colliding(dsn: str) -> None:
    registry = CollectorRegistry()
    async with crashlog.connect(dsn, project=False) as first, \
            crashlog.connect(dsn, project=False) as second:
        metrics.register(first, registry, labels={"bot": "a"})
        take_off = metrics.register(second, registry, labels={"bot": "b"})
        with pytest.raises(ValueError, match="already registered"):
            metrics.register(second, registry, labels={"bot": "a"})
        for event in errors("a", 3):
            await first.emit(event)
        for event in errors("b", 5):
            await second.emit(event)
        await first.flush()
        await second.flush()
        found = samples(registry)
        assert value(found, "crashlog_events_committed_total", bot="a") == 3
        assert value(found, "crashlog_events_committed_total", bot="b") == 5
        take_off()
        assert ("crashlog_events_committed_total", frozenset({("bot", "b")})) not in samples(registry)


async def test_nothing_is_registered_unless_asked(dsn: str) -> None:
    def crashlog_names() -> set[str]:
        return {m.name for m in REGISTRY.collect() if m.name.startswith("crashlog_")}

    async with crashlog.connect(dsn, project=False) as log:
        assert crashlog_names() == set()
        take_off = metrics.register(log)  # None: prometheus_client's default registry
        assert "crashlog_events_emitted" in crashlog_names()
        take_off()
    assert crashlog_names() == set()


async def test_a_logger_that_projects_reports_its_projections_lag(dsn: str) -> None:
    from crashlog.projections import ALIASES, NAMES

    # Each projection once, and each old name (round_outcomes: part of rounds) as its own.
    exposed = {*NAMES, *ALIASES}
    registry = CollectorRegistry()
    async with crashlog.connect(dsn, project=True) as log:
        metrics.register(log, registry)
        for event in errors("p", 10):
            await log.emit(event)
        await log.sync(timeout=30)
        found: dict = {}
        for _ in range(200):  # the lag is refreshed in the background, every LAG_REFRESH s
            found = samples(registry)
            lag = {dict(labels)["projection"]: v for (name, labels), v in found.items()
                   if name == "crashlog_projection_lag_events"}
            if set(lag) == exposed and not any(lag.values()):
                break
            await asyncio.sleep(0.05)
    assert set(lag) == exposed and not any(lag.values())  # caught up, each reported once
    applied = {dict(labels)["projection"]: v for (name, labels), v in found.items()
               if name == "crashlog_projection_batches_applied_total"}
    assert applied["bot_errors"] >= 1
    assert all(applied[old] == applied[new] for old, new in ALIASES.items())
