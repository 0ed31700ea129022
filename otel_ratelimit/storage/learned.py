"""What responses taught about each key, kept in the process to seed local limiting when the
shared store fails (see ``fallback.py``): no store command is spent on it."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from .. import engine
from ..engine import KeyConfig, KeyState, Outcome
from ..headers import Observation, Quota

__all__ = ["Learned", "stray"]


@dataclass(slots=True)
class _Known:
    """One key: its latest quota per policy, cooldown and adaptive rate (epoch seconds)."""

    config: KeyConfig
    quotas: dict[str, tuple[float, Quota]] = field(default_factory=dict)
    cooldown_until: float = 0.0
    rate: float | None = None


class Learned:
    """The last known limits, cooldown and rate of at most ``max_keys`` keys (LRU)."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._keys: OrderedDict[str, _Known] = OrderedDict()
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def record(self, key: str, config: KeyConfig, obs: Observation, out: Outcome) -> None:
        """Keep what one response taught (cheap when it taught nothing)."""
        quotas = [q for q in obs.quotas if q.remaining is not None]
        if not quotas and out.backoff is None and out.rate is None:
            return
        now = time.time()
        with self._lock:
            known = self._keys.get(key)
            if known is None:
                known = self._keys[key] = _Known(config)
                if len(self._keys) > self._max_keys:
                    self._keys.popitem(last=False)
            else:
                self._keys.move_to_end(key)
                known.config = config
            for q in quotas:
                known.quotas[q.policy] = (now, q)
            if out.backoff is not None:
                known.cooldown_until = max(known.cooldown_until, now + out.cooldown)
            if out.rate is not None:
                known.rate = out.rate

    def config(self, key: str) -> KeyConfig | None:
        """The configuration ``key`` was last seen with, if anything was learned of it."""
        known = self._keys.get(key)
        return None if known is None else known.config

    def seed(self, key: str, config: KeyConfig, s: KeyState, now: float) -> None:
        """Fill the fresh state ``s`` of ``key`` with its last known windows, cooldown and rate
        (a storage step: ``now`` is unused, the quotas are replayed at the time they came)."""
        with self._lock:
            known = self._keys.get(key)
            if known is None:
                return
            quotas = sorted(known.quotas.values(), key=lambda item: item[0])
            cooldown_until, rate = known.cooldown_until, known.rate
        for seen, quota in quotas:
            engine.observe(s, config, seen, 0.0, 200, Observation(quotas=(quota,)))
        s.cooldown_until = cooldown_until
        s.rate = rate
        s.answered = s.strikes = 0
        s.probe_ok = 0.0

    def forget(self, key: str | None = None) -> None:
        """Drop one key, or all."""
        with self._lock:
            if key is None:
                self._keys.clear()
            else:
                self._keys.pop(key, None)


def stray(config: KeyConfig, ticket: float, status: int, obs: Observation,
          s: KeyState, now: float) -> Outcome:  # fmt: skip
    """Fold into a local state the response to a slot the shared store granted before it
    failed: its headers count, but it neither answers the local probe nor a local request."""
    answered, probing = s.answered, s.probing_until
    out = engine.observe(s, config, now, ticket, status, obs, 0.0)  # no local slot to give back
    s.answered, s.probing_until = answered, probing
    return out
