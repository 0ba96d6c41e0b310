"""round_outcomes is a view over rounds (migration 016): the same columns and rows as the
table it replaced, kept (with its grants, and users' views over it) by a rebuild of rounds,
which its old name still selects."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

import crashlog
from crashlog import migrations
from crashlog.events import Outcome, RoundSettled
from crashlog.projections import select

COLUMNS = ("event_id", "position", "bot_id", "session_id", "game", "platform", "game_round_id",
           "round_number", "strategy_name", "outcome", "stake", "cashout_multiplier",
           "crash_multiplier", "profit_loss", "occurred_at")

_SHAPE = """
SELECT c.relkind::text AS relkind, c.oid, c.relacl::text AS acl, pg_get_userbyid(c.relowner) AS owner,
       ARRAY(SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum) AS columns
FROM pg_class c WHERE c.oid = 'crashlog.round_outcomes'::regclass
"""


def settled(bot: str, n: int, win: bool) -> RoundSettled:
    return RoundSettled(
        bot_id=bot, session_id="s1", game="aviator", platform="demo", round_number=n,
        game_round_id=f"g{n}", strategy_name="fixed", stake=Decimal("10.00"),
        crash_multiplier=Decimal("2.45") if win else Decimal("1.10"),
        cashout_multiplier=Decimal("1.50") if win else None,
        outcome=Outcome.WIN if win else Outcome.LOSS,
        profit_loss=Decimal("5.00") if win else Decimal("-10.00"))


async def outcomes(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM crashlog.round_outcomes ORDER BY position")


async def test_a_rebuild_by_its_old_name_keeps_the_view_its_grants_and_a_users_view_over_it(dsn, conn):
    assert [p.name for p in select(["round_outcomes"])] == ["rounds"]
    async with crashlog.connect(dsn) as log:
        for n in range(12):
            await log.emit(settled(f"b{n % 3}", n, win=n % 4 != 0))
        await log.sync(timeout=30)
    await conn.execute("GRANT SELECT ON crashlog.round_outcomes TO PUBLIC")
    await conn.execute("CREATE VIEW public.my_wins AS SELECT bot_id, profit_loss"
                       " FROM crashlog.round_outcomes WHERE outcome = 'WIN'")
    before, rows = await conn.fetchrow(_SHAPE), await outcomes(conn)
    assert before["relkind"] == "v" and "=r/" in before["acl"]
    assert len(rows) == 12 and tuple(rows[0].keys()) == COLUMNS
    expected = await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM crashlog.rounds ORDER BY position")
    assert [tuple(r) for r in rows] == [tuple(r) for r in expected]

    await crashlog.projections.runner.rebuild(dsn, ["round_outcomes"])

    assert await conn.fetchrow(_SHAPE) == before  # the same view (oid), owner, grants, columns
    assert await outcomes(conn) == rows
    assert await conn.fetchval("SELECT count(*) FROM public.my_wins") == 9
    assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename LIKE '%rebuild'") == 0
    # The live projection goes on through the view: a new round shows up in it.
    async with crashlog.connect(dsn) as log:
        await log.emit(settled("b9", 99, win=True))
        await log.sync(timeout=30)
    assert len(await outcomes(conn)) == 13


async def test_the_migration_keeps_the_rows_and_the_select_grants_of_the_table(empty_dsn):
    conn = await asyncpg.connect(empty_dsn)
    try:
        every = migrations.load_migrations()
        await migrations.migrate(conn, [m for m in every if m.version < 16])
        await conn.execute(
            "INSERT INTO crashlog.round_outcomes (event_id, position, bot_id, game, platform,"
            " outcome, stake, crash_multiplier, profit_loss, occurred_at) VALUES"
            " (gen_random_uuid(), 1, 'b1', 'aviator', 'demo', 'WIN', 10, 2, 5, now())")
        await conn.execute("INSERT INTO crashlog.projection_checkpoints (name, version)"
                           " VALUES ('round_outcomes', 1) ON CONFLICT DO NOTHING")
        await conn.execute("GRANT SELECT ON crashlog.round_outcomes TO PUBLIC")
        table = await conn.fetchrow(_SHAPE)
        assert table["relkind"] == "r" and [c.split()[0] for c in table["columns"]] == list(COLUMNS)
        await migrations.migrate(conn, every)
        shape = await conn.fetchrow(_SHAPE)
        assert shape["relkind"] == "v" and "=r/" in shape["acl"]
        assert shape["columns"] == table["columns"]  # the same names, order and types
        # Its rows are those of rounds, which the rounds projection fills from the log.
        assert await conn.fetchval("SELECT count(*) FROM crashlog.round_outcomes") == 0
        assert await conn.fetchval("SELECT count(*) FROM crashlog.projection_checkpoints"
                                   " WHERE name = 'round_outcomes'") == 0
    finally:
        await conn.close()

