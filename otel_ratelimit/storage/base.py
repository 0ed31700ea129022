"""The storage protocol every backend implements."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from ..engine import Grant, KeyConfig, KeyState, Outcome
from ..headers import Observation

__all__ = ["LocalClock", "Storage"]


@runtime_checkable
class Storage(Protocol):
    """Where key state lives. Each call is one atomic engine step on the store's own clock."""

    shared: bool  # whether other processes see the same state

    def acquire(self, key: str, config: KeyConfig, cost: float, max_wait: float) -> Grant:
        """Reserve a slot for ``cost`` on ``key`` (see ``engine.acquire``)."""

    def observe(
        self, key: str, config: KeyConfig, ticket: float, status: int, obs: Observation
    ) -> Outcome:
        """Fold a response into ``key`` (see ``engine.observe``)."""

    def release(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """Give back a slot that was never used."""

    async def aacquire(self, key: str, config: KeyConfig, cost: float, max_wait: float) -> Grant:
        """``acquire`` for async code: never blocks the event loop."""

    async def aobserve(
        self, key: str, config: KeyConfig, ticket: float, status: int, obs: Observation
    ) -> Outcome:
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
