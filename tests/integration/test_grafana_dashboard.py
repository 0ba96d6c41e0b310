"""dashboards/grafana/crashlog.json: every SQL panel query, its macros expanded as Grafana
would (tests/helpers/grafana.py), runs read-only against a database with data and returns
rows of the types its panel draws; every Prometheus query names a metric crashlog exports.
A projection's old name (``ALIASES``: round_outcomes, part of rounds) stays on the lag panels."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from helpers.grafana import expand
from helpers.report_data import record

import crashlog
from crashlog.events import BotErrorRaised
from crashlog.projections import ALIASES

ROOT = Path(crashlog.__file__).resolve().parent.parent
GRAFANA = ROOT / "dashboards" / "grafana"
# The metric names DESIGN.md ("Operating") promises, as Prometheus exposes them.
METRICS = {
    "crashlog_events_emitted_total", "crashlog_events_committed_total", "crashlog_events_rejected_total",
    "crashlog_events_spooled_total", "crashlog_buffer_events", "crashlog_spool_bytes",
    "crashlog_spool_errors_total", "crashlog_writer_restarts_total", "crashlog_flush_seconds_bucket",
    "crashlog_projection_lag_events", "crashlog_projection_lag_seconds",
    "crashlog_projection_errors_total", "crashlog_projection_skipped_events_total",
}
NUMBER = (int, float, Decimal)


def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "crashlog.json").read_text(encoding="utf-8"))


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def sql_targets() -> list[tuple[str, str, str]]:
    """(panel title, panel type, target) of every PostgreSQL query."""
    return [(p["title"], p["type"], t) for p in panels() for t in p["targets"]
            if t["datasource"]["uid"] == "crashlog-pg"]


def test_every_panel_is_titled_explained_and_on_a_provisioned_datasource() -> None:
    provisioned = set(re.findall(r"^\s*uid:\s*(\S+)", (GRAFANA / "provisioning/datasources/crashlog.yaml")
                                 .read_text(), re.MULTILINE))
    assert provisioned == {"crashlog-pg", "crashlog-prom"}
    assert (GRAFANA / "provisioning/dashboards/crashlog.yaml").read_text().count("type: file") == 1
    for panel in panels():
        assert panel["title"] and len(panel["description"]) > 30, panel["title"]
        assert {t["datasource"]["uid"] for t in panel["targets"]} <= provisioned, panel["title"]
    names = {v["name"] for v in dashboard()["templating"]["list"]}
    assert names == {"bot", "game"}


def test_every_prometheus_query_names_an_exported_metric() -> None:
    used = set()
    for panel in panels():
        for target in panel["targets"]:
            if target["datasource"]["uid"] == "crashlog-prom":
                found = set(re.findall(r"\bcrashlog_[a-z_]+", target["expr"]))
                assert found and found <= METRICS, (panel["title"], found - METRICS)
                used |= found
    # buffer, spool, flush latency (the histogram), projection lag per projection
    assert {"crashlog_buffer_events", "crashlog_spool_bytes", "crashlog_flush_seconds_bucket",
            "crashlog_projection_lag_events"} <= used
    module = ROOT / "crashlog" / "metrics.py"
    if module.exists():  # the metrics module names each one (counters without _total)
        text = module.read_text(encoding="utf-8")
        for name in used:
            assert re.sub(r"_(total|bucket)$", "", name).removeprefix("crashlog_") in text, name


async def variable_values(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Each template variable's values, from its own query (the 'All' a user starts with)."""
    return {v["name"]: [r[0] for r in await conn.fetch(v["query"])] for v in dashboard()["templating"]["list"]}


def assert_shape(title: str, kind: str, fmt: str, rows: list[asyncpg.Record]) -> None:
    assert rows, f"{title}: no rows"
    first = rows[0]
    if fmt == "time_series":
        assert list(first.keys()) == ["time", "metric", "value"], title
        for row in rows:
            assert isinstance(row["time"], NUMBER + (datetime,)) and isinstance(row["metric"], str), title
            assert isinstance(row["value"], NUMBER), (title, row)
    elif kind in ("stat", "barchart"):
        values = list(first.values())
        numbers = values if kind == "stat" else values[1:]
        assert kind == "stat" or isinstance(values[0], str), title  # the bars' labels
        assert numbers and all(isinstance(v, NUMBER) for v in numbers), (title, first)
    else:
        assert kind == "table", title


