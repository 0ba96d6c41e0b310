"""What an operator runs: /metrics of `crashlog project --follow`, logs as JSON lines, health
as JSON, the version, and a run as root without XDG_RUNTIME_DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from faults import free_port
from prometheus_client.parser import text_string_to_metric_families

import crashlog
from crashlog.events import BotErrorRaised
from crashlog.projections import ALIASES, NAMES

COMMAND = [sys.executable, "-m", "crashlog.cli"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in (env or os.environ).items() if k != "CRASHLOG_DSN"}
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout, env=environ)


async def emit_some(dsn: str, count: int = 50) -> None:
    async with crashlog.connect(dsn, project=False) as log:
        for n in range(count):
            await log.emit(BotErrorRaised(bot_id="ops", error_type="E", message=f"n{n}"))


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    families: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            families.setdefault(sample.name, []).append(sample)
    return families


async def test_metrics_of_a_running_follow_have_each_projections_lag(dsn: str) -> None:
    # Each projection once, and each old name (round_outcomes: part of rounds) with its values.
    exposed = {*NAMES, *ALIASES}
    await emit_some(dsn)
    port = free_port()
    follow = subprocess.Popen([*COMMAND, "project", "--follow", "--dsn", dsn, "--metrics-port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        found: dict[str, list] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                found = scrape(port)
            except OSError:
                found = {}
            lagging = {s.labels["projection"] for s in found.get("crashlog_projection_lag_events", [])}
            applied = sum(s.value for s in found.get("crashlog_projection_batches_applied_total", []))
            if lagging == exposed and applied >= len(NAMES):
                break
            time.sleep(0.2)
        assert follow.poll() is None, follow.stderr.read() if follow.stderr else ""
        lag = {s.labels["projection"]: s.value for s in found["crashlog_projection_lag_events"]}
        assert set(lag) == exposed  # each projection once: only its applier reports it
        seconds = {s.labels["projection"] for s in found["crashlog_projection_lag_seconds"]}
        assert seconds == exposed
        for name in ("crashlog_projection_errors_total", "crashlog_projection_skipped_events_total"):
            assert {s.labels["projection"] for s in found[name]} == exposed
            assert all(s.value == 0 for s in found[name])
        applied_to = {s.labels["projection"]: s for s in found["crashlog_projection_batches_applied_total"]}
        for old, new in ALIASES.items():
            assert applied_to[old].value == applied_to[new].value
            assert applied_to[old].labels.get("alias_of") == new
        applying = [s for s in found["crashlog_runner_state"] if s.labels["state"] == "applying"]
        assert applying and all(s.value == 1 for s in applying)
    finally:
        follow.terminate()
        follow.wait(timeout=30)


async def test_json_logs_of_a_rebuild_off_a_terminal_are_lines_with_their_figures(dsn: str) -> None:
    await emit_some(dsn, 120)
    # Global options after the verb, as before it.
    for args in (["--log-format", "json", "project", "--rebuild", "bot_errors", "--dsn", dsn],
                 ["project", "--rebuild", "bot_errors", "--dsn", dsn, "--log-format", "json"]):
        done = run(*args)
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]  # every line of stderr is one JSON object
        progress = [r for r in records if r["logger"] == "crashlog.progress"]
        assert progress, done.stderr
        assert all({"time", "level", "message", "task", "done", "total", "unit"} <= set(r) for r in progress)
        assert progress[-1]["done"] == progress[-1]["total"]
        assert done.stderr.endswith("\n")  # never a line without its newline


def test_text_logs_carry_the_figures_too(dsn: str) -> None:
    done = run("project", "--rebuild", "bot_errors", "--dsn", dsn, "--log-level", "info")
    assert done.returncode == 0, done.stderr
    assert "crashlog.progress" in done.stderr and " done=" in done.stderr and " total=" in done.stderr
    quiet = run("--log-level", "warning", "project", "--rebuild", "bot_errors", "--dsn", dsn)
    assert "crashlog.progress" not in quiet.stderr


async def test_doctor_json_fails_and_names_the_fix(empty_dsn: str, dsn: str) -> None:
    failed = run("doctor", "--json", "--dsn", empty_dsn)
    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    assert report["ok"] is False
    migrations = next(c for c in report["checks"] if c["name"] == "migrations")
    assert migrations["ok"] is False and "crashlog migrate" in migrations["detail"]
    healthy = run("doctor", "--json", "--dsn", dsn)
    assert healthy.returncode == 0, healthy.stdout
    report = json.loads(healthy.stdout)
    assert report["ok"] is True and all(set(c) == {"name", "ok", "detail"} for c in report["checks"])


async def test_lag_and_stats_as_json(dsn: str) -> None:
    await emit_some(dsn, 5)
    done = run("project", "--lag", "--json", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["projections"]
    assert {row["name"] for row in rows} >= set(NAMES)
    behind = {row["name"]: row["events_behind"] for row in rows}
    assert behind["bot_errors"] == 5  # nothing follows here: all 5 wait
    assert all(row["stopped"] is False and row["skipped_events"] == 0 for row in rows)
    stats = run("stats", "--json", "--dsn", dsn)
    assert stats.returncode == 0 and json.loads(stats.stdout) == []  # no round settled yet


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"crashlog {crashlog.__version__}"


_EMBEDDED = textwrap.dedent(
    """
    import os, sys, warnings
    warnings.simplefilter("default")  # show every warning, as a fresh interpreter would
    from crashlog.cli import main
    status = main(["migrate"])
    print("XDG_RUNTIME_DIR" in os.environ, status)
    """
)


@pytest.mark.slow
def test_a_run_without_xdg_runtime_dir_prints_no_warning_and_sets_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CRASHLOG_DSN", "CRASHLOG_TEST_DSN", "XDG_RUNTIME_DIR")}
    env["CRASHLOG_HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, "-c", _EMBEDDED], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].split() == ["False", "0"]  # the environment is left alone
    assert "Warning" not in done.stderr, done.stderr
