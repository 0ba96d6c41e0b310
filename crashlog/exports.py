"""Exports of the read tables as JSON lines, a JSON array, CSV or Parquet, streamed.

Rows come through a server-side cursor inside one read-only, repeatable-read transaction
(one consistent snapshot; ``crashlog.streaming``), ``CHUNK`` rows at a time, and are written
as they come: memory stays flat however many rows there are. Rows are in time order.

Values keep their exactness: decimals are written as text in JSON and CSV
(``"2.45"``, as the event log stores them) and as ``decimal128(38, 12)`` in Parquet
(a value that does not fit, e.g. 13 decimal places, raises ``InvalidRead``, a ``ValueError``,
naming the column and the value rather than being rounded; ``crashlog.arrow``);
times are ISO 8601 UTC; ``metadata`` is the JSON object itself (in CSV, its text).

``export_multipliers(..., features=FeatureSpec())`` is the export to train a model on: each
round keyed as in the table, with its label ``hit`` and the baseline ``rtp / target`` a model
must beat, and features computed from earlier rounds only (``crashlog.features``), as the
rows stream by. ``exclude_flagged`` leaves out the rounds with quality flags.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from contextlib import ExitStack, aclosing
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import asyncpg
import orjson

from crashlog import arrow, streaming
from crashlog.features import SOURCE_COLUMNS, FeatureSpec, FeatureStream
from crashlog.projections import round_multipliers, rounds
from crashlog.streaming import stream_chunks
from crashlog.tables import Column, Query

FORMATS = ("jsonl", "json", "csv", "parquet")
#: Rows fetched and written per step.
CHUNK = streaming.CHUNK
#: Parquet decimal type: 26 digits before the point, 12 after (money to sub-cent precision).
DECIMAL_PRECISION, DECIMAL_SCALE = arrow.DECIMAL_PRECISION, arrow.DECIMAL_SCALE


Progress = Callable[[int], None]
#: Turns one fetched chunk of rows into the rows to write (it may leave some out).
Transform = Callable[[list[asyncpg.Record]], Sequence[Sequence[Any]]]

#: The columns of each export, with their kinds, as the projection owning the table lists them.
ROUND_COLUMNS: tuple[tuple[str, str], ...] = rounds.COLUMNS
MULTIPLIER_COLUMNS: tuple[tuple[str, str], ...] = round_multipliers.COLUMNS

#: File name extensions and the format each one means (``format_of``).
EXTENSIONS: dict[str, str] = {
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "json",
    "csv": "csv",
    "parquet": "parquet",
}


def format_of(path: str | Path, default: str = "jsonl") -> str:
    """The export format a file name asks for by its extension (``.jsonl`` and ``.ndjson``:
    JSON lines; ``.json``, ``.csv``, ``.parquet``), else ``default``."""
    return EXTENSIONS.get(Path(path).suffix.lower().lstrip("."), default)


def _select(columns: Sequence[tuple[str, str]]) -> str:
    # jsonb and uuid as text: the export does not depend on the connection's codecs.
    return ", ".join(
        f"{name}::text AS {name}" if kind in ("json", "uuid") else name for name, kind in columns
    )


# Each export's rows and, with the same filters, their count (for progress bars).
_ROUNDS_WHERE = """
WHERE ($1::text IS NULL OR bot_id = $1)
  AND ($2::text IS NULL OR game = $2)
  AND ($3::text IS NULL OR platform = $3)
"""
_ROUNDS = f"""
SELECT {_select(ROUND_COLUMNS)} FROM crashlog.rounds {_ROUNDS_WHERE}
ORDER BY occurred_at, position
"""
_COUNT_ROUNDS = f"SELECT count(*) FROM crashlog.rounds {_ROUNDS_WHERE}"

_MULTIPLIERS_WHERE = """
WHERE ($1::text IS NULL OR game = $1)
  AND ($2::text IS NULL OR platform = $2)
  AND (NOT $3::boolean OR quality_flags = '{}')