@pytest.mark.parametrize("title,kind,target", sql_targets(), ids=[t[0] for t in sql_targets()])
async def test_sql_panel_runs_and_returns_its_types(dsn: str, title: str, kind: str, target: dict[str, Any]) -> None:
    await record(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        values = await variable_values(conn)
        assert all(values.values()), values
        sql = expand(target["rawSql"], start=datetime(2000, 1, 1, tzinfo=UTC),
                     end=datetime.now(UTC) + timedelta(days=1), interval="1m", variables=values)
        async with conn.transaction(readonly=True):  # the analyst role can run it
            rows = await conn.fetch(sql)
    finally:
        await conn.close()
    assert_shape(title, kind, target["format"], rows)


def test_per_projection_queries_keep_the_old_names_series() -> None:
    """The metrics repeat a projection's series under each old name (``alias_of`` set): a
    query over ``crashlog_projection_*`` keeps the ``projection`` label (so round_outcomes is
    drawn) or counts each projection once (``alias_of=""``), and a list of projections in a
    query names the old names too."""
    exprs = [t["expr"] for p in panels() for t in p["targets"] if t["datasource"]["uid"] == "crashlog-prom"]
    per_projection = [e for e in exprs if "crashlog_projection_" in e]
    assert len(per_projection) >= 4
    for expr in per_projection:
        assert re.search(r"\bby \([^)]*\bprojection\b", expr) or 'alias_of=""' in expr, expr
        for listed in re.findall(r'projection\s*=~?\s*"([^"]*)"', expr):
            names = set(listed.split("|"))
            assert all(old in names for old, new in ALIASES.items() if new in names), expr


async def test_the_lag_table_lists_each_old_name_with_its_projections_figures(dsn: str) -> None:
    await record(dsn)
    async with crashlog.connect(dsn, project=False) as log:  # 7 events no projection has applied
        for n in range(7):
            await log.emit(BotErrorRaised(bot_id="late", error_type="E", message=f"n{n}"))
    (target,) = next(p for p in panels() if p["title"] == "Projection lag (events not yet applied)")["targets"]
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(readonly=True):
            rows = await conn.fetch(expand(target["rawSql"], start=datetime(2000, 1, 1, tzinfo=UTC),
                                           end=datetime.now(UTC)))
        names = [r[0] for r in await conn.fetch("SELECT name FROM crashlog.projection_checkpoints")]
    finally:
        await conn.close()
    shown = {row["projection"]: row for row in rows}
    assert len(shown) == len(rows)
    old_names = {f"{old} (part of {new})": new for old, new in ALIASES.items() if new in names}
    assert old_names and set(shown) == {*names, *old_names}
    for label, new in old_names.items():
        assert shown[label][1:] == shown[new][1:] and shown[new]["lag_events"] == 7, label


def test_the_expander_leaves_no_macro_and_refuses_an_unknown_one() -> None:
    sql = expand("SELECT $__timeGroupAlias(t, $__interval) WHERE $__timeFilter(t) AND b IN ($bot)",
                 start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 2, tzinfo=UTC),
                 interval="5m", variables={"bot": ["a", "o'b"]})
    assert sql == ("SELECT floor(extract(epoch from t)/300)*300 AS \"time\" WHERE t BETWEEN "
                   "'2026-01-01T00:00:00+00:00'::timestamptz AND '2026-01-02T00:00:00+00:00'::timestamptz "
                   "AND b IN ('a', 'o''b')")
    with pytest.raises(ValueError, match=r"\$__unixEpochFilter"):
        expand("SELECT $__unixEpochFilter(t)", start=datetime.now(UTC), end=datetime.now(UTC))
