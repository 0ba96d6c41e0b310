"""``crashlog.round_outcomes``: the narrow record of each settled round's outcome.

A view over ``crashlog.rounds`` since migration 016 (its columns, in their order, one row per
settled round): it was a second copy of the same rows, written by a projection of its own.
The ``rounds`` projection declares it to readers; a rebuild of ``rounds`` recreates it in its
swap (``access.OWN_VIEWS``). The name ``round_outcomes`` still selects that rebuild
(``crashlog.projections.ALIASES``).
"""

from __future__ import annotations

from crashlog.projections.base import ReadTable

#: The view, as readers see it: its time column and order.
READ_TABLE = ReadTable("round_outcomes", time="occurred_at", order=("occurred_at", "position"))
