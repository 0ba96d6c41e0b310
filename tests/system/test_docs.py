"""The documentation cannot go stale: its examples run, and its catalogue names every field."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from crashlog.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block of ``page``."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


def script_of(page: Path) -> str:
    """A page's blocks, in order, as one script (later blocks may use earlier ones)."""
    parts = []
    for line, code in python_blocks(page):
        parts.append(f"# --- {page.name}, block at line {line}\n{code}")
    return "\n".join(parts)


PAGES_WITH_CODE = [p for p in PAGES if p.exists() and python_blocks(p)]


def test_the_docs_have_examples() -> None:
    assert {p.name for p in PAGES_WITH_CODE} >= {
        "integration.md", "events.md", "operations.md", "extending.md"}


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: p.name)
def test_every_python_example_runs(page: Path, dsn: str, tmp_path: Path) -> None:
    script = tmp_path / f"{page.stem}_examples.py"
    script.write_text(script_of(page))
    env = dict(os.environ, CRASHLOG_DSN=dsn)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{page.name} examples failed:\n{done.stdout}\n{done.stderr}"


def test_the_catalogue_documents_every_field() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    envelope = text.split("## The envelope", 1)[1].split("\n## ", 1)[0]
    for field in ("bot_id", "event_id", "occurred_at"):
        assert f"| `{field}` |" in envelope, field
    for name, cls in EVENT_TYPES.items():
        assert f"\n## {name}\n" in text, f"docs/events.md has no section for {name}"
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        fields = {a.name for a in attrs.fields(cls)} - {"bot_id", "event_id", "occurred_at"}
        for field in fields:
            assert f"| `{field}` |" in section, f"{name}.{field} is not in docs/events.md"
        documented = set(re.findall(r"^\| `(\w+)` \|", section, re.M))
        extra = documented - fields
        assert not extra, f"docs/events.md documents {name} fields that do not exist: {extra}"


def test_the_operations_guide_lists_every_verb() -> None:
    from crashlog.cli import build_parser

    text = (ROOT / "docs" / "operations.md").read_text()
    parser = build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb").choices  # noqa: SLF001
    for verb in verbs:
        assert f"`crashlog {verb}" in text, (
            f"docs/operations.md does not describe `crashlog {verb}`"
        )
