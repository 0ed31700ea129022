"""The storage protocol every backend implements."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar, runtime_checkable

from .. import engine
from ..engine import Grant, KeyConfig, KeyState, Outcome
from ..headers import Observation

__all__ = ["LocalClock", "SteppedStorage", "Storage"]

T = TypeVar("T")


@runtime_checkable
class Storage(Protocol):
    """Where key state lives. Each call is one atomic engine step on the store's own clock."""

    shared: bool  # whether other processes see the same state

    def acquire(
        self, key: str, config: KeyConfig, cost: float, max_wait: float, place: float = 0.0
    ) -> Grant:
        """Reserve a slot for ``cost`` on ``key`` (see ``engine.acquire``)."""

    def observe(self, key: str, config: KeyConfig, ticket: float, status: int,
                obs: Observation, cost: float = 1.0) -> Outcome:  # fmt: skip
        """Fold a response into ``key`` (see ``engine.observe``)."""

    def release(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """Give back a slot that was never used."""

    async def aacquire(
        self, key: str, config: KeyConfig, cost: float, max_wait: float, place: float = 0.0
    ) -> Grant:
        """``acquire`` for async code: never blocks the event loop."""

    async def aobserve(self, key: str, config: KeyConfig, ticket: float, status: int,
                       obs: Observation, cost: float = 1.0) -> Outcome:  # fmt: skip
        """``observe`` for async code."""

    async def arelease(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """``release`` for async code."""

    def load(self, key: str) -> tuple[KeyState, float] | None:
        """The state of ``key`` and the store's current time, or None if unknown."""

    def to_epoch(self, t: float) -> float:
        """Convert a time on the store's clock to Unix epoch seconds."""

    def keys(self) -> list[str]:
        """Every key with state."""

    def clear(self, key: str | None = None) -> None:
        """Forget one key, or everything."""

    def close(self) -> None:
        """Release connections and files."""


class LocalClock:
    """Monotonic time for in-process stores, convertible to epoch for reports."""

    def now(self) -> float:
        """The store's current time."""
        return time.monotonic()

    def to_epoch(self, t: float) -> float:
        """Convert a store time to Unix epoch seconds."""
        return t - time.monotonic() + time.time()


class SteppedStorage:
    """The storage calls for stores that run the Python engine on a loaded state.

    A subclass provides ``_step(key, fn)``: load the key's state, call ``fn(state, now)`` and
    save the state, all atomically; async callers go through ``_astep``.
    """

    def _step(self, key: str, fn: Callable[[KeyState, float], T]) -> T:
        raise NotImplementedError

    async def _astep(self, key: str, fn: Callable[[KeyState, float], T]) -> T:
        return self._step(key, fn)  # a short in-process step: it does not block the loop

    def acquire(
        self, key: str, config: KeyConfig, cost: float, max_wait: float, place: float = 0.0
    ) -> Grant:
        """Reserve a slot for ``cost`` on ``key``."""
        return self._step(key, partial(_acquire, config, cost, max_wait, place))

    def observe(self, key: str, config: KeyConfig, ticket: float, status: int,
                obs: Observation, cost: float = 1.0) -> Outcome:  # fmt: skip
        """Fold a response into ``key``."""
        return self._step(key, partial(_observe, config, ticket, status, obs, cost))

    def release(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """Give back a slot that was never used."""
        self._step(key, partial(_release, config, grant))

    async def aacquire(
        self, key: str, config: KeyConfig, cost: float, max_wait: float, place: float = 0.0
    ) -> Grant:
        """``acquire`` for async code."""
        return await self._astep(key, partial(_acquire, config, cost, max_wait, place))

    async def aobserve(self, key: str, config: KeyConfig, ticket: float, status: int,
                       obs: Observation, cost: float = 1.0) -> Outcome:  # fmt: skip
        """``observe`` for async code."""
        return await self._astep(key, partial(_observe, config, ticket, status, obs, cost))

    async def arelease(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """``release`` for async code."""
        await self._astep(key, partial(_release, config, grant))


def _acquire(
    config: KeyConfig, cost: float, max_wait: float, place: float, s: KeyState, now: float
) -> Grant:
    return engine.acquire(s, config, now, cost, max_wait, place)


def _observe(config: KeyConfig, ticket: float, status: int, obs: Observation, cost: float,
             s: KeyState, now: float) -> Outcome:  # fmt: skip
    return engine.observe(s, config, now, ticket, status, obs, cost)


def _release(config: KeyConfig, grant: Grant, s: KeyState, now: float) -> None:
    engine.release(s, config, grant, now)
