"""Re-read history strips: runs of values that come back a few rounds later.

A scraper that re-reads a game's history strip appends runs of 3-6 values it already stored,
8-20 rounds later (the commonest Aviator scraper bug). Neighbour checks do not see it, and
round ids do not help when the scraper gives every row a fresh id. ``repeated_runs`` counts
runs of ``k`` consecutive values above 1.00 that equal an earlier run at a lag from ``k`` to
``window`` rows, and compares the count with what independent rounds give under the law.

Why it is exact enough: two disjoint runs of values above 1.00 are equal with probability
``Q^k``, ``Q = sum_h q_h^2`` with ``q_h = P(X = h | X >= 1.01)``, the law's shape above 1.00,
which does not depend on the RTP. So the expected number of equal pairs is ``Q^k`` times the
number of pairs of such runs, exactly; the count tested is the number of *clumps* (a match
whose predecessor at the same lag is not one), which is at most the number of equal pairs, so
the Poisson tail at that mean is conservative.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import attrs

from crashlog.analytics.inference import poisson_sf
from crashlog.law import MAX_CRASH

__all__ = ["RUN_LENGTH", "WINDOW", "RunRepeats", "equal_chance", "repeated_runs", "squared_masses"]

#: Length of the runs compared (values above 1.00).
RUN_LENGTH = 3
#: How far back (rows) a run is looked for: a history strip shows a few dozen rounds.
WINDOW = 64
_CAP = int(MAX_CRASH * 100)


def squared_masses(lo: int, hi: int, shift: int = 0) -> float:
    """``sum q_h^2`` for ``lo <= h < hi`` (hundredths, ``lo > 100``), ``q_h`` the law's shape
    ``(101 - shift) / ((h - shift)(h + 1 - shift))``: exact below 100.00, by its integral above
    (relative error below 1e-4)."""
    split = min(max(lo, 10_000), hi)
    c = 101 - shift
    exact = sum((c / ((h - shift) * (h + 1 - shift))) ** 2 for h in range(lo, split))
    return exact + c**2 / 3 * (1 / (split - shift) ** 3 - 1 / (hi - shift) ** 3)


@functools.cache
def equal_chance(shift: int = 0) -> float:
    """``P(X_1 = X_2 | both above 1.00)`` for two independent rounds of the law."""
    return squared_masses(101, _CAP + 1, shift)


@attrs.frozen
class RunRepeats:
    """What ``repeated_runs`` found: clumps of equal runs, the law's expectation, the p-value."""

    clumps: int
    expected: float
    p_value: float
    #: Rows in a run that repeats an earlier one.
    rows: int
    #: The first repeat: ``(row, earlier row, the run's values in hundredths)``, or None.
    example: tuple[int, int, tuple[int | None, ...]] | None

    def detail(self, k: int = RUN_LENGTH, window: int = WINDOW) -> str:
        """One sentence for a report."""
        text = (
            f"{self.clumps:,} runs of {k} values above 1.00 repeat one from up to {window} rows "
            f"before ({self.rows:,} rows inside them); independent rounds expect {self.expected:.3g}"
        )
        if self.example:
            row, earlier, run = self.example
            shown = ", ".join(f"{(h or 0) / 100:.2f}" for h in run)
            text += f"; e.g. rows {earlier}.. ({shown}) again at row {row}"
        return text


def repeated_runs(
    values: Sequence[int | None], *, shift: int = 0, k: int = RUN_LENGTH, window: int = WINDOW
) -> RunRepeats:
    """Runs of ``k`` values above 1.00 (``values`` in hundredths, None for an unusable row)
    equal to a run ``k`` to ``window`` rows earlier, against the law of shape ``shift``."""
    n = len(values)
    streak = [0] * (n + 1)  # consecutive values above 1.00 from each row on
    for i in range(n - 1, -1, -1):
        value = values[i]
        streak[i] = streak[i + 1] + 1 if value is not None and value > 100 else 0
    prefix = [0]  # runs of k values above 1.00 starting before each row
    for i in range(n):
        prefix.append(prefix[-1] + (streak[i] >= k))
    seen: dict[tuple[int | None, ...], list[int]] = {}
    pairs, clumps, example = 0, 0, None
    in_repeat: set[int] = set()
    previous: frozenset[int] | set[int] = frozenset()
    for i in range(n):
        if streak[i] < k:
            previous = frozenset()
            continue
        lo, hi = max(0, i - window), i - k  # earlier starts j with lo <= j <= hi
        if hi >= lo:
            pairs += prefix[hi + 1] - prefix[lo]
        run = tuple(values[i : i + k])
        earlier = seen.get(run)
        if earlier is None:
            seen[run] = [i]
            previous = frozenset()
            continue
        lags = {i - j for j in earlier if lo <= j <= hi}
        for lag in lags - previous:
            clumps += 1
            if example is None:
                example = (i, i - lag, run)
        if lags:
            in_repeat.update(range(i, i + k))
        previous = lags
        earlier.append(i)
        if earlier[0] < lo:
            seen[run] = [j for j in earlier if j >= lo]
    expected = pairs * equal_chance(shift) ** k
    return RunRepeats(clumps, expected, poisson_sf(clumps, expected), len(in_repeat), example)
