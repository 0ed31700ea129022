"""The values a response's rate-limit headers turn into."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Observation", "Quota"]


@dataclass(frozen=True, slots=True)
class Quota:
    """One rate-limit policy as the server reported it."""

    policy: str
    limit: float | None
    remaining: float | None
    reset_after: float | None
    window: float | None = None


@dataclass(frozen=True, slots=True)
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

    @property
    def empty(self) -> bool:
        """True when the response gave nothing to act on: no quotas and no Retry-After."""
        return not self.quotas and self.retry_after is None
