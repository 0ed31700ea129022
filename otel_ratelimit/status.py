"""What a key's state means to a person: RateLimitStatus, built from the engine state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .engine import KeyConfig, KeyState, roll_window, window_earliest
from .limits import Limit

__all__ = ["PolicyStatus", "RateLimitStatus", "describe"]


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """One policy of a key: how much is left now and when it is whole again."""

    name: str
    source: str  # "header", "configured" or "adaptive"
    limit: float
    remaining: float
    window: float | None  # seconds, when known
    reset_time: float  # epoch seconds when the quota is whole again (or the window resets)
    wait: float  # how long a request arriving now would wait for this policy

    @property
    def utilization(self) -> float:
        """The used share of the limit, 0..1."""
        return min(1.0, max(0.0, 1.0 - self.remaining / self.limit)) if self.limit else 0.0


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """The state of one endpoint, described by the policy that binds first.

    ``remaining == 0`` is reported as exceeded, never as full.
    """

    endpoint: str
    limit: float
    remaining: float
    reset_time: float  # epoch seconds
    window: float | None
    reset_in: float  # seconds from now
    is_exceeded: bool
    utilization: float
    policies: tuple[PolicyStatus, ...]
    cooldown_until: float  # epoch seconds; 0.0 when no cooldown is in force
    rate: float | None  # the learned adaptive rate in requests/second, when there is one


def _configured(
    lim: Limit, tat: float, now: float, epoch: Callable[[float], float]
) -> PolicyStatus:
    backlog = max(tat, now) - now  # seconds of already reserved traffic
    remaining = max(0.0, min(lim.limit, lim.limit - backlog * lim.rate))
    wait = max(0.0, tat - (lim.burst - 1.0) / lim.rate - now)
    return PolicyStatus(lim.name, "configured", lim.limit, remaining, lim.window,
                        epoch(max(tat, now)), wait)  # fmt: skip


def describe(
    endpoint: str,
    state: KeyState,
    config: KeyConfig,
    now: float,
    epoch: Callable[[float], float],
) -> RateLimitStatus | None:
    """Describe ``state`` at ``now``; ``epoch`` converts store times to Unix time."""
    policies = [
        _configured(lim, state.tats.get(lim.name, 0.0), now, epoch) for lim in config.limits
    ]
    for name, w in state.windows.items():
        current = roll_window(w, now)
        remaining = max(0.0, current.base - current.spent)
        wait = max(0.0, window_earliest(w, now, 1.0)[0] - now)
        policies.append(PolicyStatus(name, "header", current.limit, remaining,
                                     current.length or None, epoch(current.end), wait))  # fmt: skip
    if state.rate is not None and not state.windows:
        tat = state.tats.get("~adaptive", 0.0)
        wait = max(0.0, tat - now)
        policies.append(PolicyStatus("adaptive", "adaptive", state.rate, 1.0 if wait == 0 else 0.0,
                                     1.0, epoch(max(tat, now)), wait))  # fmt: skip
    cooldown = state.cooldown_until if state.cooldown_until > now else 0.0
    if not policies:
        if not cooldown:
            return None
        policies.append(PolicyStatus("cooldown", "header", 1.0, 0.0, None, epoch(cooldown),
                                     cooldown - now))  # fmt: skip
    binding = max(policies, key=lambda p: (p.wait, p.utilization))
    reset_time = max(binding.reset_time, epoch(cooldown) if cooldown else 0.0)
    exceeded = binding.remaining <= 0 or binding.wait > 0 or bool(cooldown)
    return RateLimitStatus(
        endpoint=endpoint,
        limit=binding.limit,
        remaining=binding.remaining,
        reset_time=reset_time,
        window=binding.window,
        reset_in=max(0.0, reset_time - epoch(now)),
        is_exceeded=exceeded,
        utilization=binding.utilization,
        policies=tuple(policies),
        cooldown_until=epoch(cooldown) if cooldown else 0.0,
        rate=state.rate,
    )
