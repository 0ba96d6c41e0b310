"""What counts as a reading of a round's crash multiplier, for the projections that keep one.

``round_multipliers`` and ``round_signals`` each keep their own copy of the readings (a
projection never reads another's tables); they select the same events with ``ROUND_EVENTS``,
declared here so that neither projection imports the other.
"""

from __future__ import annotations

#: The events that report where a round crashed (``crash_multiplier``).
ROUND_EVENT_TYPES: tuple[str, ...] = ("RoundObserved", "RoundSettled")
#: The schema versions of those events' payloads that the round handlers read.
ROUND_READS: dict[str, int] = {"RoundObserved": 1, "RoundSettled": 1}
#: The SQL predicate on the log's row ``e`` that keeps those events.
ROUND_EVENTS = f"e.event_type IN ({', '.join(repr(t) for t in ROUND_EVENT_TYPES)})"

__all__ = ["ROUND_EVENTS", "ROUND_EVENT_TYPES", "ROUND_READS"]
