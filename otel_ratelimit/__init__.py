"""otel_ratelimit: outbound API rate limiting for web apps, observable end to end."""

from __future__ import annotations

from typing import Any

from . import engine as _engine
from .compat import make_client_for
from .errors import ConfigurationError, RateLimitError, RateLimitExceeded, StorageError
from .headers import Observation, Quota, parse_headers
from .limiter import RateLimiter
from .limits import AdaptiveConfig, Limit
from .presets import PRESETS, Preset, register_preset
from .retry import RetriesExhausted, RetryConfig, RetryHandler, RetryStrategy
from .status import PolicyStatus, RateLimitStatus

__all__ = [
    "COMPILED",
    "PRESETS",
    "AdaptiveConfig",
    "ConfigurationError",
    "Limit",
    "Observation",
    "PolicyStatus",
    "Preset",
    "Quota",
    "RateLimitError",
    "RateLimitExceeded",
    "RateLimitMiddleware",
    "RateLimitStatus",
    "RateLimiter",
    "RetriesExhausted",
    "RetryConfig",
    "RetryHandler",
    "RetryStrategy",
    "StorageError",
    "make_client_for",
    "parse_headers",
    "register_preset",
]
__version__ = "0.1.0.dev0"
# True when the decision path (engine, header parsing, the request flow, the in-memory store)
# runs compiled by mypyc (setup.py); False when it runs as the pure Python it is written in.
COMPILED: bool = not _engine.__file__.endswith(".py")


def __getattr__(name: str) -> Any:
    if name == "RateLimitMiddleware":  # imported on demand: the core needs no web framework
        from .asgi import RateLimitMiddleware  # noqa: PLC0415

        return RateLimitMiddleware
    raise AttributeError(f"module 'otel_ratelimit' has no attribute {name!r}")
