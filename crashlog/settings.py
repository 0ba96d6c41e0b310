"""Settings of a logger: one frozen value, given to ``connect(**options)``.

Promises: every field can also be set by an environment variable ``CRASHLOG_<FIELD>``
(``CRASHLOG_BATCH_SIZE``, ``CRASHLOG_SPOOL_DIR``, ...), read when ``Settings`` is made. An
argument given explicitly (even ``None``) wins over the variable, the variable over the
default. A variable whose value the field cannot take raises ``InvalidSetting`` naming the
variable and the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from crashlog.errors import InvalidSetting
from crashlog.events.codec import DEFAULT_MAX_PAYLOAD_BYTES

#: The prefix of the environment variables that set ``Settings`` fields.
ENV_PREFIX = "CRASHLOG_"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_KINDS = {bool: "true or false (1/0, yes/no, on/off)", int: "a whole number", float: "a number"}


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True, init=False)
class Settings:
    """How a logger buffers, batches and retries. Every option has a sound default, and each
    can come from ``CRASHLOG_<FIELD>`` in the environment (see the module's promises)."""

    #: Events per batch; one COPY each. 5,000 is where COPY stops getting faster.
    batch_size: int = attrs.field(default=5_000, validator=_positive)
    #: Longest time an event waits in the buffer for its batch to fill, in seconds.
    flush_interval: float = attrs.field(default=0.05, validator=_positive)
    #: Most events held in memory (buffered and in flight) before ``emit`` applies ``on_full``.
    buffer_size: int = attrs.field(default=100_000, validator=_positive)
    #: What ``emit`` does when the buffer is full: wait for room, raise ``BufferFull``, or send
    #: the waiting batches to the spool at once ("spool", needs ``spool_dir``) and wait for that.
    on_full: Literal["wait", "raise", "spool"] = attrs.field(
        default="wait", validator=attrs.validators.in_(("wait", "raise", "spool"))
    )
    #: Writer lanes: bots are spread over them by a hash of bot_id; each lane writes one batch at
    #: a time, which keeps every bot's events in emit order while lanes overlap.
    writer_lanes: int = attrs.field(default=2, validator=_positive)
    #: Connections in the pool: one per writer lane, plus one for queries. The in-process
    #: projections take ``projection_connections`` more of their own.
    pool_size: int = attrs.field(default=3, validator=_positive)
    #: Connections the in-process projections are shared out between (``connect(project=True)``);
    #: each applies its share of the read tables, so the server works on that many cores.
    projection_connections: int = attrs.field(default=2, validator=_positive)
    #: How long one batch is retried through transient failures before the writer reports it.
    retry_deadline: float = attrs.field(default=30.0, validator=_positive)
    #: Largest encoded payload ``emit`` accepts, in bytes.
    max_payload_bytes: int = attrs.field(default=DEFAULT_MAX_PAYLOAD_BYTES, validator=_positive)
    #: Seconds to wait for a connection to open.
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Seconds ``aclose`` (and leaving ``async with``) waits for the buffer to drain.
    close_timeout: float = attrs.field(default=60.0, validator=_positive)
    #: Apply pending migrations at ``connect`` (False: refuse to start if any are pending).
    migrate: bool = True
    #: A folder for the local spool: batches the server cannot take before ``retry_deadline``
    #: go there (fsynced, acknowledged) and are replayed when it is back and at the next start.
    #: None: no spool; such batches stay in memory and the writer keeps retrying.
    spool_dir: str | None = None
    #: Most bytes the spool may hold; past it, batches wait in memory (``SpoolFull`` is logged).
    spool_max_bytes: int = attrs.field(default=1024**3, validator=_positive)

    #: A writer lane whose task ends unexpectedly is restarted; past this many restarts
    #: within ``lane_restart_window`` seconds the writer fails (``WriterFailed``).
    max_lane_restarts: int = attrs.field(default=5, validator=_positive)
    lane_restart_window: float = attrs.field(default=60.0, validator=_positive)
    #: Seconds after which the pool's sessions are replaced, so a setting changed on the
    #: server (``ALTER DATABASE ... SET``, ``ALTER ROLE ... SET``) reaches the writer.
    connection_max_age: float = attrs.field(default=300.0, validator=_positive)

    def __init__(self, **options: Any) -> None:
        # An explicit argument wins (even None); a variable fills only what was not given.
        self.__attrs_init__(**{**from_environment(os.environ, skip=options), **options})

    def __attrs_post_init__(self) -> None:
        if self.on_full == "spool" and self.spool_dir is None:
            raise ValueError('on_full="spool" needs spool_dir (a folder for the spool)')


def variable(field: str) -> str:
    """The environment variable that sets ``field``: ``CRASHLOG_`` and its name in capitals."""
    return ENV_PREFIX + field.upper()


def from_environment(environ: Mapping[str, str], *, skip: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
    """The fields set in ``environ`` (except those in ``skip``), parsed and checked.

    Raises ``InvalidSetting`` naming the variable and its value when a field cannot take it.
    """
    found: dict[str, Any] = {}
    for field in attrs.fields(Settings):
        name = variable(field.name)
        if field.name in skip or name not in environ:
            continue
        raw = environ[name]
        try:
            value = _parse(field, raw)
        except ValueError:
            raise InvalidSetting(name, raw, f"{field.name} must be {_KINDS[type(field.default)]}") from None
        try:
            if field.validator is not None:
                field.validator(None, field, value)
        except ValueError as error:
            raise InvalidSetting(name, raw, str(error.args[0])) from None
        found[field.name] = value
    return found


def _parse(field: attrs.Attribute[Any], raw: str) -> Any:
    text = raw.strip()
    if isinstance(field.default, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("not a yes/no value")
    if isinstance(field.default, int):
        return int(text)
    if isinstance(field.default, float):
        return float(text)
    if field.name == "spool_dir":  # empty: no spool, as None
        return text or None
    return text


def environment_table() -> list[str]:
    """The rows of docs/operations.md's table of variables: ``| CRASHLOG_X | default | field |``
    (a test checks the page holds each, so it cannot drift from the fields)."""
    rows = []
    for field in attrs.fields(Settings):
        shown = str(field.default).lower() if isinstance(field.default, bool) else field.default
        default = "unset" if field.default is None else f"`{shown}`"
        rows.append(f"| `{variable(field.name)}` | {default} | `{field.name}` |")
    return rows
