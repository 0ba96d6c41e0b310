"""The exceptions crashlog raises, all declared here. Every one of them is a ``CrashlogError``.

The modules that raise them re-export their names (``crashlog.database.ConnectFailed``,
``crashlog.spool.SpoolFull``, ...), so either import path works.
"""

from __future__ import annotations

from typing import Any


class CrashlogError(Exception):
    """Base class of every error crashlog raises on purpose."""


class InvalidEvent(CrashlogError, ValueError):
    """An event was refused before it reached the buffer.

    ``field`` names the offending field (dotted for nested values, e.g.
    ``metadata.scores[2]``), ``value`` is what was given, and nothing else was
    affected: the logger keeps running and every other event is kept.
    """

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field}={_short_repr(value)}: {reason}")


class MigrationError(CrashlogError):
    """The database schema cannot be brought to the version this code needs."""


class NotFlushed(CrashlogError, TimeoutError):
    """``flush``/``sync``/``aclose`` timed out before its promise held.

    ``pending`` counts the events not yet committed; ``where`` says where they
    wait (``{"buffer": n, "in_flight": m, ...}``). They are not lost: they stay
    queued and the background flusher keeps trying.
    """

    def __init__(self, action: str, timeout: float, pending: int, where: dict[str, int]) -> None:
        self.pending = pending
        self.where = dict(where)
        places = ", ".join(f"{n} in {place}" for place, n in where.items() if n) or "none"
        super().__init__(
            f"{action} timed out after {timeout:g}s: {pending} events not yet done ({places})"
        )


class ConnectFailed(CrashlogError):
    """The database could not be reached or opened; the message names it with the password masked."""


class BufferFull(CrashlogError):
    """``emit`` was called with the buffer full and ``on_full="raise"``."""


class LoggerClosed(CrashlogError):
    """``emit`` was called on a logger that is closing or closed."""


class WriterFailed(CrashlogError):
    """The writer stopped for good: a lane's task kept ending unexpectedly (more restarts
    than ``Settings.max_lane_restarts`` within ``Settings.lane_restart_window`` seconds).
    ``emit``, ``flush`` and ``sync`` raise it, with the reason, instead of waiting; events
    already committed or spooled are safe, those still in memory are not written."""


class SpoolError(CrashlogError):
    """The spool folder cannot be used (locked by another process, or not a spool)."""


class LockHeld(CrashlogError):
    """A file lock (``crashlog.files.FileLock``) is held by another owner: another process,
    or another open file of this one."""


class SpoolFull(SpoolError):
    """A batch would take the spool past its byte cap; nothing of it was written."""


class RolesError(CrashlogError):
    """The roles could not be set up (bad prefix, or not enough privilege to do it)."""


class UnknownProjection(CrashlogError, ValueError):
    """A projection name that is not one of ``crashlog.projections.NAMES``; the message
    lists the known ones."""


class InvalidProjection(CrashlogError, ValueError):
    """A user's projection refused at registration (nothing created): an unknown ``--with``
    target, a table name crashlog already uses, a table PostgreSQL refuses, an ``events=``
    entry that is not an event type, a duplicate name, or a declaration changed without a
    new version. The message names the projection and what is wrong."""


class StaleCheckpoint(CrashlogError):
    """The checkpoint moved under this runner, or its version is not this code's."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        #: The projection concerned.
        self.name = name


class RebuildRefused(CrashlogError):
    """A rebuild did not run, or was not swapped in: another process is rebuilding the same
    projection, a table changed (a migration) while its shadow filled, a user's view depends
    on a table to rebuild (the message names it), the role running it cannot give the tables
    their owner and grants (the message names the role to use), or a projection with
    ``on_error="stop"`` met an event it cannot read. The live tables are untouched."""


class RebuildBusy(RebuildRefused):
    """A rebuild did not start: another process holds the projection's rebuild lease (it is
    rebuilding it now). Waiting and trying again is the answer; the other refusals need a fix."""


class ProjectionStopped(CrashlogError):
    """A projection with ``on_error="stop"`` stopped at an event it cannot read, so
    ``sync()`` would wait forever: it raises this instead, naming the projection, the event
    (id and position), the error and since when. The projection stays stopped until its
    version changes or it is rebuilt (``crashlog project --rebuild NAME``)."""

    def __init__(
        self, name: str, error: str, event_id: Any, position: int, since: Any
    ) -> None:
        self.name = name
        self.error = error
        self.event_id = event_id
        self.position = position
        self.since = since
        super().__init__(
            f"projection {name} stopped at event {event_id} (position {position}) since "
            f"{since}: {error}; fix the handler and bump its version, or rebuild it"
        )


class EventTypeConflict(CrashlogError, TypeError):
    """An event type cannot be declared: its name is taken by a different class, the name
    is not valid, or a field has no kind. The message names the type."""


class SubscriptionError(CrashlogError, ValueError):
    """A subscription cannot be opened or dropped as asked (an unknown name, a bad
    ``start``, a name whose consumer is active); the message names it."""


class SchemaNotReady(CrashlogError):
    """A reader found no crashlog schema, or one older than this package (migrations it does
    not have, named); readers never migrate: run ``crashlog migrate`` as a role that may."""


class UnknownTable(CrashlogError, LookupError):
    """A table name that is not one a reader may read; the message lists the known ones."""


class InvalidRead(CrashlogError, ValueError):
    """A read asked for something the table cannot give: a filter or column it does not have,
    a ``since``/``until`` that is not a time (or a table without a time column), a value that
    does not fit the exact money type. The message names the table, the field and the value."""


class MissingExtra(CrashlogError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ReportUnwritable(CrashlogError, OSError):
    """The report's output file cannot be written; the message names the path and why."""


class InvalidSetting(CrashlogError, ValueError):
    """A ``CRASHLOG_<FIELD>`` environment variable holds a value its setting cannot take;
    ``variable`` and ``value`` say which and what (the message names both)."""

    def __init__(self, variable: str, value: str, reason: str) -> None:
        self.variable = variable
        self.value = value
        super().__init__(f"{variable}={_short_repr(value)}: {reason}")


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}...(len {len(text)})"
