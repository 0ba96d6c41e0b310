from decimal import Decimal

from crashlog.events import Outcome, RoundSettled


async def test_an_emitted_round_is_in_the_log_after_flush(log, conn):
    event_id = await log.emit(
        RoundSettled(
            bot_id="b1", session_id="s1", game="aviator", platform="demo", round_number=1,
            stake=Decimal("10.00"), crash_multiplier=Decimal("2.45"),
            cashout_multiplier=Decimal("1.33"), outcome=Outcome.WIN,
            profit_loss=Decimal("3.30"), balance_before=Decimal("1000.00"),
            balance_after=Decimal("1003.30"),
        )
    )
    await log.flush()
    rows = await conn.fetch("SELECT event_id, payload->>'stake' AS stake FROM crashlog.events")
    assert [(r["event_id"], r["stake"]) for r in rows] == [(event_id, "10.00")]
