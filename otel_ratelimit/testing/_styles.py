"""What each vendor style sends for one admission decision: headers and a JSON body."""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["EPS", "QUOTA_429_ONLY", "Decision", "response_body", "response_headers"]

EPS = 1e-9  # slack for float comparisons of bucket levels and window arithmetic
_TOKEN_LIMIT = 10_000_000  # OpenAI-style token quota: reported, never binds
QUOTA_429_ONLY = ("stripe", "429-only", "retry-after-seconds", "retry-after-date")
"""Styles that send no quota headers, only a 429 (and maybe Retry-After) when over."""


@dataclass(frozen=True)
class Decision:
    """One admission, with the quota as it stood right after it."""

    admitted: bool
    limit: int
    remaining: int
    reset: float  # seconds until the window resets (leaky/gcra: until the bucket is empty)
    retry_in: float  # seconds until a request could be admitted again
    wall: float  # time.time() at admission, for epoch and date headers


def response_headers(
    style: str, d: Decision, *, window: float, retry_after: float | None
) -> list[tuple[str, str]]:
    """The response headers of ``style`` for decision ``d``."""
    limit, remaining, used = d.limit, d.remaining, d.limit - d.remaining
    t = max(0, math.ceil(d.reset))  # whole seconds until reset, rounded up
    epoch = math.ceil(d.wall + d.reset)  # wall-clock reset, rounded up to the second
    w = _number(window)
    rfc3339 = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    quota: dict[str, list[tuple[str, object]]] = {
        "ietf": [("RateLimit-Policy", f'"default";q={limit};w={w}'),
                 ("RateLimit", f'"default";r={remaining};t={t}')],
        "ietf-07": [("RateLimit", f"limit={limit}, remaining={remaining}, reset={t}")],
        "ietf-06": [("RateLimit-Limit", f"{limit}, {limit};w={w}"),
                    ("RateLimit-Remaining", remaining), ("RateLimit-Reset", t)],
        "github": [("x-ratelimit-limit", limit), ("x-ratelimit-remaining", remaining),
                   ("x-ratelimit-used", used), ("x-ratelimit-reset", epoch),
                   ("x-ratelimit-resource", "core")],
        "twitter": [("x-rate-limit-limit", limit), ("x-rate-limit-remaining", remaining),
                    ("x-rate-limit-reset", epoch)],
        "openai": [("x-ratelimit-limit-requests", limit),
                   ("x-ratelimit-remaining-requests", remaining),
                   ("x-ratelimit-reset-requests", _go_duration(d.reset)),
                   # a token quota that never binds
                   ("x-ratelimit-limit-tokens", _TOKEN_LIMIT),
                   ("x-ratelimit-remaining-tokens", _TOKEN_LIMIT),
                   ("x-ratelimit-reset-tokens", "0s")],
        "anthropic": [("anthropic-ratelimit-requests-limit", limit),
                      ("anthropic-ratelimit-requests-remaining", remaining),
                      ("anthropic-ratelimit-requests-reset", rfc3339)],
        "discord": [("X-RateLimit-Limit", limit), ("X-RateLimit-Remaining", remaining),
                    ("X-RateLimit-Reset", f"{d.wall + d.reset:.3f}"),
                    ("X-RateLimit-Reset-After", f"{d.reset:.3f}"),
                    ("X-RateLimit-Bucket", "abcd1234")],
        "reddit": [("X-Ratelimit-Used", used),
                   ("X-Ratelimit-Remaining", f"{float(remaining):.1f}"),
                   ("X-Ratelimit-Reset", t)],
        "shopify": [("X-Shopify-Shop-Api-Call-Limit", f"{used}/{limit}")],
        "rapidapi": [("X-RateLimit-Requests-Limit", limit),
                     ("X-RateLimit-Requests-Remaining", remaining),
                     ("X-RateLimit-Requests-Reset", t)],
    }  # fmt: skip
    h = quota.get(style, [])
    if not d.admitted:
        if style == "stripe":
            h.append(("Stripe-Rate-Limited-Reason", "global-rate"))
        wait = _retry_wait(d, retry_after)
        if style == "retry-after-date":
            h.append(("Retry-After", email.utils.formatdate(math.ceil(d.wall + wait), usegmt=True)))
        elif retry_after is not None:
            h.append(("Retry-After", math.ceil(retry_after)))
        elif style in ("discord", "retry-after-seconds"):
            h.append(("Retry-After", max(1, math.ceil(wait))))
    return [(name, str(value)) for name, value in h]


def response_body(style: str, d: Decision, *, retry_after: float | None) -> dict[str, object]:
    """The JSON body of ``style`` for decision ``d``."""
    if d.admitted:
        return {"ok": True}
    if style == "discord":
        wait = round(_retry_wait(d, retry_after), 3)
        return {"error": "rate limited", "retry_after": wait, "global": False}
    return {"error": "rate limited"}


def _retry_wait(d: Decision, retry_after: float | None) -> float:
    return retry_after if retry_after is not None else d.retry_in


def _number(x: float) -> str:
    """``1.0`` -> ``1``, ``0.25`` -> ``0.25``."""
    return str(int(x)) if float(x).is_integer() else f"{x:.3f}".rstrip("0")


def _go_duration(seconds: float) -> str:
    """Go's ``time.Duration`` format at millisecond resolution, rounded up: 120ms, 1s, 6m0s."""
    ms = max(0, math.ceil(seconds * 1000 - EPS))
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs = str(ms // 1000) if ms % 1000 == 0 else f"{ms / 1000:.3f}".rstrip("0")
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{secs}s"
