"""``crashlog bench``: run the benchmarks shipped with crashlog and print their tables.

The benchmarks are scripts in ``benchmarks/`` (inside the package when installed from a
wheel); each runs as its own process, in that folder, so it imports its ``_common``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from crashlog.cli.common import add_verb
from crashlog.cli.render import err, say
from crashlog.errors import CrashlogError
from crashlog.resources import resource_dir

if TYPE_CHECKING:
    from crashlog.cli.common import Verbs


# Benchmarks a run of all of them leaves out (name one to run it), and why.
ONLY_WHEN_NAMED = {
    "log_growth": "it grows a log to 10 million events (about 20 GB on the server, "
                  "a quarter of an hour or more)",
}


def register(verbs: Verbs) -> None:
    """Add ``bench`` to the parser."""
    bench = add_verb(
        verbs, "bench", "run the benchmarks in benchmarks/ and print their tables", cmd_bench
    )
    bench.add_argument(
        "names", nargs="*",
        help=f"benchmarks to run (default: all but {', '.join(sorted(ONLY_WHEN_NAMED))})",
    )
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    bench.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="ARG",
        help="argument passed to each benchmark (repeat), e.g. --extra=--events=20000",
    )


def benchmarks() -> list[Path]:
    """The benchmark scripts, by name (``_common.py`` and the like are not benchmarks)."""
    folder = resource_dir("benchmarks")
    scripts = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
    if not scripts:
        raise CrashlogError(f"no benchmarks found in {folder}")
    return scripts


async def cmd_bench(args: argparse.Namespace) -> int:
    scripts = benchmarks()
    if args.list:
        for script in scripts:
            say(script.stem)
        return 0
    unknown = set(args.names) - {s.stem for s in scripts}
    if unknown:
        known = ", ".join(s.stem for s in scripts)
        raise CrashlogError(f"unknown benchmark {sorted(unknown)[0]!r}; known: {known}")
    for script in [] if args.names else [s for s in scripts if s.stem in ONLY_WHEN_NAMED]:
        say(f"(not running {script.stem}: {ONLY_WHEN_NAMED[script.stem]}; name it to run it)",
            console=err)
    status = 0
    for script in chosen(scripts, args.names):
        code = await run_benchmark(script, args.dsn, args.extra)  # run each, keep the first failure
        status = status or code
    return status


def chosen(scripts: list[Path], names: list[str]) -> list[Path]:
    """The scripts to run: those named, else all but those in ``ONLY_WHEN_NAMED``."""
    if names:
        return [s for s in scripts if s.stem in names]
    return [s for s in scripts if s.stem not in ONLY_WHEN_NAMED]


async def run_benchmark(script: Path, dsn: str | None, extra: list[str]) -> int:
    """Run one benchmark script in its folder (``--dsn`` passed on); its exit status."""
    env = dict(os.environ)
    if dsn:
        env["CRASHLOG_DSN"] = dsn
    say(f"== {script.stem} ==", style="bold", console=err)
    command = [sys.executable, str(script), *(["--dsn", dsn] if dsn else []), *extra]
    completed = await asyncio.to_thread(subprocess.run, command, env=env, cwd=script.parent)
    return completed.returncode
