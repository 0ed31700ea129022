"""Exceptions raised by otel_ratelimit.

Exception
├── RateLimitError                  base class of everything raised here
│   ├── ConfigurationError          (also a ValueError) a bad limit, window, URL or option
│   ├── RateLimitExceeded           the quota could not be had within max_wait / the deadline
│   └── StorageError                the shared store failed and on_storage_error="deny"
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "RateLimitError", "RateLimitExceeded", "StorageError"]


class RateLimitError(Exception):
    """Base class of every exception otel_ratelimit raises."""


class ConfigurationError(RateLimitError, ValueError):
    """A configuration value is wrong; the message names the bad value."""


class RateLimitExceeded(RateLimitError):
    """The request would have to wait longer than allowed for its quota."""

    def __init__(self, key: str, retry_after: float, message: str | None = None) -> None:
        self.key = key
        self.retry_after = retry_after
        super().__init__(
            message or f"rate limit for {key!r} exceeded; retry after {retry_after:.3f}s"
        )


class StorageError(RateLimitError):
    """The rate-limit store could not be reached or used."""
