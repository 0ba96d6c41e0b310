"""Every read table (and the log) exported, read back with pyarrow, pandas, csv and json, equals
the table the reader gives; a large export runs in flat memory."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_reader import BUILT_IN, filled  # noqa: F401  (the fixture)

import crashlog

ROOT = Path(__file__).resolve().parents[2]


def same(kind: str, written: Any, value: Any) -> bool:
    """Whether a value read back from JSON or CSV text is the table's ``value`` of ``kind``."""
    if value is None:
        return written in (None, "")
    if kind == "decimal":
        return Decimal(str(written)) == value
    if kind == "time":
        return datetime.fromisoformat(written) == value
    if kind == "json":
        return (json.loads(written) if isinstance(written, str) else written) == json.loads(value)
    if kind in ("texts", "floats", "ints"):
        return (json.loads(written) if isinstance(written, str) else written) == value
    if isinstance(written, str) and kind in ("int", "int32"):
        return int(written) == value
    if isinstance(written, str) and kind == "float":
        return float(written) == value
    if isinstance(written, str) and kind == "bool":
        return written == str(value)
    return bool(written == value)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "json", "csv"])
async def test_every_table_exported_reads_back_equal(filled: str, tmp_path: Path, fmt: str) -> None:  # noqa: F811
    async with crashlog.reader(filled) as r:
        for name in [*sorted(BUILT_IN), "events"]:
            path = tmp_path / f"{name}.{fmt}"
            table = await r.table(name)
            kinds = {c.name: c.kind for c in (await r.plan(name)).columns}
            assert await r.export(name, path) == table.num_rows > 0
            if fmt == "parquet":
                back = pq.read_table(path)
                assert back.schema.equals(table.schema) and back.to_pylist() == table.to_pylist(), name
                continue
            if fmt == "csv":
                with open(path, newline="") as f:
                    rows: list[dict[str, Any]] = list(csv.DictReader(f))
            elif fmt == "jsonl":
                rows = [json.loads(line) for line in path.read_text().splitlines()]
            else:
                rows = json.loads(path.read_text())
            expected = table.to_pylist()
            assert [list(row) for row in rows] == [list(row) for row in expected], name
            for got, want in zip(rows, expected, strict=True):
                for column, value in want.items():
                    assert same(kinds[column], got[column], value), (name, column, got[column], value)


async def test_parquet_is_read_directly_by_pandas_polars_and_duckdb(filled: str, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "rounds.parquet"
    async with crashlog.reader(filled) as r:
        table = await r.table("rounds")
        await r.export("rounds", path)
    schema = pq.read_schema(path)
    assert schema.field("stake").type == pa.decimal128(38, 12)
    assert schema.field("occurred_at").type == pa.timestamp("us", tz="UTC")
    import pandas

    frame = pandas.read_parquet(path)
    assert list(frame["stake"]) == table.column("stake").to_pylist()
    assert str(frame["occurred_at"].dt.tz) == "UTC"
    polars = pytest.importorskip("polars", reason="polars comes with the test extra")
    assert polars.read_parquet(path)["profit_loss"].to_list() == table.column("profit_loss").to_pylist()
    duckdb = pytest.importorskip("duckdb", reason="duckdb comes with the test extra")
    total = duckdb.sql(f"SELECT sum(profit_loss) FROM read_parquet('{path}')").fetchall()[0][0]
    assert total == sum(table.column("profit_loss").to_pylist())


async def test_the_export_verb_writes_any_table_with_its_filters(filled: str, tmp_path: Path) -> None:  # noqa: F811
    from crashlog.cli import main

    out = tmp_path / "o.csv"
    args = ["export", "round_outcomes", "--dsn", filled, "-o", str(out), "--filter", "outcome=WIN",
            "--bot", "b1", "--since", "2026-03-02", "--columns", "bot_id,outcome,stake"]
    assert await asyncio.to_thread(main, args) == 0
    async with crashlog.reader(filled) as r:
        want = await r.table("round_outcomes", since="2026-03-02", bot_id="b1", outcome="WIN",
                             columns=["bot_id", "outcome", "stake"])
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(x["bot_id"], x["outcome"], Decimal(x["stake"])) for x in rows] == [
        (x["bot_id"], x["outcome"], x["stake"]) for x in want.to_pylist()] and rows
    assert await asyncio.to_thread(main, ["export", "events", "--dsn", filled, "-o", str(tmp_path / "e.parquet"),
                 "--filter", "event_type=BotRegistered", "--filter", "event_type=OcrRead"]) == 0
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 6
    assert await asyncio.to_thread(main, ["export", "rounds", "--dsn", filled, "--filter", "colour=red"]) == 1
    assert await asyncio.to_thread(main, ["export", "nothing", "--dsn", filled, "-o", str(tmp_path / "n.csv")]) == 1


FILL = """
INSERT INTO crashlog.rounds (event_id, position, bot_id, game, platform, stake, crash_multiplier,
    outcome, profit_loss, occurred_at, is_contradictory, metadata)
SELECT gen_random_uuid(), i, 'bot-' || (i % 7), 'aviator', 'demo', 1.00, 2.45, 'LOSS', -1.00,
       '2025-01-01'::timestamptz + i * interval '1 second', false,
       jsonb_build_object('note', repeat('x', 100))
FROM generate_series($1::int, $2::int) AS i
"""

# Peak RSS growth (MiB) of one export in a fresh process, after the reader is open.
MEASURE = textwrap.dedent("""
    import resource, sys
    import pyarrow, pyarrow.parquet, crashlog
    with crashlog.reader(sys.argv[1]) as r:
        r.table("bots")  # warm: imports, codecs, the pool
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows = r.export("rounds", sys.argv[2])
        rows += sum(b.num_rows for b in r.batches("rounds"))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(rows, (after - before) / 1024)
""")


def peak_growth(dsn: str, path: Path) -> tuple[int, float]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([sys.executable, "-c", MEASURE, dsn, str(path)], capture_output=True, text=True,
                          env=env, timeout=300, check=True)
    rows, growth = done.stdout.split()
    return int(rows), float(growth)


async def test_a_large_export_and_batches_run_in_flat_memory(conn: asyncpg.Connection, dsn: str,
                                                             tmp_path: Path) -> None:
    await conn.execute(FILL, 1, 50_000)
    rows, small = peak_growth(dsn, tmp_path / "small.parquet")
    assert rows == 100_000
    await conn.execute(FILL, 50_001, 200_000)
    rows, large = peak_growth(dsn, tmp_path / "large.parquet")
    assert rows == 400_000
    # Four times the rows. Held at once, the extra 150,000 rounds would add well over 100 MiB
    # (about 60 MiB even as Arrow); streamed in batches of 10,000 the peak stays where it was.
    assert large < small + 25, f"peak RSS grew {small:.1f} MiB for 50,000 rows, {large:.1f} MiB for 200,000"
    assert large < 200, f"peak RSS grew {large:.1f} MiB over a 200,000-row export"
