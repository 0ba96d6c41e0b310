"""A projection merged into another keeps answering to its old name (ALIASES: round_outcomes
is part of rounds since migration 016): ``project --rebuild round_outcomes`` rebuilds rounds,
``project --lag`` (text and JSON) lists round_outcomes with rounds' figures, the metrics keep a
``projection="round_outcomes"`` series with rounds' values, and the old name is no name for a
projection of a user's own."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from decimal import Decimal

import asyncpg
import pytest
from helpers.log import until as helpers_until
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import crashlog
from crashlog import health, metrics
from crashlog.cli import main
from crashlog.errors import InvalidProjection, UnknownProjection
from crashlog.events import BotErrorRaised, Outcome, RoundSettled
from crashlog.projections import ALIASES, NAMES, registry, runner, select
from crashlog.report import make_report, render

until = functools.partial(helpers_until, timeout=60.0, poll=0.05)

_HORIZON = ("SELECT coalesce(max(tx_id) < pg_snapshot_xmin(pg_current_snapshot()), true)"
            " FROM crashlog.events")
#: A settled round rounds cannot read (written by SQL, not the SDK): rounds skips it.
_UNREADABLE = """
INSERT INTO crashlog.events (event_id, event_type, schema_version, bot_id, occurred_at, payload)
VALUES ($1, 'RoundSettled', 1, 'b1', now(), '{}'::jsonb)
"""


def settled(bot: str, n: int) -> RoundSettled:
    return RoundSettled(bot_id=bot, game="aviator", platform="demo", round_number=n, stake=Decimal("10"),
                        crash_multiplier=Decimal("2"), outcome=Outcome.LOSS, profit_loss=Decimal("-10"))


async def emit(dsn: str, rounds: int, errors: int = 0) -> None:
    """``rounds`` settled rounds and ``errors`` bot errors, nothing projected."""
    async with crashlog.connect(dsn, project=False) as log:
        for n in range(rounds):
            await log.emit(settled("b1", n))
        for n in range(errors):
            await log.emit(BotErrorRaised(bot_id="b1", error_type="E", message=f"n{n}"))


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``crashlog ARGS`` as the command line runs it; its stdout."""
    capsys.readouterr()
    status = await asyncio.to_thread(main, list(args))
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


def test_the_old_names_are_listed_and_each_names_a_built_in() -> None:
    assert ALIASES == {"round_outcomes": "rounds"}  # the merge of migration 016
    assert all(old not in NAMES and new in NAMES for old, new in ALIASES.items())
    with pytest.raises(UnknownProjection, match=r"rounds \(also known as round_outcomes\)"):
        select(["round_outcome"])


async def test_doctor_names_a_projection_behind_with_its_old_name(dsn: str, conn: asyncpg.Connection) -> None:
    await emit(dsn, rounds=3)
    await until(lambda: conn.fetchval(_HORIZON))
    await runner.rebuild(dsn, [n for n in NAMES if n != "rounds"])  # every other one is current
    behind = await health.lag_check(conn, max_lag=2)
    assert not behind.ok and behind.detail.startswith("rounds (also known as round_outcomes) is 3 events")


