"""Users' projections the tests register (also by ``--with helpers.user_projections:NAME``)."""

from __future__ import annotations

from crashlog.events import RoundSettled
from crashlog.projections import Batch, projection

_COUNT = """
INSERT INTO {t} (bot_id, rounds) SELECT bot, count(*) FROM unnest($1::text[]) AS b(bot)
GROUP BY bot
ON CONFLICT (bot_id) DO UPDATE SET rounds = {t}.rounds + EXCLUDED.rounds
"""


def rounds_per_bot(version: int = 1, name: str = "bot_rounds", *, extra_column: bool = False,
                   on_error: str = "stop"):
    """Rounds settled per bot, counted in Python and upserted: what the built-in ``rounds``
    holds per bot."""
    columns = "bot_id text PRIMARY KEY, rounds bigint NOT NULL"
    if extra_column:
        columns += ", note text"

    @projection(name, version=version, events=[RoundSettled], on_error=on_error,  # type: ignore[arg-type]
                tables={name: columns}, indexes={name: ["(rounds)"]})
    async def handle(batch: Batch) -> None:
        await batch.conn.execute(_COUNT.format(t=batch.table(name)), [e.bot_id for e in batch.events])
    return handle


def refusing(name: str, on_error: str, bad_stake: str):
    """Records each round's stake in a table that refuses ``bad_stake`` (a CHECK: 23514)."""
    @projection(name, version=1, events=[RoundSettled], on_error=on_error,  # type: ignore[arg-type]
                tables={name: f"event_id uuid PRIMARY KEY, stake numeric CHECK (stake <> {bad_stake})"})
    async def handle(batch: Batch) -> None:
        await batch.conn.executemany(
            f"INSERT INTO {batch.table(name)} VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(e.event_id, e.stake) for e in batch.events])
    return handle


bot_rounds = rounds_per_bot()
not_a_projection = 42
