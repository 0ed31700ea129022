"""The failure policy of a shared store: what a limiter does while Redis (or SQLite) is unusable.

``FallbackStorage(shared, policy)`` wraps a shared store in the same Storage protocol, so the
core and the engine never see an outage. When a call fails (``StorageError``, ``OSError``):

* ``"local"`` (default): keep limiting in this process, in a ``MemoryStorage`` seeded per key
  with what the store last taught (windows of the latest headers, cooldown, adaptive rate),
  kept from the responses that pass through: the seed costs no store command.
* ``"allow"``: admit every request at once. ``"deny"``: refuse new requests with
  ``StorageError`` (a request already sent keeps its response: ``observe`` never raises).

While the store is down, one ``acquire`` at a time tries it again, at most every
``PROBE_EVERY`` s; the first that goes through switches back to shared state. Other calls never
wait on the dead store. Slots granted in the process carry negative tickets (a store's are >= 0),
so their responses never reach a store that did not grant them, before or after it is back.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

from ..engine import Grant, KeyConfig, KeyState, Outcome
from ..errors import ConfigurationError, StorageError
from ..headers import Observation
from .base import Storage
from .health import PROBE_EVERY, Health, Listener
from .learned import Learned, stray
from .memory import MemoryStorage

__all__ = ["POLICIES", "PROBE_EVERY", "FallbackStorage", "Listener", "check_policy"]

POLICIES = ("local", "allow", "deny", "raise")  # "raise": no fallback, errors propagate
_AFTER = 0.01  # how long after the last slot granted here a shared one may go
_ALLOWED = -0.5  # the ticket of a slot the "allow" policy handed out: nothing to report back
_ACTIONS = {"local": "limiting in this process", "allow": "admitting every request",
            "deny": "refusing new requests"}  # fmt: skip


def check_policy(policy: object) -> str:
    """``policy`` if it is one of POLICIES, else a ConfigurationError naming it."""
    if policy not in POLICIES:
        raise ConfigurationError(
            f"on_storage_error must be one of {', '.join(map(repr, POLICIES))}, got {policy!r}"
        )
    return policy


class FallbackStorage:
    """A shared store with a failure policy: ``"local"``, ``"allow"`` or ``"deny"``.

    ``listeners`` are called as ``listener(event, detail)``: ``"error"`` on every failed call,
    ``"fallback"`` when the policy takes over, ``"recovered"`` when the store is back; the
    detail is the class name of the error (never a URL or a message). ``label`` names the store
    in log records (a redacted URL).
    """

    shared = True

    def __init__(self, shared: Storage, policy: str = "local", *, label: str | None = None,
                 probe_every: float = PROBE_EVERY, max_keys: int = 10_000) -> None:  # fmt: skip
        self.inner = shared
        self.policy = check_policy(policy)
        if self.policy == "raise":
            raise ConfigurationError("FallbackStorage takes 'local', 'allow' or 'deny'")
        self.label = label or type(shared).__name__
        self.local = MemoryStorage(max_keys, clock=time.time)  # epoch, as Redis and SQLite
        action = f"{_ACTIONS[self.policy]} until it is back (on_storage_error={self.policy!r})"
        self.health = Health(self.label, action, probe_every)
        self.listeners = self.health.listeners  # the same list: append here
        self._learned = Learned(max_keys)
        self._seeded: set[str] = set()  # keys whose local state was seeded in this outage
        self._queued: dict[str, float] = {}  # key: the latest slot granted here (epoch)
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._outage = 0  # the outage the seeded keys belong to

    @property
    def down_since(self) -> float | None:
        """``time.monotonic()`` when the store failed, while it is down; else None."""
        return self.health.down_since

    # -- the protocol --------------------------------------------------------------------

    def acquire(
        self, key: str, config: KeyConfig, cost: float, max_wait: float, place: float = 0.0
    ) -> Grant:
        """Reserve a slot in the shared store, or as the policy says while it is down."""
        with self.health.attempt(probe=True) as shot:
            if shot.go:
                grant = self.inner.acquire(key, config, cost, max_wait, place)
                return self._behind_local(key, grant)
        return self._local_acquire(key, config, cost, max_wait, place, shot.error)

    def observe(self, key: str, config: KeyConfig, ticket: float, status: int,
                obs: Observation, cost: float = 1.0) -> Outcome:  # fmt: skip
        """Fold a response into the store that granted its slot; never raises for an outage."""
        if ticket >= 0:
            with self.health.attempt() as shot:
                if shot.go:
                    out = self.inner.observe(key, config, ticket, status, obs, cost)
                    self._learned.record(key, config, obs, out)
                    return out
        return self._local_observe(key, config, ticket, status, obs, cost)

    def release(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """Give back a slot that was never used (a shared one is lost while the store is down)."""
        if grant.ticket >= 0:
            with self.health.attempt() as shot:
                if shot.go:
                    self.inner.release(key, config, grant)
        elif grant.ticket != _ALLOWED:
            self.local.release(key, config, grant.replaced(ticket=-grant.ticket - 1))

    async def aacquire(
        self, key: str, config: KeyConfig, cost: float, max_wait: float, place: float = 0.0
    ) -> Grant:
        """``acquire`` for async code."""
        with self.health.attempt(probe=True) as shot:
            if shot.go:
                grant = await self.inner.aacquire(key, config, cost, max_wait, place)
                return self._behind_local(key, grant)
        return self._local_acquire(key, config, cost, max_wait, place, shot.error)

    async def aobserve(self, key: str, config: KeyConfig, ticket: float, status: int,
                       obs: Observation, cost: float = 1.0) -> Outcome:  # fmt: skip
        """``observe`` for async code."""
        if ticket >= 0:
            with self.health.attempt() as shot:
                if shot.go:
                    out = await self.inner.aobserve(key, config, ticket, status, obs, cost)
                    self._learned.record(key, config, obs, out)
                    return out
        return self._local_observe(key, config, ticket, status, obs, cost)

    async def arelease(self, key: str, config: KeyConfig, grant: Grant) -> None:
        """``release`` for async code."""
        if grant.ticket >= 0:
            with self.health.attempt() as shot:
                if shot.go:
                    await self.inner.arelease(key, config, grant)
        else:
            self.release(key, config, grant)

    def load(self, key: str) -> tuple[KeyState, float] | None:
        """The shared state of ``key``; while the store is down, the one in this process."""
        with self.health.attempt() as shot:
            if shot.go:
                return self.inner.load(key)
        config = self._learned.config(key)
        if config is not None and self.policy == "local":
            self._seed(key, config)
        return self.local.load(key)

    def to_epoch(self, t: float) -> float:
        """Convert a store time to epoch seconds (shared and local times already are)."""
        return self.inner.to_epoch(t)

    def keys(self) -> list[str]:
        """Every key with shared state; while the store is down, every key limited here."""
        with self.health.attempt() as shot:
            if shot.go:
                return self.inner.keys()
        return self.local.keys()

    def clear(self, key: str | None = None) -> None:
        """Forget one key, or everything, here and in the store (whose failure is raised)."""
        self._learned.forget(key)
        self.local.clear(key)
        self.inner.clear(key)

    def close(self) -> None:
        """Close the store."""
        self.inner.close()

    async def aclose(self) -> None:
        """Close the store's connections of this event loop, then the rest."""
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            self.inner.close()

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)  # url, path, ... of the wrapped store

    # -- limiting in the process ---------------------------------------------------------

    def _local_acquire(self, key: str, config: KeyConfig, cost: float, max_wait: float,
                       place: float, error: BaseException | None) -> Grant:  # fmt: skip
        if self.policy == "allow":
            return Grant(True, 0.0, time.time(), _ALLOWED, cost, "")
        if self.policy == "deny":
            raise StorageError(
                f"rate-limit storage {self.label!r} is unavailable (on_storage_error='deny')"
            ) from error
        self._seed(key, config)
        grant = self.local.acquire(key, config, cost, max_wait, place)
        if grant.ok and not grant.again:
            with self._lock:
                self._queued[key] = max(self._queued.get(key, 0.0), grant.at)
                if len(self._queued) > self.max_keys:  # many hosts in a long outage: drop the past
                    now = time.time()
                    self._queued = {k: t for k, t in self._queued.items() if t > now}
        return grant.replaced(ticket=-grant.ticket - 1)

    def _behind_local(self, key: str, grant: Grant) -> Grant:
        """A shared slot goes after the slots granted here during the outage: the API must
        count those before the response that teaches the store its limit again."""
        if not self._queued or not grant.ok or grant.again:
            return grant
        now = time.time()
        with self._lock:
            until = self._queued.get(key, 0.0)
            if until <= now:
                self._queued.pop(key, None)
                return grant
        return grant.replaced(wait=max(grant.wait, until - now + _AFTER))

    def _local_observe(self, key: str, config: KeyConfig, ticket: float, status: int,
                       obs: Observation, cost: float = 1.0) -> Outcome:  # fmt: skip
        if ticket == _ALLOWED or self.policy != "local":
            return Outcome()
        self._seed(key, config)
        if ticket < 0:
            out = self.local.observe(key, config, -ticket - 1, status, obs, cost)
        else:  # granted by the store before it failed: learn from it all the same
            out = self.local._step(key, partial(stray, config, ticket, status, obs))
        self._learned.record(key, config, obs, out)
        return out

    def _seed(self, key: str, config: KeyConfig) -> None:
        """Give ``key`` its last known state, once per outage."""
        if key in self._seeded and self._outage == self.health.outages:
            return
        with self._lock:
            if self._outage != self.health.outages:  # a new outage: seed from what is known now
                self._seeded.clear()
                self._outage = self.health.outages
            if key in self._seeded:
                return
            self._seeded.add(key)
            self.local.clear(key)
            self.local._step(key, partial(self._learned.seed, key, config))
