"""The seed's own quick start, word for word: every ```python block of START_HERE.md runs
with one change (``backend.database`` -> ``crashlog.compat``) against a real server, and
prints what the seed says it prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

SEED = Path(
    os.environ.get("CRASHLOG_SEED")
    or Path(__file__).resolve().parents[2].parent / "shared" / "seed" / "START_HERE.md"
)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def seed_blocks() -> list[str]:
    """Every fenced Python block of the seed, with the one import substitution applied."""
    if not SEED.exists():
        pytest.skip(f"the seed's START_HERE.md is not at {SEED} (set CRASHLOG_SEED)")
    text = SEED.read_text(encoding="utf-8")
    return [m.group(1).replace("backend.database", "crashlog.compat") for m in BLOCK.finditer(text)]


def run(script: str, dsn: str, folder: Path) -> subprocess.CompletedProcess[str]:
    path = folder / "seed_examples.py"
    path.write_text(script, encoding="utf-8")
    env = dict(os.environ, CRASHLOG_DSN=dsn, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, str(path)], cwd=folder, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=240)


def test_the_seed_has_the_blocks_this_test_checks() -> None:
    blocks = seed_blocks()
    assert len(blocks) >= 8
    assert all("crashlog.compat" in b for b in blocks if "import" in b)
    assert not any("backend" in b for b in blocks)


async def test_every_block_of_the_seed_runs_and_prints_what_it_says(dsn: str, tmp_path: Path) -> None:
    done = run("\n".join(seed_blocks()), dsn, tmp_path)
    assert done.returncode == 0, f"the seed's examples failed:\n{done.stdout}\n{done.stderr}"
    out = done.stdout
    # Quick start: one WIN of 10.00 at 1.33x -> 100 % wins, $3.30, ROI 33 %.
    assert re.search(r"Round logged: [0-9a-f-]{36}\n", out)
    win_rates = [float(v) for v in re.findall(r"Win Rate: ([\d.]+)%", out)]
    assert win_rates == [100.0, 100.0]
    assert re.findall(r"Total Profit: \$([\d.]+)\n", out) == ["3.30", "3.30"]
    assert [float(v) for v in re.findall(r"ROI: ([\d.]+)%", out)] == [33.0]
    assert re.findall(r"Total Rounds: (\d+)", out) == ["1"]
    assert "Your database is live!" in out

    # Export for ML Training: the rows json.dump wrote, in time order.
    data = json.loads((tmp_path / "training_data.json").read_text())
    assert [row["multiplier"] for row in data] == [2.45, 2.45]
    assert [row["game"] for row in data] == ["aviator", "aviator"]
    assert data[0]["timestamp"] <= data[1]["timestamp"]

    # Register a Bot: a BotRegistered event, its session id kept.
    conn = await asyncpg.connect(dsn)
    try:
        bot = await conn.fetchrow("SELECT bot_name, vm_provider, region, strategy_name, initial_balance,"
                                  " metadata::text AS metadata FROM crashlog.bots WHERE bot_id = $1",
                                  "aviator_bot_001")
        events = await conn.fetchval("SELECT count(*) FROM crashlog.events WHERE event_type = 'BotRegistered'")
    finally:
        await conn.close()
    assert events == 1
    assert (bot["bot_name"], bot["vm_provider"], bot["region"], bot["strategy_name"]) == (
        "My Bot", "digitalocean", "nyc3", "compound_1.33x")
    assert str(bot["initial_balance"]) == "1000.00"
    assert json.loads(bot["metadata"]) == {"session_id": "session_001"}
