"""``crashlog.fairness_records``: every provably-fair popup a bot recorded, with its checks.

Unlike the set-based handlers, this one reads the span's ``FairnessRecorded`` events into
Python: the checks are ``crashlog.fairness.check_spribe_record``, the same code a user calls,
so the table and the library can never disagree. These events come one per watched round at
most, so the round trip costs little.
"""

from __future__ import annotations

import asyncpg
import orjson

from crashlog.events import FairnessRecorded, decode_event
from crashlog.fairness import check_spribe_record, client_seeds, problems
from crashlog.projections.base import IN_SPAN, SKIP_KNOWN_EVENTS, Projection, Span, Tables

_EVENTS = f"""
SELECT e.event_id, e.position, e.bot_id, e.session_id, e.occurred_at, e.schema_version,
       e.payload::text AS payload
FROM {IN_SPAN} AND e.event_type = 'FairnessRecorded'
"""

_INSERT = f"""
INSERT INTO {{fairness_records}} (
    event_id, position, bot_id, session_id, platform, game, game_round_id, server_seed,
    server_seed_sha256, client_seeds, combined_sha512, hex, decimal, result, findings,
    problems, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::text::jsonb, $16, $17)
{SKIP_KNOWN_EVENTS}
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    rows = []
    for row in await conn.fetch(_EVENTS, *span):
        event = decode_event(
            "FairnessRecorded",
            row["schema_version"],
            bot_id=row["bot_id"],
            event_id=row["event_id"],
            occurred_at=row["occurred_at"],
            session_id=row["session_id"],
            payload=row["payload"],
        )
        assert isinstance(event, FairnessRecorded)
        findings = check_spribe_record(event)
        rows.append((
            event.event_id, row["position"], event.bot_id, event.session_id, event.platform,
            event.game, event.game_round_id, event.server_seed, event.server_seed_sha256,
            client_seeds(event), event.combined_sha512, event.hex, event.decimal, event.result,
            orjson.dumps([{"check": f.check, "status": f.status, "detail": f.detail}
                          for f in findings]).decode(),
            problems(findings), event.occurred_at,
        ))
    if rows:
        await conn.executemany(_INSERT.format(fairness_records=tables["fairness_records"]), rows)


PROJECTION = Projection(
    name="fairness_records",
    version=1,
    event_types=("FairnessRecorded",),
    tables=("fairness_records",),
    one_row_per_event=("fairness_records",),
    handler=apply,
)
