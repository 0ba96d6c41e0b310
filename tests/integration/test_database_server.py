"""Finding a real server: a failed connection names the server but not the password, and with
no DSN at all ``connect`` starts an embedded PostgreSQL in CRASHLOG_HOME and keeps its data.
(Masking, and servers that refuse at once, without a database: tests/unit/test_database.py.)"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers.database import SECRET

import crashlog
from crashlog.database import open_connection


async def test_a_failed_connection_names_the_server_but_not_the_password(
    server_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    parts = urlsplit(server_dsn)
    user = parts.username or "postgres"
    # Port 1 refuses at once; the named database does not exist on the real server.
    bad_port = f"postgresql://{user}:{SECRET}@127.0.0.1:1/nowhere"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 5432
    no_database = f"postgresql://{user}:{SECRET}@{host}:{port}/crashlog_no_such_database"
    for dsn in (bad_port, no_database):
        with pytest.raises(crashlog.ConnectFailed) as info:
            await open_connection(dsn)
        assert SECRET not in str(info.value) and "***" in str(info.value)
        with pytest.raises(crashlog.ConnectFailed) as info:
            async with crashlog.connect(dsn, connect_timeout=5):
                pass
        message = str(info.value)
        assert SECRET not in message and "***" in message
        assert SECRET not in repr(info.value)
    assert SECRET not in caplog.text


_EMBEDDED_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import crashlog
    from crashlog.events import BotErrorRaised

    async def main():
        async with crashlog.connect() as log:
            event_id = await log.emit(BotErrorRaised(bot_id="b1", error_type="E", message="hi"))
            await log.flush()
            async with log.pool.acquire() as conn:
                stored = await conn.fetchval(
                    "SELECT count(*) FROM crashlog.events WHERE event_id = $1", event_id)
                total = await conn.fetchval("SELECT count(*) FROM crashlog.events")
        print(stored, total)

    asyncio.run(main())
    """
)


def run_embedded(home: Path) -> list[int]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CRASHLOG_DSN", "CRASHLOG_TEST_DSN", "XDG_RUNTIME_DIR")}
    env["CRASHLOG_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-c", _EMBEDDED_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return [int(word) for word in done.stdout.split()]


def test_with_no_dsn_connect_starts_an_embedded_server_in_crashlog_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_embedded(home) == [1, 1]
    assert (home / "pgdata" / "PG_VERSION").is_file()
    # The server lived as long as the process that started it.
    assert not (home / "pgdata" / "postmaster.pid").exists()
    # The next start reuses the same data folder: the first event is still there.
    assert run_embedded(home) == [1, 2]
