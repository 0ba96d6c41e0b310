"""``crashlog bench`` (cli/bench.py) run as a user runs it: from the source tree, and from the
layout a wheel installs (sql/ and benchmarks/ inside the package, found by
``resources.resource_dir``), where a missing folder is a clear error. (``resource_dir`` alone:
tests/unit/test_resources.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.resources import SOURCE

from crashlog.cli.bench import ONLY_WHEN_NAMED, chosen

# The scripts in benchmarks/, by name (_common.py is shared code, not a benchmark).
BENCHMARKS = sorted(p.stem for p in (SOURCE / "benchmarks").glob("[!_]*.py"))


def crashlog_in(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m crashlog.cli ARGS`` importing crashlog from ``site`` only, run from ``site``."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "crashlog.cli", *args], cwd=site, env=env,
                          capture_output=True, text=True, timeout=60)


def test_bench_lists_the_benchmarks_from_the_source_tree() -> None:
    done = crashlog_in(SOURCE, "bench", "--list")
    assert done.returncode == 0, done.stderr
    assert "write_throughput" in BENCHMARKS and done.stdout.split() == BENCHMARKS


def test_a_run_of_all_leaves_out_those_run_only_when_named() -> None:
    """``crashlog bench`` alone does not grow a log to 10 million events; named, it does."""
    scripts = [SOURCE / "benchmarks" / f"{name}.py" for name in BENCHMARKS]
    everything = [s.stem for s in chosen(scripts, [])]
    assert "log_growth" in BENCHMARKS and "log_growth" in ONLY_WHEN_NAMED
    assert everything == [n for n in BENCHMARKS if n not in ONLY_WHEN_NAMED]
    assert [s.stem for s in chosen(scripts, ["log_growth", "reader"])] == ["log_growth", "reader"]


def test_an_installed_package_uses_the_folders_inside_it(tmp_path: Path) -> None:
    """The layout a wheel installs: sql/ and benchmarks/ inside crashlog/, nothing beside it."""
    package = tmp_path / "crashlog"
    shutil.copytree(SOURCE / "crashlog", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SOURCE / "sql", package / "sql")
    shutil.copytree(SOURCE / "benchmarks", package / "benchmarks")
    done = crashlog_in(tmp_path, "bench", "--list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == BENCHMARKS
    where = subprocess.run(
        [sys.executable, "-c", "from crashlog.resources import resource_dir as r; "
         "print(r('sql')); print(r('benchmarks'))"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True,
        text=True, check=True,
    )
    assert where.stdout.split() == [str(package / "sql"), str(package / "benchmarks")]
    # A shipped benchmark still finds its _common when run from the shipped folder.
    helped = subprocess.run(
        [sys.executable, str(package / "benchmarks" / "rebuild_each.py"), "--help"],
        cwd=package / "benchmarks", env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )
    assert helped.returncode == 0 and "--dsn" in helped.stdout, helped.stderr


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    package = tmp_path / "crashlog"
    shutil.copytree(SOURCE / "crashlog", package, ignore=shutil.ignore_patterns("__pycache__"))
    done = crashlog_in(tmp_path, "bench", "--list")
    assert done.returncode == 1
    assert "benchmarks/ folder is missing" in done.stderr and str(package / "benchmarks") in done.stderr
