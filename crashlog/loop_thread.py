"""An event loop in a thread of its own, for the blocking faces of async objects.

``SyncLogger`` and ``Reader`` run their async counterparts on one: their methods block the
calling thread, which may be any thread, even one whose own event loop is running (a
Jupyter notebook's).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread named ``name``.

    Promises: ``call`` runs a coroutine there and returns its result (or raises its error)
    in the calling thread; a call from the loop's own thread is refused (it would wait on
    itself forever); ``stop`` ends the loop and its thread, once.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self.thread:
            coroutine.close()
            raise RuntimeError(f"{self.name} cannot be called from its own event loop thread")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
