"""The seed's calls through crashlog.compat: what each returns, and what a failed block leaves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crashlog import compat
from crashlog.compat import models, session_scope, utils
from crashlog.errors import InvalidEvent


@pytest.fixture
def old_api(dsn: str) -> Iterator[None]:
    compat.init_db(dsn, flush_interval=0.01)
    yield
    compat.close_db()


def rows(query: str) -> list:
    logger = compat.connection.current()
    return list(logger.run(logger.pool.fetch(query)))


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def log_rounds(game: str, multipliers: list[str]) -> None:
    for n, m in enumerate(multipliers, start=1):
        compat.log_crash_round("b", "s", game, "spribe", n, 1, m, None, "LOSS", -1,
                               game_round_id=f"{game}-{n}", timestamp=T0 + timedelta(seconds=n))


def test_the_ml_export_returns_the_newest_rows_in_time_order(old_api: None, tmp_path) -> None:
    log_rounds("aviator", ["1.00", "2.45", "13.70", "1.21"])
    log_rounds("jetx", ["3.00"])
    data = utils.export_multipliers_for_ml("aviator", limit=3)
    assert [r["round_id"] for r in data] == ["aviator-2", "aviator-3", "aviator-4"]
    assert [r["multiplier"] for r in data] == [2.45, 13.70, 1.21]
    assert [datetime.fromisoformat(r["timestamp"]) for r in data] == [T0 + timedelta(seconds=n) for n in (2, 3, 4)]
    # what json.dump takes as the seed wrote it, and reads back the same
    assert json.loads(json.dumps(data)) == data
    assert len(utils.export_multipliers_for_ml("aviator", limit=10000)) == 4
    assert len(utils.export_multipliers_for_ml()) == 5  # every game
    assert utils.export_multipliers_for_ml("aviator", limit=0) == []
    with pytest.raises(ValueError, match="limit=-1"):
        utils.export_multipliers_for_ml("aviator", limit=-1)


def test_the_old_file_form_writes_the_file_and_says_what_replaces_it(old_api: None, tmp_path) -> None:
    log_rounds("aviator", ["2.00", "3.00"])
    with pytest.warns(DeprecationWarning, match="export_multipliers_for_ml"):
        assert utils.export_multipliers_for_ml(str(tmp_path / "m.jsonl"), "aviator") == 2
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 2
    with pytest.warns(DeprecationWarning):
        assert utils.export_multipliers_for_ml(output_file=tmp_path / "m.csv", game_name="jetx") == 0


def test_statistics_money_is_a_decimal_to_the_cent(old_api: None) -> None:
    for n in range(3):
        compat.log_crash_round("m", "s", "aviator", "spribe", n, Decimal("1.005"), "2.00", "1.50",
                               "WIN", Decimal("0.5025"))
    stats = utils.get_bot_statistics("m")
    assert stats["total_profit"] == Decimal("1.51") and str(stats["total_profit"]) == "1.51"
    assert stats["total_staked"] == Decimal("3.02")  # 3.015, half to even
    assert isinstance(stats["avg_profit_per_round"], Decimal)


def test_a_session_logs_its_records_only_when_the_block_ends_cleanly(old_api: None) -> None:
    with pytest.raises(RuntimeError, match="bot crashed"), session_scope() as session:
        session.add(models.BotVMRegistration(bot_id="lost_bot", session_id="s0"))
        raise RuntimeError("bot crashed")
    with pytest.raises(InvalidEvent, match="initial_balance"), session_scope() as session:
        session.add(models.BotVMRegistration(bot_id="ok_bot"))
        session.add(models.BotVMRegistration(bot_id="bad_bot", initial_balance="lots"))
    compat.connection.synced()
    assert rows("SELECT * FROM crashlog.events") == []  # neither block logged anything

    with session_scope() as session:
        session.add(models.BotVMRegistration(bot_id="kept_bot", session_id="s1", region="fra1"))
    compat.connection.synced()
    logged = rows("SELECT event_type, bot_id, payload->'metadata'->>'session_id' AS sid FROM crashlog.events")
    assert [tuple(r) for r in logged] == [("BotRegistered", "kept_bot", "s1")]
    with pytest.raises(TypeError, match="session.add takes"), session_scope() as session:
        session.add({"bot_id": "x"})