"""
_MULTIPLIERS = f"""
SELECT {_select(MULTIPLIER_COLUMNS)} FROM crashlog.round_multipliers {_MULTIPLIERS_WHERE}
ORDER BY first_seen_at, first_position
"""
_COUNT_MULTIPLIERS = f"SELECT count(*) FROM crashlog.round_multipliers {_MULTIPLIERS_WHERE}"

# Every round, flagged or not: the features of a round depend on all the earlier ones.
_ML_SOURCE = f"""
SELECT {", ".join(f"{c}::text AS {c}" if c == "event_id" else c for c in SOURCE_COLUMNS)}
FROM crashlog.round_multipliers
WHERE ($1::text IS NULL OR game = $1)
  AND ($2::text IS NULL OR platform = $2)
ORDER BY first_seen_at, first_position
"""


async def export_rounds(
    conn: asyncpg.Connection | asyncpg.Pool,
    out: str | Path | IO[bytes],
    format: str = "jsonl",
    *,
    bot_id: str | None = None,
    game: str | None = None,
    platform: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the settled rounds (``crashlog.rounds``, optionally filtered) to ``out``, in
    time order; returns how many rows were written. ``out`` is a path or a binary file."""
    return await export_query(
        conn, _ROUNDS, (bot_id, game, platform), ROUND_COLUMNS, out, format, progress
    )


async def export_multipliers(
    conn: asyncpg.Connection | asyncpg.Pool,
    out: str | Path | IO[bytes],
    format: str = "jsonl",
    *,
    game: str | None = None,
    platform: str | None = None,
    exclude_flagged: bool = False,
    features: FeatureSpec | None = None,
    progress: Progress | None = None,
) -> int:
    """Write one row per game round (``crashlog.round_multipliers``) to ``out``, in the
    order the rounds were first seen: the series to train a model on. Returns the row count.

    ``exclude_flagged`` leaves out rounds with quality flags. With ``features`` the rows
    are ``crashlog.features.ml_columns(features)``: label, baseline, PIT and leak-free
    features, a flagged round still counting as history of the rounds after it; ``progress``
    then counts the rounds read."""
    if features is None:
        return await export_query(
            conn,
            _MULTIPLIERS,
            (game, platform, exclude_flagged),
            MULTIPLIER_COLUMNS,
            out,
            format,
            progress,
        )
    stream = FeatureStream(features, exclude_flagged=exclude_flagged)
    return await export_query(
        conn, _ML_SOURCE, (game, platform), stream.columns, out, format, progress, stream.batch
    )


async def export_table(
    conn: asyncpg.Connection | asyncpg.Pool,
    query: Query,
    out: str | Path | IO[bytes],
    format: str = "jsonl",
    progress: Progress | None = None,
) -> int:
    """Write the rows of a reader's query (``crashlog.tables.build``: any read table or the
    log, its filters, bounds and columns already checked) to ``out``, in the table's order.
    Returns the rows written. ``AsyncReader.export`` and ``crashlog export TABLE`` use it."""
    columns = [(c.name, c.kind) for c in query.columns]
    return await export_query(conn, query.select(), query.args, columns, out, format, progress)


async def count_rows(conn: asyncpg.Connection | asyncpg.Pool, what: str, **filters: Any) -> int:
    """How many rows ``export_rounds``/``export_multipliers`` would read (for progress bars):
    the rows written, except that an export with ``features`` reads the flagged rounds too."""
    args: tuple[Any, ...]
    if what == "rounds":
        query = _COUNT_ROUNDS
        args = (filters.get("bot_id"), filters.get("game"), filters.get("platform"))
    else:
        query = _COUNT_MULTIPLIERS
        exclude = bool(filters.get("exclude_flagged")) and filters.get("features") is None
        args = (filters.get("game"), filters.get("platform"), exclude)
    return int(await conn.fetchval(query, *args))


