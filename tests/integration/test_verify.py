"""``crashlog verify`` against a database: a recomputed chain lists exactly the misread round,
Spribe records that fail are reported, and every valid popup lands in fairness_records
(crashlog/fairness/verify.py, cli/verify.py, projections/fairness_records.py).
(The schemes and the checks alone: tests/unit/test_fairness.py.)"""

from __future__ import annotations

import asyncio
import hashlib
from decimal import Decimal

import asyncpg
import pytest
from helpers.fairness import CLASSIC_HASH, spribe_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import events_of

import crashlog
from crashlog import fairness
from crashlog.cli import main
from crashlog.events import FairnessRecorded, RoundObserved, RoundSettled

FIRST_GAME = 13_000_001  # in the range bustabit-classic covers (after Vx's last game)


def generated_chain(scheme: fairness.Scheme, games: int) -> list[fairness.ChainRound]:
    latest = hashlib.sha256(f"crashlog test chain {scheme.name}".encode()).hexdigest()
    return list(fairness.walk_chain(
        latest, scheme=scheme, game_id=FIRST_GAME + games - 1, rounds=games))


@pytest.mark.parametrize("scheme", ["bustabit-classic", "stake"])
async def test_verify_lists_exactly_the_misread_round(
    scheme: str, dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = generated_chain(fairness.SCHEMES[scheme], 30)
    misread = chain[7]
    wrong = misread.crash_point + Decimal("1.00")
    async with crashlog.connect(dsn, flush_interval=0.01) as log:
        for r in chain:
            if r is misread:  # a bot that played it read the screen wrong, and said how sure
                await log.emit(RoundSettled(
                    bot_id="reader", game="crash", platform="op", game_round_id=str(r.game_id),
                    stake=Decimal(1), crash_multiplier=wrong, outcome="SKIP",
                    profit_loss=Decimal(0), ocr_confidence=0.41))
            else:
                await log.emit(RoundObserved(
                    bot_id="watcher", game="crash", platform="op",
                    game_round_id=str(r.game_id), crash_multiplier=r.crash_point))
        await log.sync()
    capsys.readouterr()
    status = await asyncio.to_thread(main, [
        "verify", "--dsn", dsn, "--game", "crash", "--platform", "op", "--scheme", scheme,
        "--hash", chain[0].game_hash, "--game-id", str(chain[0].game_id), "--rounds", "40",
    ])
    printed = capsys.readouterr().out
    assert status == 1
    assert "recomputed: 40; recorded: 30; match: 29; mismatch: 1; not recorded: 10" in printed
    rows = [line for line in printed.splitlines() if str(FIRST_GAME)[:4] in line and "│" in line]
    assert len(rows) == 1, printed
    cells = [c.strip() for c in rows[0].split("│") if c.strip()]
    assert cells[:4] == [str(misread.game_id), str(wrong), "1", str(misread.crash_point)]
    assert "0.41" in cells and misread.game_hash in cells
    assert "not checked against a committed chain" in printed


async def test_verify_spribe_reports_the_records_that_fail(
    dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = spribe_record()
    bad = spribe_record(server_seed_sha256="ab" * 32)
    async with crashlog.connect(dsn, flush_interval=0.01) as log:
        for round_id, fields in (("r1", good), ("r2", bad)):
            await log.emit(FairnessRecorded(
                bot_id="watcher", game="aviator", platform="spribe", game_round_id=round_id,
                **fields))  # type: ignore[arg-type]
        await log.sync()
    db = await asyncpg.connect(dsn)
    try:
        rows = await db.fetch(
            "SELECT game_round_id, problems FROM crashlog.fairness_records ORDER BY game_round_id")
    finally:
        await db.close()
    assert [(r["game_round_id"], r["problems"]) for r in rows] == [
        ("r1", []), ("r2", ["server seed commitment"])]
    capsys.readouterr()
    status = await asyncio.to_thread(main, ["verify", "--dsn", dsn, "--spribe"])
    printed = capsys.readouterr().out
    assert status == 1
    assert "2 provably-fair records" in printed
    assert "server seed commitment: mismatch: 1, ok: 1" in printed
    assert "result from hash: not verifiable (unpublished): 2" in printed


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(records=st.lists(events_of(FairnessRecorded), min_size=1, max_size=8))
async def test_any_valid_popup_lands_in_fairness_records(dsn: str, records: list) -> None:
    """Whatever a bot typed into the popup's fields, the projection checks it and keeps it."""
    async with crashlog.connect(dsn, flush_interval=0.01) as log:
        for record in records:
            await log.emit(record)
        await log.sync()
    db = await asyncpg.connect(dsn)
    try:
        ids = {r["event_id"] for r in await db.fetch("SELECT event_id FROM crashlog.fairness_records")}
    finally:
        await db.close()
    assert {r.event_id for r in records} <= ids


@pytest.mark.slow
async def test_verify_finds_a_real_hash_on_bustabits_chain_by_itself(
    dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scheme = fairness.SCHEMES["bustabit-classic"]
    chain = list(fairness.walk_chain(CLASSIC_HASH, scheme=scheme, game_id=13_303_000, rounds=5))
    assert chain[0].crash_point == Decimal("38.65")
    async with crashlog.connect(dsn, flush_interval=0.01) as log:
        for r in chain:
            await log.emit(RoundObserved(
                bot_id="watcher", game="crash", platform="bustabit", game_round_id=str(r.game_id),
                crash_multiplier=r.crash_point if r is not chain[2] else Decimal("1.00")))  # 1.12
        await log.sync()
    capsys.readouterr()
    status = await asyncio.to_thread(main, [
        "verify", "--dsn", dsn, "--game", "crash", "--platform", "bustabit",
        "--scheme", "bustabit-classic", "--hash", CLASSIC_HASH, "--rounds", "5"])
    printed = capsys.readouterr().out
    assert status == 1
    assert "the hash is game 13303000 of the chain bustabit-classic committed to" in printed
    assert "recomputed: 5; recorded: 5; match: 4; mismatch: 1" in printed
