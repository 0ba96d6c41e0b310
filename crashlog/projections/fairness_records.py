"""``crashlog.fairness_records``: every provably-fair popup a bot recorded, with its checks.

Unlike the set-based handlers, this one reads the span's ``FairnessRecorded`` events into
Python: the checks are ``crashlog.fairness.check_spribe_record``, the same code a user calls,
so the table and the library can never disagree. These events come one per watched round at
most, so the round trip costs little.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import attrs
import orjson

from crashlog.errors import InvalidEvent
from crashlog.events import FairnessRecorded, decode_event
from crashlog.fairness import Finding, check_spribe_record, client_seeds, problems
from crashlog.projections.base import IN_SPAN, SKIP_KNOWN_EVENTS, Projection, ReadTable, Span, Tables

_EVENTS = f"""
SELECT e.event_id, e.position, e.bot_id, e.session_id, e.occurred_at, e.schema_version,
       e.payload::text AS payload
FROM {IN_SPAN} AND e.event_type = 'FairnessRecorded'
"""

_RECORDED = """
SELECT platform, game, game_round_id, bot_id, result, findings::text AS findings, problems
FROM crashlog.fairness_records
WHERE ($1::text IS NULL OR game = $1) AND ($2::text IS NULL OR platform = $2)
ORDER BY occurred_at, event_id
"""

_INSERT = f"""
INSERT INTO {{fairness_records}} (
    event_id, position, bot_id, session_id, platform, game, game_round_id, server_seed,
    server_seed_sha256, client_seeds, combined_sha512, hex, decimal, result, findings,
    problems, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::text::jsonb, $16, $17)
{SKIP_KNOWN_EVENTS}
"""


def _decode(row: asyncpg.Record) -> FairnessRecorded:
    """The event a row records; ``InvalidEvent`` if its payload is not one (a row written
    by something else than the SDK: a list, a string), so that the runner skips it."""
    try:
        event = decode_event(
            "FairnessRecorded",
            row["schema_version"],
            bot_id=row["bot_id"],
            event_id=row["event_id"],
            occurred_at=row["occurred_at"],
            session_id=row["session_id"],
            payload=row["payload"],
        )
    except InvalidEvent:
        raise
    except (TypeError, ValueError, AttributeError) as error:
        raise InvalidEvent("payload", row["payload"], f"is not a FairnessRecorded: {error}") from None
    assert isinstance(event, FairnessRecorded)
    return event


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    rows = []
    for row in await conn.fetch(_EVENTS, *span):
        event = _decode(row)
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
    reads={"FairnessRecorded": 1},
    read_tables=(ReadTable("fairness_records", time="occurred_at", order=("occurred_at", "position")),),
)


# -- reading the table back --------------------------------------------------------------


@attrs.frozen
class CheckedRecord:
    """One recorded popup as the table keeps it: where it was seen and what its checks said."""

    platform: str
    game: str
    game_round_id: str | None
    bot_id: str
    result: Decimal | None
    findings: tuple[Finding, ...]
    problems: tuple[str, ...]  # the checks that came out mismatch or unconfirmed

    @property
    def failed(self) -> tuple[Finding, ...]:
        """The findings of the checks named in ``problems``, in the order they were checked."""
        return tuple(f for f in self.findings if f.check in self.problems)


@attrs.frozen
class SpribeSummary:
    """Every recorded popup of a game and platform (or all), in the order they were recorded."""

    records: tuple[CheckedRecord, ...]

    def statuses(self) -> dict[str, dict[str, int]]:
        """Per check (in the order first checked): how many records came out in each status."""
        counts: dict[str, dict[str, int]] = {}
        for record in self.records:
            for finding in record.findings:
                by_status = counts.setdefault(finding.check, {})
                by_status[finding.status] = by_status.get(finding.status, 0) + 1
        return counts


async def spribe_summary(
    conn: asyncpg.Connection, *, game: str | None = None, platform: str | None = None
) -> SpribeSummary:
    """The checked popups in ``crashlog.fairness_records`` (as projected so far), of ``game``
    and ``platform`` when given."""
    rows = await conn.fetch(_RECORDED, game, platform)
    return SpribeSummary(tuple(
        CheckedRecord(
            row["platform"], row["game"], row["game_round_id"], row["bot_id"], row["result"],
            tuple(Finding(**f) for f in orjson.loads(row["findings"])), tuple(row["problems"]),
        )
        for row in rows
    ))
