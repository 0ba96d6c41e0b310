"""``crashlog report``: the HTML file, opened in a real headless chromium (tests/helpers/browser.py),
loads with no request leaving the machine, holds every section, and draws every chart; bad input
gets a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.browser import browser
from helpers.report_data import record

import crashlog

SECTIONS = ("fleet", "bankroll", "multipliers", "quality", "signals", "operations")
ROOT = Path(crashlog.__file__).resolve().parent.parent

# Per chart in the page: its kind, its title, its sentence, its axis labels, and the points of
# each drawn series (polyline) — what a reader sees, as the browser laid it out.
CHARTS_JS = """
[...document.querySelectorAll('figure.chart')].map(f => ({
  kind: f.dataset.kind,
  title: f.querySelector('h3')?.textContent ?? '',
  look: f.querySelector('p.look')?.textContent ?? '',
  axes: [...f.querySelectorAll('svg text.axis-label')].map(t => t.textContent),
  width: f.querySelector('svg').getBoundingClientRect().width,
  series: [...f.querySelectorAll('svg polyline.series')].map(p => p.points.numberOfItems),
  bands: [...f.querySelectorAll('svg polygon.band')].map(p => p.points.numberOfItems),
}))
"""


def crashlog_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``crashlog ARGS`` as a user runs it, importing this checkout's package."""
    env = {k: v for k, v in os.environ.items() if k != "CRASHLOG_DSN"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "crashlog.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


async def test_report_opens_offline_with_every_section_and_chart(dsn: str, tmp_path: Path) -> None:
    await record(dsn)
    out = tmp_path / "report.html"
    done = crashlog_cli("report", "--dsn", dsn, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "3 bots, 2 games" in done.stderr
    html = out.read_text(encoding="utf-8")
    # No address of any kind in the file: nothing it could fetch, whatever the browser does.
    assert "http:" not in html and "https:" not in html and "//" not in html.replace("file://", "")
    assert "<script" not in html and "<link" not in html
    assert out.stat().st_size < 500_000

    async with browser() as page:
        await page.load(out.as_uri())
        requested = page.requested()
        assert requested and all(url.startswith(("file:", "data:")) for url in requested), requested
        found = await page.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
        assert found == list(SECTIONS)
        charts = await page.evaluate(CHARTS_JS)
        fits_laptop = await page.evaluate("document.documentElement.scrollWidth <= innerWidth")

    kinds = [c["kind"] for c in charts]
    assert kinds.count("bankroll") == 3 and kinds.count("survival") == 2
    assert {"quality", "reliability", "log"} <= set(kinds)
    for chart in charts:
        assert chart["title"] and len(chart["look"]) > 40, chart
        assert len(chart["axes"]) == 2 and all("(" in label for label in chart["axes"]), chart  # a unit
        assert chart["width"] > 300, chart  # laid out at a readable size
        assert chart["series"] and max(chart["series"]) >= 2, chart  # data drawn, not only a frame
    survival = [c for c in charts if c["kind"] == "survival"]
    assert all(c["bands"] and c["bands"][0] > 4 for c in survival)  # the law's band is drawn
    assert fits_laptop


async def test_the_browser_check_sees_a_request_leaving_the_machine(tmp_path: Path) -> None:
    """The recorder the test above relies on does see an outside request."""
    page_file = tmp_path / "leaky.html"
    page_file.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/pixel.png">', encoding="utf-8")
    async with browser() as page:
        await page.load(page_file.as_uri())
        assert "http://127.0.0.1:9/pixel.png" in page.requested()


async def test_filters_narrow_the_report(dsn: str, tmp_path: Path) -> None:
    await record(dsn)
    out = tmp_path / "one.html"
    done = crashlog_cli("report", "--dsn", dsn, "-o", str(out), "--game", "aviator", "--platform", "spribe")
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert "aviator on spribe" in html and "aviator on demo" not in html
    assert "No settled round matches." in html  # spribe was only watched, never played

    async with crashlog.reader(dsn) as r:
        bots = [row["bot_id"] for row in await r.bot_summaries()]
        chosen = await r.bot_statistics(bots[1])
    done = crashlog_cli("report", "--dsn", dsn, "-o", str(out), "--bot", bots[1])
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert html.count('data-kind="bankroll"') == 1 and f"Bankroll: {bots[1]}" in html
    assert not any(other in html for other in bots if other != bots[1])
    # the same figures as `crashlog stats --bot`
    assert f"<td>{chosen.win_rate:.1%}<br><small>{chosen.win_rate_interval.low:.1%} to" in html
    assert f"<td>{chosen.total_profit:,.2f}</td>" in html


@pytest.mark.parametrize("schema", [True, False], ids=["migrated", "no-schema"])
async def test_empty_database_says_nothing_yet(dsn: str, empty_dsn: str, tmp_path: Path, schema: bool) -> None:
    out = tmp_path / "empty.html"
    done = crashlog_cli("report", "--dsn", dsn if schema else empty_dsn, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "nothing recorded yet" in done.stderr
    assert "Nothing recorded yet: the log is empty." in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("filters,said", [
    (["--bot", "nobody"], "--bot nobody"),
    (["--since", "2030-01-01"], "--since 2030-01-01T00:00:00+00:00"),
    (["--game", "aviator", "--platform", "nowhere"], "--game aviator --platform nowhere"),
])
async def test_a_filter_matching_nothing_says_so(dsn: str, tmp_path: Path, filters: list[str], said: str) -> None:
    await record(dsn)
    out = tmp_path / "none.html"
    done = crashlog_cli("report", "--dsn", dsn, "-o", str(out), *filters)
    assert done.returncode == 0, done.stderr
    assert f"nothing matches {said}" in done.stderr
    html = out.read_text(encoding="utf-8")
    assert f"Nothing matches the filters {said}" in html and "<figure" in html  # the log's growth still


@pytest.mark.parametrize("where", ["missing/report.html", "."])
async def test_an_unwritable_output_is_one_clear_line(dsn: str, tmp_path: Path, where: str) -> None:
    target = tmp_path / where
    done = crashlog_cli("report", "--dsn", dsn, "-o", str(target))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"crashlog report: error: cannot write the report to {target}")
    assert "no folder" in lines[0] or "is a folder" in lines[0]


def test_a_bad_time_names_the_option(tmp_path: Path) -> None:
    done = crashlog_cli("report", "-o", str(tmp_path / "r.html"), "--since", "yesterday")
    assert done.returncode == 2 and "--since" in done.stderr and "'yesterday'" in done.stderr


async def test_demo_writes_its_report(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "demo.html"
    done = crashlog_cli("demo", "--dsn", dsn, "--bots", "2", "--rounds", "60", "--seed", "1", "--report", str(out))
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    assert html.count('data-kind="bankroll"') == 2 and 'data-kind="survival"' in html


def test_import_crashlog_loads_no_report() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, crashlog; print(sorted(m for m in sys.modules "
         "if m.startswith(('crashlog.report', 'crashlog.analytics'))))"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
    )
    assert done.stdout.strip() == "[]"
