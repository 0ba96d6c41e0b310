"""The old API through crashlog.compat, and the synchronous facade under it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

import crashlog
from crashlog import compat
from crashlog.events import RoundSettled
from crashlog.sync import connect


@pytest.fixture
def old_api(dsn: str) -> Iterator[None]:
    compat.init_db(dsn, flush_interval=0.01)
    yield
    compat.close_db()


def test_the_seeds_quick_start(old_api: None) -> None:
    compat.log_crash_round(
        bot_id="bot_001",
        session_id="session_001",
        game_name="aviator",
        platform_code="spribe",
        round_number=1,
        stake_value=10.00,
        crash_multiplier=2.45,
        cashout_multiplier=1.33,
        round_outcome="WIN",
        profit_loss=3.30,
        running_balance_before=1000.00,
        running_balance_after=1003.30,
    )
    stats = compat.get_bot_statistics("bot_001")
    assert stats["total_rounds"] == 1
    assert stats["win_rate_percent"] == 100
    assert stats["total_profit"] == Decimal("3.30")  # money to the cent, exact
    assert stats["roi_percent"] == 33
    assert stats["total_staked"] == Decimal("10.00")
    assert stats["warning"]  # one round tells nothing, and says so


def test_old_positional_calls_losses_and_exports(old_api: None, tmp_path) -> None:
    for n, (outcome, cashout, profit) in enumerate(
        [("LOSS", 0, -5), ("WIN", 2.0, 5), ("LOSS", None, -5), ("SKIP", 0, 0)], start=1
    ):
        compat.log_crash_round(
            "b",
            "s",
            "jetx",
            "smartsoft",
            n,
            5 if outcome != "SKIP" else 0,
            1.5 + n,
            cashout,
            outcome,
            profit,
        )
    stats = compat.get_bot_statistics("b")
    assert (stats["total_rounds"], stats["wins"], stats["losses"], stats["skips"]) == (4, 1, 2, 1)
    assert stats["total_profit"] == Decimal("-5.00") and stats["roi_percent"] == pytest.approx(-33.33)
    assert stats["longest_losing_streak"] == 1

    assert compat.export_rounds_to_json(tmp_path / "rounds.json", bot_id="b") == 4
    rounds = json.loads((tmp_path / "rounds.json").read_text())
    assert [r["round_number"] for r in rounds] == [1, 2, 3, 4]
    with pytest.warns(DeprecationWarning, match=r"export_multipliers_for_ml\(game_name, limit=None\)"):
        assert compat.export_multipliers_for_ml(tmp_path / "m.csv", game_name="jetx") == 4
    assert (tmp_path / "m.csv").read_text().splitlines()[0].startswith("platform,game,")

    size = compat.get_database_size()
    assert size["total_events"] == 4 and size["total_rounds"] == 4 and size["size_bytes"] > 0


def test_bad_values_name_the_field(old_api: None) -> None:
    with pytest.raises(crashlog.InvalidEvent, match="crash_multiplier"):
        compat.log_crash_round("b", "s", "aviator", "spribe", 1, 1, 0.5, None, "LOSS", -1)
    with pytest.raises(crashlog.InvalidEvent, match="outcome"):
        compat.log_crash_round("b", "s", "aviator", "spribe", 1, 1, 2, None, "DRAW", -1)


def test_sync_logger_from_several_threads(dsn: str) -> None:
    per_thread = 200
    with connect(dsn, flush_interval=0.01) as log:

        def bot(name: str) -> None:
            for n in range(1, per_thread + 1):
                log.emit(
                    RoundSettled(
                        bot_id=name,
                        game="aviator",
                        platform="spribe",
                        round_number=n,
                        stake=Decimal(1),
                        crash_multiplier=Decimal("1.00"),
                        outcome="LOSS",
                        profit_loss=Decimal(-1),
                    )
                )

        threads = [threading.Thread(target=bot, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log.sync(timeout=30)
        for i in range(4):
            stats = log.bot_statistics(f"t{i}")
            assert stats.rounds == per_thread and stats.longest_losing_streak == per_thread
        numbers = log.run(
            log.pool.fetch("SELECT bot_id, round_number FROM crashlog.rounds ORDER BY position")
        )
    by_bot: dict[str, list[int]] = {}
    for row in numbers:
        by_bot.setdefault(row["bot_id"], []).append(row["round_number"])
    # Each thread's events are in the log in the order that thread emitted them.
    assert all(seq == list(range(1, per_thread + 1)) for seq in by_bot.values())
    with pytest.raises(crashlog.LoggerClosed):
        log.emit(
            RoundSettled(
                bot_id="late",
                game="g",
                platform="p",
                stake=1,
                crash_multiplier=1,
                outcome="SKIP",
                profit_loss=0,
            )
        )


def test_an_old_sqlite_file_name_is_ignored_with_a_warning(dsn: str, monkeypatch) -> None:
    monkeypatch.setenv("CRASHLOG_DSN", dsn)
    with pytest.warns(UserWarning, match="crash_data.db"):
        compat.init_db("crash_data.db")
    try:
        compat.log_crash_round("old", "s", "aviator", "spribe", 1, 1, 1.5, None, "LOSS", -1)
        assert compat.get_bot_statistics("old")["total_rounds"] == 1
    finally:
        compat.close_db()
