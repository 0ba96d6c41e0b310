"""The signals' tests in both tiers: when the rounds start, and the target they predict most."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

START = datetime(2025, 1, 1, tzinfo=UTC)
TWO = Decimal("2.00")
