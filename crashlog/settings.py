"""Settings of a logger: one frozen value, given to ``connect(**options)``."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from crashlog.events.codec import DEFAULT_MAX_PAYLOAD_BYTES


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class Settings:
    """How a logger buffers, batches and retries. Every option has a sound default."""

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

    def __attrs_post_init__(self) -> None:
        if self.on_full == "spool" and self.spool_dir is None:
            raise ValueError('on_full="spool" needs spool_dir (a folder for the spool)')