async def export_query(
    conn: asyncpg.Connection | asyncpg.Pool,
    query: str,
    args: Sequence[Any],
    columns: Sequence[tuple[str, str]],
    out: str | Path | IO[bytes],
    format: str,
    progress: Progress | None = None,
    transform: Transform | None = None,
) -> int:
    """Stream ``query`` (whose columns are ``columns``, or after ``transform`` of each chunk)
    into ``out`` as ``format``; returns the rows written. ``progress`` gets the rows read."""
    if format not in FORMATS:
        raise ValueError(f"invalid format={format!r}: must be one of {', '.join(FORMATS)}")
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as connection:
            return await export_query(
                connection, query, args, columns, out, format, progress, transform
            )
    with ExitStack() as stack:
        stream = out if hasattr(out, "write") else stack.enter_context(open(out, "wb"))  # type: ignore[arg-type]
        writer = _WRITERS[format](stream, columns)  # type: ignore[arg-type]
        stack.callback(writer.close)  # also on an error: no writer left open
        read = written = 0
        async with aclosing(stream_chunks(conn, query, args, chunk=CHUNK)) as chunks:
            async for rows in chunks:
                read += len(rows)
                out_rows = rows if transform is None else transform(rows)
                if out_rows:
                    writer.write(out_rows)
                written += len(out_rows)
                if progress is not None:
                    progress(read)
    return written


# -- writers ------------------------------------------------------------------------------


def _plain(value: Decimal) -> str:
    """A decimal in positional notation: ``0.0000000000001``, never ``1E-13``."""
    return format(value, "f")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _plain(value)
    raise TypeError(f"cannot export {type(value).__name__}")


class _JsonLines:
    def __init__(self, stream: IO[bytes], columns: Sequence[tuple[str, str]]) -> None:
        self.stream = stream
        self.names = [name for name, _ in columns]
        self.json_columns = [name for name, kind in columns if kind == "json"]

    def record(self, row: Sequence[Any]) -> bytes:
        values = dict(zip(self.names, row, strict=True))
        for name in self.json_columns:
            if values[name] is not None:
                values[name] = orjson.Fragment(values[name])
        return orjson.dumps(values, default=_json_default)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        self.stream.write(b"".join(self.record(row) + b"\n" for row in rows))

    def close(self) -> None:
        self.stream.flush()


class _JsonArray(_JsonLines):
    """One JSON array (what the old ``export_rounds_to_json`` wrote), still streamed."""

    def __init__(self, stream: IO[bytes], columns: Sequence[tuple[str, str]]) -> None:
        super().__init__(stream, columns)
        self.first = True
        stream.write(b"[")

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        parts = [self.record(row) for row in rows]
        head = b"\n" if self.first else b",\n"
        self.first = False
        self.stream.write(head + b",\n".join(parts))

    def close(self) -> None:
        self.stream.write(b"\n]\n" if not self.first else b"]\n")
        self.stream.flush()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return _plain(value)
    if isinstance(value, list):
        return orjson.dumps(value).decode()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class _Csv:
    def __init__(self, stream: IO[bytes], columns: Sequence[tuple[str, str]]) -> None:
        self.stream = stream
        self.write_text([[name for name, _ in columns]])

    def write_text(self, rows: list[list[Any]]) -> None:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        self.stream.write(text.getvalue().encode())

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        self.write_text([[_csv_cell(value) for value in row] for row in rows])

    def close(self) -> None:
        self.stream.flush()


class _Parquet:
    """Parquet with the reader's Arrow schema (``crashlog.arrow``): decimals as
    ``decimal128(38, 12)``, times as UTC timestamps, JSON as its text."""

    def __init__(self, stream: IO[bytes], columns: Sequence[tuple[str, str]]) -> None:
        arrow.require()
        import pyarrow.parquet as pq

        self.columns = [Column(name, kind) for name, kind in columns]
        self.schema = arrow.schema(self.columns)
        self.writer = pq.ParquetWriter(stream, self.schema)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        batch = arrow.record_batch(rows, self.columns, self.schema, "the Parquet export")
        self.writer.write_batch(batch)

    def close(self) -> None:
        self.writer.close()


_WRITERS: dict[str, Any] = {
    "jsonl": _JsonLines,
    "json": _JsonArray,
    "csv": _Csv,
    "parquet": _Parquet,
}
