"""In-process storage: a locked LRU dict of key states, shared by threads and coroutines."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from copy import deepcopy
from typing import TypeVar

from .. import engine
from ..engine import Grant, KeyConfig, KeyState, Outcome
from ..headers import Observation
from .base import LocalClock

__all__ = ["MemoryStorage"]

T = TypeVar("T")


class MemoryStorage(LocalClock):
    """Key states in this process. The lock is held only for one engine step, never across I/O,
    so it is safe (and cheap) to take from async code too. At most ``max_keys`` keys are kept:
    the least recently used is dropped first, so many distinct hosts cannot grow memory."""

    shared = False

    def __init__(self, max_keys: int = 10_000) -> None:
        self._states: OrderedDict[str, KeyState] = OrderedDict()
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def _step(self, key: str, fn: Callable[[KeyState, float], T]) -> T:
        with self._lock:
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = KeyState()
                if len(self._states) > self._max_keys:
                    self._states.popitem(last=False)
            else:
                self._states.move_to_end(key)
            return fn(state, self.now())

    def acquire(self, key: str, config: KeyConfig, cost: float, max_wait: float) -> Grant:
        """Reserve a slot for ``cost`` on ``key``."""
        return self._step(key, lambda s, now: engine.acquire(s, config, now, cost, max_wait))

    def observe(
        self, key: str, config: KeyConfig, ticket: float, status: int, obs: Observation
    ) -> Outcome:
        """Fold a response into ``key``."""
        return self._step(key, lambda s, now: engine.observe(s, config, now, ticket, status, obs))

    def release(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """Give back a slot that was never used."""
        self._step(key, lambda s, now: engine.release(s, config, grant, now))

    async def aacquire(self, key: str, config: KeyConfig, cost: float, max_wait: float) -> Grant:
        """``acquire`` for async code (a short in-memory step; it never blocks the loop)."""
        return self.acquire(key, config, cost, max_wait)

    async def aobserve(
        self, key: str, config: KeyConfig, ticket: float, status: int, obs: Observation
    ) -> Outcome:
        """``observe`` for async code."""
        return self.observe(key, config, ticket, status, obs)

    async def arelease(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """``release`` for async code."""
        self.release(key, config, grant)

    def load(self, key: str) -> tuple[KeyState, float] | None:
        """A copy of the state of ``key`` and the current time, or None."""
        with self._lock:
            state = self._states.get(key)
            return (deepcopy(state), self.now()) if state is not None else None

    def keys(self) -> list[str]:
        """Every key with state."""
        with self._lock:
            return list(self._states)

    def clear(self, key: str | None = None) -> None:
        """Forget one key, or everything."""
        with self._lock:
            if key is None:
                self._states.clear()
            else:
                self._states.pop(key, None)

    def close(self) -> None:
        """Nothing to release."""
