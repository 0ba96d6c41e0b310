"""``crashlog.ocr_readings``: every screen reading a bot made."""

from __future__ import annotations

import asyncpg

from crashlog.projections.base import (
    IN_SPAN,
    SKIP_KNOWN_EVENTS,
    Projection,
    ReadTable,
    Span,
    Tables,
    bigint,
    float8,
    numeric,
    text,
)

_INSERT = f"""
INSERT INTO {{ocr_readings}} (
    event_id, position, bot_id, session_id, field, raw_text, parsed_value, confidence,
    latency_ms, occurred_at)
SELECT e.event_id, e.position, e.bot_id, e.session_id, {text('field')}, {text('raw_text')},
       {numeric('parsed_value')}, {float8('confidence')}, {bigint('latency_ms')}, e.occurred_at
FROM {IN_SPAN} AND e.event_type = 'OcrRead'
{SKIP_KNOWN_EVENTS}
"""


async def apply(conn: asyncpg.Connection, tables: Tables, span: Span) -> None:
    await conn.execute(_INSERT.format(ocr_readings=tables["ocr_readings"]), *span)


PROJECTION = Projection(
    name="ocr_readings",
    version=1,
    event_types=("OcrRead",),
    tables=("ocr_readings",),
    weight=2,
    one_row_per_event=("ocr_readings",),
    handler=apply,
    reads={"OcrRead": 1},
    read_tables=(ReadTable("ocr_readings", time="occurred_at", order=("occurred_at", "position")),),
)
