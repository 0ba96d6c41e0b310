"""``crashlog.exports`` without a database: the format follows the file's name, for the library
and the command line alike. (Exports read back from a database: tests/integration/test_exports.py.)"""

from __future__ import annotations

from crashlog import exports


def test_the_export_format_follows_the_file_name() -> None:
    assert exports.format_of("rounds.ndjson") == "jsonl"
    assert exports.format_of("ROUNDS.CSV") == "csv"
    assert exports.format_of("m.parquet", "csv") == "parquet"
    assert exports.format_of("-") == "jsonl"
    assert exports.format_of("rounds.txt", "json") == "json"
