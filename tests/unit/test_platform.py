"""Every platform: import without fcntl, the spool's lock across processes, one spool folder
shared by the loggers of a host, and progress as log lines off a terminal."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crashlog import spool_folders
from crashlog.cli import render
from crashlog.events.uuid7 import uuid7
from crashlog.rows import Row
from crashlog.spool import Spool, SpoolError, inspect_folder

ROOT = Path(__file__).resolve().parents[2]

_BLOCKED_IMPORT = textwrap.dedent(
    """
    import importlib.abc, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name in ("fcntl", "termios"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.modules.pop("fcntl", None)
    sys.modules.pop("termios", None)
    sys.meta_path.insert(0, Blocker())
    import crashlog, crashlog.spool, crashlog.spool_folders, crashlog.writer, crashlog.cli
    assert "fcntl" not in sys.modules
    print(crashlog.Settings().batch_size)
    """
)


def run_python(code: str, *args: str, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, **options)  # type: ignore[call-overload]


def test_import_crashlog_works_without_fcntl() -> None:
    done = run_python(_BLOCKED_IMPORT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5000"


def rows(count: int, bot: str = "b1") -> list[Row]:
    now = datetime.now(UTC)
    return [Row(uuid7(), "BotErrorRaised", 1, bot, None, now, b'{"n": %d}' % i) for i in range(count)]


_HOLDER = textwrap.dedent(
    """
    import sys
    from crashlog.spool import Spool
    spool = Spool.open(sys.argv[1])
    print("held", flush=True)
    sys.stdin.readline()
    """
)


def test_a_spool_held_by_another_process_is_refused_until_it_ends(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(SpoolError, match="in use by another process"):
            Spool.open(folder)
    finally:
        holder.kill()  # dies holding it: the operating system releases the lock
        holder.wait(timeout=30)
    Spool.open(folder).close()


_DIES_SPOOLING = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    from crashlog import spool_folders
    from crashlog.events.uuid7 import uuid7
    from crashlog.rows import Row
    spool = spool_folders.claim(sys.argv[1])
    now = datetime.now(UTC)
    for batch in range(3):
        spool.append([Row(uuid7(), "BotErrorRaised", 1, "dead", None, now, b"{}") for _ in range(10)])
    print(spool.directory.name, flush=True)
    if sys.argv[2] == "die":
        os._exit(0)  # no close: as a killed bot leaves it
    sys.stdin.readline()
    """
)


def test_one_folder_serves_every_logger_of_a_host_and_dead_ones_are_replayed(tmp_path: Path) -> None:
    shared = tmp_path / "fleet"
    alive = subprocess.Popen([sys.executable, "-c", _DIES_SPOOLING, str(shared), "live"], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert alive.stdout is not None
        alive_folder = shared / alive.stdout.readline().strip()
        dead = run_python(_DIES_SPOOLING, str(shared), "die")  # beside the live one, then gone
        assert dead.returncode == 0, dead.stderr
        assert inspect_folder(shared / dead.stdout.strip()).events == 30
        first, second = spool_folders.claim(shared), spool_folders.claim(shared)
        try:
            assert first.directory != second.directory  # two loggers of one process
            # The dead process's 30 events are adopted once, by the first claim; the live
            # process's subfolder is left alone.
            assert (first.pending_events, second.pending_events) == (30, 0)
            assert not (shared / dead.stdout.strip()).exists()
            assert inspect_folder(alive_folder).events == 30
            assert [b[0].bot_id for s in first.segments() for b in first.batches(s)] == ["dead"] * 3
            first.append(rows(5))  # new batches come after the adopted ones
            assert [len(b) for s in first.segments() for b in first.batches(s)] == [10, 10, 10, 5]
            assert inspect_folder(shared).events == 30 + 30 + 5  # doctor sees every subfolder
        finally:
            first.close()
            second.close()
    finally:
        alive.kill()
        alive.wait(timeout=30)


def test_segments_at_the_top_of_a_shared_folder_are_adopted(tmp_path: Path) -> None:
    old = Spool.open(tmp_path / "spool")  # how a logger used the folder before subfolders
    old.append(rows(4))
    old.close()
    spool = spool_folders.claim(tmp_path / "spool")
    try:
        assert spool.pending_events == 4
        assert not list((tmp_path / "spool").glob("*.spool"))
    finally:
        spool.close()


def test_progress_off_a_terminal_is_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    assert not render.err.is_terminal  # pytest captures stderr
    caplog.set_level(logging.INFO, logger="crashlog.progress")
    with render.progress_bar("rebuilding all", "events") as bar:
        task = bar.add_task("rebuild", total=300)
        for done in (100, 200, 300):
            bar.update(task, completed=done)
    records = [r for r in caplog.records if r.name == "crashlog.progress"]
    # The first step at once, then at most one per PROGRESS_EVERY seconds, and the end.
    assert records[0].done == 100 and records[-1].done == 300  # type: ignore[attr-defined]
    assert all(r.total == 300 and r.unit == "events" for r in records)  # type: ignore[attr-defined]
    assert all("\n" not in r.getMessage() and "\r" not in r.getMessage() for r in records)
