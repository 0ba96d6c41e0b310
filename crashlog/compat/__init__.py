"""The first version's API, kept working: change the import, keep the bot.

    from crashlog.compat import init_db, log_crash_round, session_scope
    from crashlog.compat.utils import get_bot_statistics, export_multipliers_for_ml
    from crashlog.compat.models import BotVMRegistration

The seed's module paths (``backend.database``, ``.utils``, ``.models``) become
``crashlog.compat``, ``crashlog.compat.utils`` and ``crashlog.compat.models``; every name is
also importable from ``crashlog.compat`` itself. Same function names, argument names and
result keys, now on the event log: ``log_crash_round`` emits a ``RoundSettled`` event (no I/O
on the bot's path), ``session_scope`` logs what was added when its block ends cleanly, and
every reading function first waits until what was logged is committed and projected.
"""

from __future__ import annotations

from crashlog.compat import models, utils
from crashlog.compat.connection import SYNC_TIMEOUT, Session, close_db, init_db, session_scope
from crashlog.compat.logger import log_crash_round
from crashlog.compat.models import BotVMRegistration
from crashlog.compat.utils import (
    export_multipliers_for_ml,
    export_rounds_to_json,
    get_bot_statistics,
    get_database_size,
)

__all__ = [
    "SYNC_TIMEOUT",
    "BotVMRegistration",
    "Session",
    "close_db",
    "export_multipliers_for_ml",
    "export_rounds_to_json",
    "get_bot_statistics",
    "get_database_size",
    "init_db",
    "log_crash_round",
    "models",
    "session_scope",
    "utils",
]
