"""The limited connection pools the web middlewares share: one per process, one per event loop.

A pool closes itself when its event loop is shut down by ``asyncio.run`` (as uvicorn and
``asyncio.run`` do) and, for the sync pool, when the process exits, so servers and scripts
leave no sockets open without being told to close anything.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from .limiter import RateLimiter
from .transport import closed_with_the_loop

__all__ = ["SharedPools"]


class SharedPools:
    """The limited connection pools of one middleware: one per process, one per event loop."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self._lock = threading.Lock()
        self._sync: list[Any] = []  # [pid, transport]: a forked child makes its own
        self._async: weakref.WeakKeyDictionary[Any, tuple[Any, AsyncGenerator[None, None]]] = (
            weakref.WeakKeyDictionary()
        )
        weakref.finalize(self, _close_sync, self._sync)  # also runs at interpreter exit

    def sync(self) -> httpx.BaseTransport:
        """The process's limited sync pool (thread safe), made on first use."""
        holder, pid = self._sync, os.getpid()
        if not holder or holder[0] != pid:
            with self._lock:
                if not holder or holder[0] != pid:
                    holder[:] = [pid, self.limiter.transport()]
        transport: httpx.BaseTransport = holder[1]
        return transport

    def asynchronous(self, inner: Any = None) -> httpx.AsyncBaseTransport:
        """The running event loop's limited async pool, made on first use (around ``inner``)."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is None:
            transport = self.limiter.async_transport(inner)
            entry = self._async[loop] = (transport, closed_with_the_loop(transport))
        pool: httpx.AsyncBaseTransport = entry[0]
        return pool

    def open_async(self) -> int:
        """How many event loops hold a pool (for tests and diagnostics)."""
        return len(self._async)

    def close(self) -> None:
        """Close the sync pool (at shutdown; requests still running would fail)."""
        with self._lock:
            _close_sync(self._sync)

    async def aclose(self) -> None:
        """Close this event loop's async pool and the sync pool."""
        entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # its finally closes the pool
        self.close()


def _close_sync(holder: list[Any]) -> None:
    if holder:
        transport = holder[1]
        holder.clear()
        transport.close()
