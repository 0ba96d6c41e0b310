"""The migrated schema keeps the rules docs/scaling.md states for distributing it with Citus:
every table placed, every distributed table keyed by bot_id but for the listed exceptions.

The rules are read from the page (helpers.scaling), so the page and these checks are one; each
test below that changes the schema shows a rule catching what it is there to catch."""

from __future__ import annotations

import asyncpg
import attrs
from helpers import scaling

TEXT = scaling.PAGE.read_text()
PLACED = scaling.placements(TEXT)
ALLOWED = scaling.exceptions(TEXT)


async def violations(conn: asyncpg.Connection, placed: dict[str, scaling.Placement] = PLACED,
                     allowed: dict[str, scaling.KeyException] = ALLOWED) -> list[str]:
    return await scaling.violations(conn, placed, allowed)


async def test_the_migrated_schema_keeps_the_rules_docs_scaling_states(conn: asyncpg.Connection) -> None:
    found = await violations(conn)
    assert found == [], "docs/scaling.md and the schema disagree:\n" + "\n".join(found)


def test_the_page_places_the_log_and_the_shared_tables_as_the_plan_says() -> None:
    kinds = {t: p.kind for t, p in PLACED.items()}
    assert kinds["events"] == "distributed"
    assert kinds["game_configs"] == "reference"
    assert kinds["round_multipliers"] == "merged"
    assert {"events_pkey", "events_event_id_key", "rounds_pkey"} <= ALLOWED.keys()


async def test_a_new_table_fails_until_the_page_places_it(conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE TABLE crashlog.fleet_notes (bot_id text NOT NULL, note text)")
    found = await violations(conn)
    assert len(found) == 1 and "crashlog.fleet_notes is not in docs/scaling.md" in found[0]


async def test_a_unique_index_without_bot_id_on_a_distributed_table_fails_naming_it(
        conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE UNIQUE INDEX rounds_one_per_game_round"
                       " ON crashlog.rounds (platform, game, game_round_id, event_id)")
    found = await violations(conn)
    named = [v for v in found if "rounds_one_per_game_round" in v]
    assert len(named) == 1 and "does not include bot_id" in named[0], found


async def test_a_unique_index_with_bot_id_only_has_to_be_listed(conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE UNIQUE INDEX rounds_per_bot_round"
                       " ON crashlog.rounds (bot_id, game, round_number)")
    found = await violations(conn)
    assert len(found) == 1, found
    assert "crashlog.rounds: docs/scaling.md says its unique keys are" in found[0]
    assert "('bot_id', 'game', 'round_number')" in found[0]


async def test_an_exception_that_gained_bot_id_must_leave_the_list(conn: asyncpg.Connection) -> None:
    # What the migration that prepares a cluster does to each one-row-per-event table.
    await conn.execute("ALTER TABLE crashlog.ocr_readings DROP CONSTRAINT ocr_readings_pkey,"
                       " ADD PRIMARY KEY (bot_id, event_id)")
    found = await violations(conn)
    assert any("lists ocr_readings_pkey among the unique keys without bot_id" in v for v in found), found


async def test_a_distributed_table_needs_a_bot_id_that_is_never_null(conn: asyncpg.Connection) -> None:
    placed = dict(PLACED, game_configs=attrs.evolve(PLACED["game_configs"], kind="distributed"))
    found = await violations(conn, placed)
    assert "distributed table crashlog.game_configs has no bot_id column to be distributed by" in found
    assert any("unique index game_configs_pkey" in v for v in found), found

    await conn.execute("CREATE TABLE crashlog.fleet_notes (bot_id text, note text)")
    placed = dict(PLACED, fleet_notes=scaling.Placement("fleet_notes", "distributed", frozenset()))
    found = await violations(conn, placed)
    assert found == ["distributed table crashlog.fleet_notes: bot_id may be NULL, and Citus"
                     " refuses a NULL distribution value"]


async def test_a_reference_or_merged_table_has_no_bot_id(conn: asyncpg.Connection) -> None:
    placed = dict(PLACED, bots=attrs.evolve(PLACED["bots"], kind="reference"))
    assert await violations(conn, placed) == [
        "reference table crashlog.bots has a bot_id column: its rows are per bot, so it is"
        " distributed (or the page says why not)"]


async def test_a_placed_table_the_schema_lost_fails(conn: asyncpg.Connection) -> None:
    placed = dict(PLACED, round_readings=scaling.Placement("round_readings", "distributed", frozenset()))
    assert await violations(conn, placed) == [
        "docs/scaling.md places round_readings, which is not a table of schema crashlog:"
        " remove its row"]


async def test_a_view_over_a_merged_table_fails(conn: asyncpg.Connection) -> None:
    await conn.execute("""
        CREATE VIEW crashlog.rounds_agreed AS
        SELECT r.event_id, m.multiplier FROM crashlog.rounds r
        JOIN crashlog.round_multipliers m USING (platform, game, game_round_id)""")
    found = await violations(conn)
    assert len(found) == 1, found
    assert found[0].startswith("view crashlog.rounds_agreed reads round_multipliers (merged)")


async def test_a_users_projection_tables_are_its_own(conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE TABLE crashlog.hourly_busts (hour timestamptz PRIMARY KEY)")
    assert len(await violations(conn)) == 1
    await conn.execute("INSERT INTO crashlog.projection_checkpoints (name, version, tables)"
                       " VALUES ('hourly_busts', 1, '{hourly_busts}')")
    assert await violations(conn) == []



async def test_a_unique_index_on_an_expression_is_named_too(conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE UNIQUE INDEX bot_errors_message ON crashlog.bot_errors (md5(message))")
    found = [v for v in await violations(conn) if "bot_errors_message" in v]
    assert found == ["unique index bot_errors_message on distributed table crashlog.bot_errors"
                     " ((expression)) does not include bot_id: add bot_id to it, or list it under"
                     " \"Unique keys without `bot_id`\" with why and what changes under Citus"]
