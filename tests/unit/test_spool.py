"""The spool on disk, without a database: acknowledged batches kept, a torn tail cut off, the
Spooler spooling while the server is down and replaying in order. (Replay into PostgreSQL:
tests/integration/test_spool_replay.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from helpers.spool import make_rows
from hypothesis import given
from hypothesis import strategies as st

from crashlog import store
from crashlog.spool import MAGIC, Spool, Spooler, SpoolError, SpoolFull, decode_batch, encode_batch, frame, read_records
from crashlog.store import Row


def read_all(spool: Spool) -> list[Row]:
    return [row for seg in spool.segments() for batch in spool.batches(seg) for row in batch]


def test_batches_come_back_exactly_as_written(folder):
    spool = Spool.open(folder)
    first, second = make_rows(3), make_rows(2, start=3)
    spool.append(first)
    spool.append(second)
    spool.close()
    again = Spool.open(folder)
    assert read_all(again) == first + second
    stats = again.stats()
    assert (stats.pending_segments, stats.torn_bytes) == (1, 0)
    again.close()


def test_each_process_writes_a_new_segment_and_counts_what_it_spooled(folder):
    spool = Spool.open(folder)
    spool.append(make_rows(4))
    spool.close()
    spool = Spool.open(folder)
    spool.append(make_rows(5))
    assert [p.name for p in spool.segments()] == ["000000000001.spool", "000000000002.spool"]
    assert (spool.stats().spooled_events, spool.stats().spooled_batches) == (5, 1)
    assert spool.pending_events == 9
    spool.close()


def test_segments_roll_over_at_their_size(folder):
    spool = Spool.open(folder, segment_bytes=2_000)
    rows = make_rows(60)
    for i in range(0, 60, 5):
        spool.append(rows[i : i + 5])
    assert len(spool.segments()) > 2
    assert read_all(spool) == rows
    spool.close()


@pytest.mark.parametrize("cut", [1, 5, 9, 40])
def test_a_torn_tail_is_cut_off_on_recovery_and_the_rest_kept(folder, cut):
    spool = Spool.open(folder)
    kept = make_rows(3) + make_rows(3, start=3)
    spool.append(kept[:3])
    spool.append(kept[3:])
    spool.append(make_rows(3, start=6))  # this one will be torn
    segment = spool.segments()[0]
    spool.close()
    whole = segment.stat().st_size
    with segment.open("r+b") as file:
        file.truncate(whole - cut)
    recovered = Spool.open(folder)
    assert read_all(recovered) == kept
    assert recovered.stats().torn_bytes > 0
    recovered.append(make_rows(1, start=100))  # and it keeps working
    assert len(read_all(recovered)) == 7
    recovered.close()


def test_a_tail_with_a_bad_checksum_is_cut_off(folder):
    spool = Spool.open(folder)
    spool.append(make_rows(2))
    spool.append(make_rows(2, start=2))
    segment = spool.segments()[0]
    spool.close()
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF  # a flipped byte in the last record's payload
    segment.write_bytes(bytes(data))
    recovered = Spool.open(folder)
    assert len(read_all(recovered)) == 2
    assert segment.stat().st_size < len(data)
    recovered.close()


def test_a_segment_cut_inside_its_header_is_dropped(folder):
    folder.mkdir()
    (folder / "000000000001.spool").write_bytes(b"CRASH")
    spool = Spool.open(folder)
    assert spool.segments() == []
    spool.close()


def test_a_foreign_file_is_refused_not_replayed(folder):
    folder.mkdir()
    (folder / "000000000001.spool").write_bytes(b"hello, this is not a spool segment")
    with pytest.raises(SpoolError, match="not a crashlog spool segment"):
        Spool.open(folder)


def test_the_byte_cap_raises_a_clear_error_and_writes_nothing(folder):
    spool = Spool.open(folder, max_bytes=3_000)
    spool.append(make_rows(5))
    before = spool.pending_events
    with pytest.raises(SpoolFull, match="spool_max_bytes") as caught:
        spool.append(make_rows(50))
    assert str(folder) in str(caught.value)
    assert spool.pending_events == before
    spool.append(make_rows(1))  # a batch that fits still goes in
    assert spool.pending_events == before + 1
    spool.close()


def test_one_process_at_a_time_owns_a_spool(folder):
    spool = Spool.open(folder)
    with pytest.raises(SpoolError, match="in use by another process"):
        Spool.open(folder)
    spool.close()
    Spool.open(folder).close()



def test_rows_keep_an_aware_time_in_utc_too(folder):
    spool = Spool.open(folder)
    row = make_rows(1)[0]._replace(occurred_at=datetime(2026, 5, 1, 12, 0, 0, 123456, UTC))
    spool.append([row])
    assert read_all(spool) == [row]
    spool.close()


class FakeServer:
    """Stores batches in a list; can be 'down' (every call raises, as a lost connection does)."""

    def __init__(self) -> None:
        self.up = True
        self.stored: list[Row] = []

    async def direct(self, batch: list[Row]) -> None:
        await asyncio.sleep(0)
        if not self.up:
            raise ConnectionRefusedError("the server is down")
        self.stored.extend(batch)

    async def idempotent(self, batch: list[Row]) -> None:
        await self.direct([r for r in batch if r not in self.stored])


async def wait_until(predicate, limit: float = 10.0) -> None:
    for _ in range(int(limit / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_the_spooler_spools_while_the_server_is_down_and_keeps_order(folder):
    server = FakeServer()
    spooler = Spooler(Spool.open(folder), server.idempotent)
    spooler.start()
    first, second, third = make_rows(3), make_rows(3, start=3), make_rows(3, start=6)
    server.up = False
    assert await spooler.write(first, server.direct) == "spooled"
    assert await spooler.write(second, server.direct) == "spooled"  # backlog: no direct try
    assert spooler.spool.pending_events == 6
    server.up = True
    # The replayer has not seen the server back yet: the batch may still be spooled, in order.
    assert await spooler.write(third, server.direct) in ("spooled", "committed")
    await wait_until(lambda: not spooler.backlog)
    fourth = make_rows(2, start=9)
    assert await spooler.write(fourth, server.direct) == "committed"
    assert server.stored == first + second + third + fourth  # the spool went first
    assert spooler.spool.is_empty()
    await spooler.close()


async def test_a_full_spool_holds_the_batch_until_there_is_room(folder):
    server = FakeServer()
    spooler = Spooler(Spool.open(folder, max_bytes=1_500), server.idempotent)
    server.up = False
    rows = make_rows(4)
    assert await spooler.write(rows, server.direct) == "spooled"
    late = asyncio.create_task(spooler.write(make_rows(8, start=4), server.direct))
    await asyncio.sleep(0.3)
    assert not late.done()  # not dropped, not acknowledged: waiting
    server.up = True
    assert await asyncio.wait_for(late, 15) in ("spooled", "committed")
    await wait_until(lambda: not spooler.backlog)
    assert len(server.stored) == 12 and server.stored[:4] == rows
    await spooler.close()


async def test_spill_sends_batches_to_the_spool_without_waiting_for_the_server(folder):
    server = FakeServer()
    spooler = Spooler(Spool.open(folder), server.idempotent)
    server.up = False
    spooler.spill()
    assert spooler.spill_event.is_set()
    assert await spooler.write(make_rows(2), server.direct) == "spooled"
    server.up = True
    await wait_until(lambda: not spooler.backlog)
    assert not spooler.spill_event.is_set() and len(server.stored) == 2
    await spooler.close()


async def test_a_new_owner_replays_what_an_earlier_one_left(folder):
    spool = Spool.open(folder)
    rows = make_rows(5)
    spool.append(rows)
    spool.close()
    server = FakeServer()
    spooler = Spooler(Spool.open(folder), server.idempotent)
    assert spooler.backlog
    spooler.start()
    await wait_until(lambda: not spooler.backlog)
    assert server.stored == rows
    await spooler.close()


KILLED_WRITER = """
import sys
from datetime import datetime, timezone
from uuid import UUID
from crashlog.spool import Spool
from crashlog.store import Row

