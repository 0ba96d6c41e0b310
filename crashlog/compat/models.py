"""The seed's record classes (``backend.database.models``), as values ``session.add`` logs.

    with session_scope() as session:
        session.add(BotVMRegistration(bot_id="aviator_bot_001", session_id="session_001", ...))

Each record becomes the event that says the same thing; nothing is written until the
``session_scope`` block ends cleanly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from crashlog.events import BotRegistered


@attrs.define(kw_only=True)
class BotVMRegistration:
    """A bot and the machine it runs on: logged as a ``BotRegistered`` event. ``session_id``
    (the session it registered in) is kept in the event's ``metadata``."""

    bot_id: str
    bot_name: str | None = None
    vm_provider: str | None = None
    region: str | None = None
    session_id: str | None = None
    strategy_name: str | None = None
    initial_balance: Decimal | float | str | None = None
    currency: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)

    def to_event(self) -> BotRegistered:
        """The ``BotRegistered`` event this record stands for (``InvalidEvent`` names a bad field)."""
        metadata = dict(self.metadata)
        if self.session_id is not None:
            metadata["session_id"] = self.session_id
        return BotRegistered(
            bot_id=self.bot_id,
            bot_name=self.bot_name,
            vm_provider=self.vm_provider,
            region=self.region,
            strategy_name=self.strategy_name,
            initial_balance=self.initial_balance,  # type: ignore[arg-type]  # the field converts it
            currency=self.currency,
            metadata=metadata,
        )


__all__ = ["BotVMRegistration"]
