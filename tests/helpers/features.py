"""The ML features' tests in both tiers: a spec, and the features computed directly as reference."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from crashlog.features import FeatureSpec

START = datetime(2025, 5, 1, tzinfo=UTC)
SPEC = FeatureSpec(lags=3, windows=(5, 20))


def reference(history: list[Decimal], spec: FeatureSpec = SPEC) -> dict[str, Any]:
    """The features of a round from the list of its series' earlier multipliers, directly."""
    h = history
    got: dict[str, Any] = {"prior_rounds": len(h)}
    for k in range(1, spec.lags + 1):
        got[f"lag_{k}"] = h[-k] if k <= len(h) else None
    for w in spec.windows:
        last = h[-w:] if len(h) >= w else None
        got[f"mean_log_{w}"] = last and math.fsum(math.log(float(x)) for x in last) / w
        got[f"instant_bust_share_{w}"] = last and sum(x == 1 for x in last) / w
        got[f"share_at_least_2_{w}"] = last and sum(x >= 2 for x in last) / w
    busts = [i for i, x in enumerate(h) if x == 1]
    big = [i for i, x in enumerate(h) if x >= 10]
    got["rounds_since_instant_bust"] = len(h) - 1 - busts[-1] if busts else None
    got["rounds_since_10x"] = len(h) - 1 - big[-1] if big else None
    return got


def assert_features_match_reference(
    rows: list[dict[str, Any]], multipliers: list[Decimal], spec: FeatureSpec = SPEC
) -> None:
    """``rows`` (one series, in order) carry the reference features of ``multipliers``."""
    assert len(rows) == len(multipliers)
    for i, row in enumerate(rows):
        want = reference(multipliers[:i], spec)
        for name, value in want.items():
            if isinstance(value, float):
                assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-14), (i, name)
            else:
                assert row[name] == value, (i, name)