spool = Spool.open(sys.argv[1], segment_bytes=3_000_000)
big = ('{"text":"%s"}' % ("z" * 20_000)).encode()
number = 0
while True:
    number += 1
    rows = [Row(UUID(int=number * 1000 + i), "OcrRead", 1, "b", None,
                datetime(2026, 1, 1, tzinfo=timezone.utc), big) for i in range(20)]
    spool.append(rows)
    print(number, flush=True)
"""


async def test_a_writer_killed_mid_append_leaves_every_acknowledged_batch_readable(folder):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_WRITER, str(folder), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    acknowledged = 0
    while acknowledged < 40:
        acknowledged = int(await asyncio.wait_for(process.stdout.readline(), 60))
    process.send_signal(signal.SIGKILL)  # most likely in the middle of a 400 KB write
    await process.wait()
    spool = Spool.open(folder)
    numbers = sorted({row.event_id.int // 1000 for row in read_all(spool)})
    assert numbers[: acknowledged] == list(range(1, acknowledged + 1))
    assert numbers == list(range(1, len(numbers) + 1))  # whole batches only, in order
    print(f"\nkilled after {acknowledged} acknowledged batches; recovered {len(numbers)}; "
          f"torn bytes cut: {spool.stats().torn_bytes}")
    spool.close()


# -- the disk format, without a database -------------------------------------------------------

_aware_times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, ZoneInfo("Europe/Berlin"), timezone(timedelta(hours=-3, minutes=-30))]),
)
_rows = st.builds(
    Row, st.uuids(), st.text(min_size=1, max_size=20), st.integers(-(2**15), 2**15 - 1),
    st.text(min_size=1, max_size=30), st.none() | st.text(max_size=30), _aware_times,
    st.text(max_size=60).map(lambda t: orjson.dumps({"text": t})),
)


@given(st.lists(_rows, max_size=8))
def test_a_batch_comes_back_from_its_encoding_exactly(batch: list[Row]) -> None:
    def in_utc(rows: list[Row]) -> list[Row]:
        # Compared as instants: Python never finds a time in a DST fold equal to one in
        # another zone, even the same instant.
        return [r._replace(occurred_at=r.occurred_at.astimezone(UTC)) for r in rows]

    again = decode_batch(encode_batch(batch))
    assert in_utc(again) == in_utc(batch)
    assert [r.occurred_at.utcoffset() == b.occurred_at.utcoffset() for r, b in zip(again, batch)] == [
        True] * len(batch)


@given(st.lists(st.binary(max_size=300), max_size=6), st.integers(min_value=1, max_value=400))
def test_records_read_back_up_to_a_torn_tail(payloads: list[bytes], cut: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        segment = Path(folder) / "000000000001.spool"
        whole = MAGIC + b"".join(frame(p) for p in payloads)
        segment.write_bytes(whole)
        assert read_records(segment) == (payloads, len(whole))
        last = frame(b"the record a crash cut short")
        segment.write_bytes(whole + last[: min(cut, len(last) - 1)])
        assert read_records(segment) == (payloads, len(whole))  # the torn record is not read


def test_the_disk_format_needs_neither_a_driver_nor_a_server(tmp_path: Path) -> None:
    """In a fresh interpreter where asyncpg cannot be imported at all. ``import crashlog``
    loads the logger, and the driver with it; the spool's own modules do not, so the package
    is entered without its ``__init__`` here."""
    package = Path(store.__file__).resolve().parent
    script = textwrap.dedent(f"""
        import sys, types
        sys.modules["asyncpg"] = None  # any import of the driver fails from here on
        bare = types.ModuleType("crashlog")
        bare.__path__ = [{str(package)!r}]
        sys.modules["crashlog"] = bare
        from datetime import datetime, timezone
        from uuid import uuid4
        from crashlog.rows import Row
        from crashlog.spool import Spool, decode_batch, read_records

        rows = [Row(uuid4(), "OcrRead", 1, "b1", None, datetime(2026, 1, 1, tzinfo=timezone.utc), b'{{}}')]
        spool = Spool.open({str(tmp_path / "spool")!r})
        spool.append(rows)
        spool.close()
        again = Spool.open({str(tmp_path / "spool")!r})
        [segment] = again.segments()
        records, _ = read_records(segment)
        assert [decode_batch(r) for r in records] == [rows], records
        assert "asyncpg" not in [m for m, v in sys.modules.items() if v is not None]
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(package.parent)}, cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
