"""The values a response's rate-limit headers turn into."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Observation", "Quota"]

# A frozen dataclass's own __init__ stores each field through object.__setattr__, about three
# times what a plain store costs; the parser makes these on every response. So both classes
# store through their slots' descriptors instead (_QUOTA, _OBSERVATION: set once they exist).


@dataclass(frozen=True, slots=True, init=False)
class Quota:
    """One rate-limit policy as the server reported it."""

    policy: str
    limit: float | None
    remaining: float | None
    reset_after: float | None
    window: float | None = None

    def __init__(
        self,
        policy: str,
        limit: float | None,
        remaining: float | None,
        reset_after: float | None,
        window: float | None = None,
    ) -> None:
        set_policy, set_limit, set_remaining, set_reset_after, set_window = _QUOTA
        set_policy(self, policy)
        set_limit(self, limit)
        set_remaining(self, remaining)
        set_reset_after(self, reset_after)
        set_window(self, window)


@dataclass(frozen=True, slots=True, init=False)
class Observation:
    """Everything one response said about rate limits.

    ``errors`` counts the rate-limit values the response carried but the parser rejected
    (malformed, negative, NaN, a zero quota, a reset or wait beyond ``MAX_RESET_SECONDS``):
    each is ignored, so telemetry (``ratelimit.header.errors``) is where it shows. A value
    read by two rows counts once; headers that no row reads never count.
    """

    quotas: tuple[Quota, ...] = ()
    retry_after: float | None = None
    bucket: str | None = None
    is_global: bool = False
    reason: str | None = None
    errors: int = 0
    style: str | None = None

    def __init__(
        self,
        quotas: tuple[Quota, ...] = (),
        retry_after: float | None = None,
        bucket: str | None = None,
        is_global: bool = False,
        reason: str | None = None,
        errors: int = 0,
        style: str | None = None,
    ) -> None:
        set_quotas, set_retry_after, set_bucket, set_global, set_reason, set_errors, set_style = (
            _OBSERVATION
        )
        set_quotas(self, quotas)
        set_retry_after(self, retry_after)
        set_bucket(self, bucket)
        set_global(self, is_global)
        set_reason(self, reason)
        set_errors(self, errors)
        set_style(self, style)

    @property
    def empty(self) -> bool:
        """True when the response gave nothing to act on: no quotas and no Retry-After."""
        return not self.quotas and self.retry_after is None


def _setters(cls: type, names: str) -> tuple[Callable[[object, object], None], ...]:
    return tuple(vars(cls)[name].__set__ for name in names.split())


_QUOTA = _setters(Quota, "policy limit remaining reset_after window")
_OBSERVATION = _setters(Observation, "quotas retry_after bucket is_global reason errors style")