async def test_rebuild_and_lag_by_the_old_name(dsn: str, conn: asyncpg.Connection,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    await emit(dsn, rounds=6, errors=4)
    await until(lambda: conn.fetchval(_HORIZON))  # a rebuild reads the log below the horizon

    said = await cli(capsys, "project", "--rebuild", "round_outcomes", "--dsn", dsn)
    assert "rebuilt: round_outcomes" in said
    assert await conn.fetchval("SELECT count(*) FROM crashlog.round_outcomes") == 6
    assert await conn.fetchval("SELECT count(*) FROM crashlog.bot_errors") == 0  # rounds alone
    await emit(dsn, rounds=3)  # rounds is 3 behind now, every other projection 13

    rows = json.loads(await cli(capsys, "project", "--lag", "--json", "--dsn", dsn))["projections"]
    by_name = {row["name"]: row for row in rows}
    assert list(by_name) == [row["name"] for row in rows]  # each name once
    old = by_name["round_outcomes"]
    assert old["alias_of"] == "rounds" and old["events_behind"] == 3
    assert {**old, "name": "rounds", "alias_of": None} == by_name["rounds"]
    assert by_name["bot_errors"]["events_behind"] == 13 and by_name["bot_errors"]["alias_of"] is None
    names = [row["name"] for row in rows]
    assert names.index("round_outcomes") == names.index("rounds") + 1  # listed where it was

    text = await cli(capsys, "project", "--lag", "--dsn", dsn)
    lines = [line for line in text.splitlines() if "round_outcomes" in line]  # as a script greps
    assert len(lines) == 1 and "round_outcomes (part of rounds)" in lines[0]
    table = {cells[0]: cells[1:] for line in text.splitlines()
             if (cells := [cell.strip() for cell in line.split("│")[1:-1]])}
    assert table["round_outcomes (part of rounds)"] == table["rounds"]
    assert table["rounds"][0] == "3" and table["bot_errors"][0] == "13"
    assert table["rounds"][2:] == ["0", "running"]

    # The report's lag table too (crashlog report).
    data = await make_report(dsn)
    assert data.lag["round_outcomes (part of rounds)"] == data.lag["rounds"]
    assert data.lag["rounds"][0] == 3 and data.lag["bot_errors"][0] == 13
    assert '<td class="text">round_outcomes (part of rounds)</td>' in render(data)


def _samples(registry: CollectorRegistry) -> list:
    text = generate_latest(registry).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("crashlog_projection_")]


async def test_the_metrics_keep_a_series_under_the_old_name(dsn: str, conn: asyncpg.Connection) -> None:
    await conn.execute(_UNREADABLE, uuid.uuid4())  # rounds skips it: a figure only rounds has
    await emit(dsn, rounds=5, errors=2)
    prometheus = CollectorRegistry()
    runners = runner.side_by_side(dsn)
    take_off = metrics.register_runners(runners, prometheus)  # as `project --follow --metrics-port`
    for each in runners:
        each.start()
    try:
        async def caught_up() -> bool:  # as each applier last saw it (refreshed every 2 s)
            reported = {name: events for each in runners for name, (events, _) in each.lag.items()}
            return set(reported) == set(NAMES) and not any(reported.values())

        await until(caught_up)
        found = _samples(prometheus)
        page = generate_latest(prometheus).decode()
    finally:
        for each in runners:
            await each.stop()
        take_off()

    assert 'projection="round_outcomes"' in page
    series = {(s.name, s.labels["projection"]): s for s in found}
    assert {p for _, p in series} == {*NAMES, *ALIASES}
    for (name, projection), sample in series.items():
        if projection in ALIASES:
            own = series[(name, ALIASES[projection])]
            assert sample.labels == {**own.labels, "projection": projection, "alias_of": ALIASES[projection]}
            assert sample.value == own.value, name
        else:
            assert "alias_of" not in sample.labels
    assert series[("crashlog_projection_skipped_events_total", "round_outcomes")].value == 1
    assert series[("crashlog_projection_skipped_events_total", "bot_errors")].value == 0
    assert series[("crashlog_projection_batches_applied_total", "round_outcomes")].value >= 1


async def test_the_old_name_is_no_name_for_a_projection_of_your_own(conn: asyncpg.Connection) -> None:
    from crashlog.projections.user import projection

    @projection("round_outcomes", version=1, events=(RoundSettled,), tables={"my_outcomes": "n int"})
    async def handle(batch: object) -> None:
        pass

    with pytest.raises(InvalidProjection, match="'round_outcomes'.*built-in projection rounds"):
        registry.register([handle])
    with pytest.raises(InvalidProjection, match="'round_outcomes' is a built-in .*rounds.*cannot be dropped"):
        await registry.drop(conn, "round_outcomes")
