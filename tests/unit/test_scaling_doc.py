"""Reading the rules of docs/scaling.md: the two tables the schema test checks against."""

from __future__ import annotations

import pytest
from helpers import scaling

PLACED = """
### Where each table goes

| table | class | unique keys today | under Citus |
|---|---|---|---|
| `events` | distributed | `position`; `event_id` | keys with `bot_id` |
| `game_configs` | reference | `platform, game` | as is |
| `notes` | coordinator | none | as is |

Text after the table.
"""

ALLOWED = """
### Unique keys without `bot_id`

| index | table | columns | why it holds on one server | under Citus |
|---|---|---|---|---|
| `events_pkey` | `events` | `position` | one sequence | `(bot_id, position)` |
"""


def test_the_page_itself_reads() -> None:
    text = scaling.PAGE.read_text()
    placed, allowed = scaling.placements(text), scaling.exceptions(text)
    assert placed["round_multipliers"].keys == {("platform", "game", "game_round_id"), ("event_id",)}
    assert allowed["events_event_id_key"] == scaling.KeyException(
        "events_event_id_key", "events", ("event_id",))


def test_a_placement_has_its_class_and_its_keys() -> None:
    placed = scaling.placements(PLACED)
    assert list(placed) == ["events", "game_configs", "notes"]
    assert placed["events"] == scaling.Placement(
        "events", "distributed", frozenset({("position",), ("event_id",)}))
    assert placed["game_configs"].keys == {("platform", "game")}
    assert placed["notes"].keys == frozenset()


def test_an_exception_has_its_table_and_columns() -> None:
    assert scaling.exceptions(ALLOWED) == {
        "events_pkey": scaling.KeyException("events_pkey", "events", ("position",))}


@pytest.mark.parametrize(("text", "message"), [
    (PLACED.replace("| `game_configs` | reference", "| `game_configs` | replicated"),
     "class 'replicated' is not one of"),
    (PLACED.replace("| `notes` |", "| `events` |"), "table events is placed twice"),
    (PLACED.replace("| `notes` |", "| notes |"), "table 'notes' must be one name in backticks"),
    (PLACED.replace("| under Citus |", "| Citus |"), "must have the columns"),
    (PLACED.replace("| keys with `bot_id` |", "| |"), "none empty"),
    (PLACED.replace("`platform, game`", "platform, game"), "must be columns in backticks"),
    (PLACED.replace("### Where each table goes", "### Tables"), "has no section"),
])
def test_a_placement_table_the_parser_cannot_trust_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scaling.placements(text)


def test_an_exception_listed_twice_is_refused() -> None:
    row = ALLOWED.strip().splitlines()[-1]
    with pytest.raises(ValueError, match="events_pkey is listed twice"):
        scaling.exceptions(ALLOWED + row + "\n")
