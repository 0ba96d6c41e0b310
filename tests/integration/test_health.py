"""``crashlog.health``: the checks ``crashlog doctor`` prints, as functions of the library."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

import crashlog
from crashlog import health
from crashlog.events import RoundSettled, encode_payload
from crashlog.spool import Spool, inspect_folder
from crashlog.store import Row


def spooled(folder: Path, events: int) -> Path:
    """A spool folder with ``events`` events waiting (one batch); its one segment."""
    rows = []
    for _ in range(events):
        event = RoundSettled(bot_id="b", game="g", platform="p", stake=1, crash_multiplier=2,
                             outcome="LOSS", profit_loss=-1)
        rows.append(Row(event.event_id, event.event_type, 1, "b", None, event.occurred_at,
                        encode_payload(event)))
    spool = Spool.open(folder)
    spool.append(rows)
    spool.close()
    (segment,) = folder.glob("*.spool")
    return segment


async def test_an_unreachable_server_is_one_failed_check_without_the_password() -> None:
    checks = await health.diagnose("postgresql://user:s3cr3t@127.0.0.1:1/db", spool_dir="/nowhere")
    assert [(c.name, c.ok) for c in checks] == [("server", False)]
    assert "could not connect" in checks[0].detail and "***" in checks[0].detail
    assert "s3cr3t" not in checks[0].detail


async def test_an_unmigrated_database_fails_the_migrations_check_only(empty_dsn: str) -> None:
    checks = await health.diagnose(empty_dsn)
    assert [(c.name, c.ok) for c in checks] == [
        ("server", True), ("migrations", False), ("spool", True)]
    assert "pending: 001_event_log.sql" in checks[1].detail and "crashlog migrate" in checks[1].detail


async def test_a_healthy_database_passes_and_a_waiting_spool_fails(dsn: str, tmp_path: Path) -> None:
    checks = await health.diagnose(dsn, spool_dir=tmp_path / "absent")
    assert all(c.ok for c in checks), checks
    assert [c.name for c in checks] == [
        "server", "migrations", "projections", "records", "stopped projections",
        "projection errors", "rebuild shadows", "grants", "horizon", "spool"]
    assert "0 rejected events, 0 contradictory rounds" in checks[3].detail
    spooled(tmp_path / "spool", 3)
    *rest, spool = await health.diagnose(dsn, spool_dir=tmp_path / "spool")
    assert all(c.ok for c in rest) and not spool.ok
    assert "3 events in 1 segments" in spool.detail


async def test_the_lag_check_fails_past_its_limit_and_names_the_projection(dsn: str) -> None:
    async with crashlog.connect(dsn, project=False) as log:  # nothing projects these
        for _ in range(3):
            await log.emit(RoundSettled(bot_id="b", game="g", platform="p", stake=1,
                                        crash_multiplier=2, outcome="LOSS", profit_loss=-1))
    conn = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(60):  # lag counts what is below the commit horizon, soon all 3
            while (behind := await health.lag_check(conn, max_lag=2)).ok:
                await asyncio.sleep(0.05)
        within = await health.lag_check(conn, max_lag=3)
    finally:
        await conn.close()
    assert within.ok and "within 3 events" in within.detail
    assert "is 3 events" in behind.detail and "crashlog project --follow" in behind.detail


def test_the_spool_check_reads_a_folder_without_changing_it(tmp_path: Path) -> None:
    assert health.spool_check(None).ok
    missing = health.spool_check(tmp_path / "none")
    assert missing.ok and "does not exist" in missing.detail
    assert not (tmp_path / "none").exists()
    segment = spooled(tmp_path / "spool", 2)
    with segment.open("ab") as f:
        f.write(b"\x00\x00\x01")  # a torn tail: never acknowledged, so not counted
    before = segment.read_bytes()
    found = inspect_folder(tmp_path / "spool")
    assert (found.exists, found.events, found.segments, found.bytes) == (True, 2, 1, len(before))
    check = health.spool_check(tmp_path / "spool")
    assert not check.ok and "2 events in 1 segments" in check.detail
    assert segment.read_bytes() == before
    Spool.open(tmp_path / "spool").close()  # nothing holds the folder's lock after a look


def test_a_check_is_a_frozen_value() -> None:
    check = health.Check("server", True, "fine")
    with pytest.raises(AttributeError):
        check.ok = False  # type: ignore[misc]
    assert check == health.Check("server", True, "fine")
