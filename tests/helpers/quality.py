"""The quality report's tests in both tiers: the rounds' start, and verdicts by check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

START = datetime(2025, 6, 1, tzinfo=UTC)


def verdicts(report: Any) -> dict[str, str]:
    """Each check's verdict, by the check's name."""
    return {c.name: c.verdict for c in report.checks}
