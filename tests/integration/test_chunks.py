"""A rebuild's whole-table work in chunks of index keys: every row in exactly one chunk, and
rows sharing a key always in the same one."""

from __future__ import annotations

import pytest

from crashlog.projections.chunks import KeyRange, key_ranges


async def _rows_in(conn, chunk: KeyRange) -> list[tuple]:
    where, args = chunk.where(["a", "b"])
    # The caller's own condition again: a range bounds the key, it does not filter rows.
    rows = await conn.fetch(f"SELECT a, b, n FROM pg_temp.t WHERE b IS NOT NULL AND {where} ORDER BY n", *args)
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 100])
async def test_chunks_cover_every_row_once_and_never_split_a_key(conn, rows):
    await conn.execute("CREATE TEMP TABLE t (a text NOT NULL, b int, n serial)")
    # Keys repeated up to four times, some b NULL (left out by the caller's where).
    await conn.execute(
        "INSERT INTO pg_temp.t (a, b) SELECT chr(97 + i % 3), CASE WHEN i % 7 = 0 THEN NULL"
        " ELSE i % 5 END FROM generate_series(1, 40) i")
    chunks = await key_ranges(conn, "pg_temp.t", ("a", "b"), "b IS NOT NULL", rows=rows)
    assert chunks[0].lo is None and chunks[-1].hi is None
    seen = [await _rows_in(conn, chunk) for chunk in chunks]
    every = [tuple(r) for r in await conn.fetch("SELECT a, b, n FROM pg_temp.t WHERE b IS NOT NULL ORDER BY n")]
    assert sorted(r for chunk in seen for r in chunk) == sorted(every)
    homes = {}
    for i, chunk in enumerate(seen):
        for a, b, _ in chunk:
            assert homes.setdefault((a, b), i) == i, f"key {(a, b)} in chunks {homes[(a, b)]} and {i}"
    if rows == 1:
        assert len(chunks) > len(homes) // 2  # small chunks: many of them


def test_a_range_is_a_parameterised_predicate():
    assert KeyRange(None, None).where(["x"]) == ("true", [])
    assert KeyRange(("p", 1), None).where(["r.a", "r.b"]) == ("(r.a, r.b) > ($1, $2)", ["p", 1])
    assert KeyRange(("p", 1), ("q", 2)).where(["a", "b"]) == (
        "(a, b) > ($1, $2) AND (a, b) <= ($3, $4)", ["p", 1, "q", 2])


async def test_chunks_of_a_large_table_hold_about_the_rows_asked_for(conn):
    """Bounds placed from a sample: each chunk near its size, every row still in one."""
    await conn.execute("CREATE TEMP TABLE t (a text NOT NULL, b int, n serial)")
    await conn.execute(
        "INSERT INTO pg_temp.t (a, b) SELECT chr(97 + i % 3), i % 20000 FROM generate_series(1, 100000) i")
    await conn.execute("ANALYZE pg_temp.t")
    chunks = await key_ranges(conn, "pg_temp.t", ("a", "b"), "b IS NOT NULL", rows=20_000)
    sizes = []
    for chunk in chunks:
        where, args = chunk.where(["a", "b"])
        sizes.append(await conn.fetchval(f"SELECT count(*) FROM pg_temp.t WHERE {where}", *args))
    assert sum(sizes) == 100_000
    assert 4 <= len(chunks) <= 6
    assert all(size <= 30_000 for size in sizes), sizes
