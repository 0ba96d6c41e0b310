"""A real headless browser for the tests: Debian's ``chromium``, driven over the Chrome
DevTools Protocol (a websocket, the ``websockets`` package), to load a page, record every
request it makes, evaluate checks in it and take screenshots.

``.ci/run`` installs chromium when it is missing; a machine without it fails the tests that
need it with a message saying how to install it (never a skip).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

BINARIES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    """The browser's path; fails the test (never skips it) when none is installed."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no chromium on this machine: install it (apt-get install -y chromium); "
                ".ci/run does so before the tests")


class Page:
    """One browser tab over CDP: ``call`` a method, read the events it recorded."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), 60))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method} failed: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    async def wait_for(self, event: str, timeout: float = 60) -> dict[str, Any]:
        """The first event called ``event`` (recorded already or coming)."""
        for seen in self.events:
            if seen.get("method") == event:
                return seen
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), max(deadline - time.monotonic(), 0.1)))
            self.events.append(message)
            if message.get("method") == event:
                return message

    def requested(self) -> list[str]:
        """Every URL the page asked for (documents, images, fonts, scripts, ...)."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    async def load(self, url: str, width: int = 1280, height: int = 900) -> None:
        """Open ``url`` at a laptop's viewport and wait until it has loaded."""
        await self.call("Network.enable")
        await self.call("Page.enable")
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=False)
        await self.call("Page.navigate", url=url)
        await self.wait_for("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"the page's script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path, *, selector: str | None = None, full: bool = False) -> None:
        """A PNG of the viewport, of the element ``selector`` (from its top, one viewport
        high), or of the whole page."""
        params: dict[str, Any] = {"format": "png"}
        if selector or full:
            box = await self.evaluate(
                "(() => { const r = " + (f"document.querySelector({json.dumps(selector)})" if selector
                                          else "document.documentElement")
                + ".getBoundingClientRect(); return [r.x + scrollX, r.y + scrollY, r.width, r.height,"
                " document.documentElement.scrollWidth, innerHeight]; })()")
            x, y, w, h, page_width, viewport = box
            height = h if full else min(h, viewport * 2)
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": y, "width": page_width, "height": height, "scale": 1})
        data = await self.call("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(data["data"]))


@asynccontextmanager
async def browser() -> AsyncIterator[Page]:
    """A headless chromium of its own (own profile, no network proxy), and its first tab."""
    import websockets

    profile = Path(tempfile.mkdtemp(prefix="crashlog-chromium-"))
    process = subprocess.Popen(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port = await _port(profile, process)
        targets = json.loads(await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/json/list"))
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with websockets.connect(url, max_size=64 * 2**20) as socket:
            yield Page(socket)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


async def _port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    """The DevTools port chromium chose (it writes it to DevToolsActivePort)."""
    marker = profile / "DevToolsActivePort"
    for _ in range(600):
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        if process.poll() is not None:
            raise AssertionError(f"chromium exited at start with status {process.returncode}")
        await asyncio.sleep(0.1)
    raise AssertionError("chromium did not open its DevTools port within 60 s")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
        return response.read().decode()


async def _shoot(html: Path, out: Path, selector: str | None) -> None:
    async with browser() as page:
        await page.load(html.resolve().as_uri())
        await page.screenshot(out, selector=selector)


if __name__ == "__main__":  # docs/report.md: how docs/report*.png were made
    import sys

    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python tests/helpers/browser.py REPORT.html OUT.png [CSS-SELECTOR]")
    asyncio.run(_shoot(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else None))
