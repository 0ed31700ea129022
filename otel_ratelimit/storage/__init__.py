"""Storage backends, chosen by URL: "memory" (default) and, with extras, SQLite and Redis."""

from __future__ import annotations

from ..errors import ConfigurationError
from .base import Storage
from .memory import MemoryStorage

__all__ = ["MemoryStorage", "Storage", "open_storage"]

_SCHEMES = ("memory", "sqlite", "redis", "rediss", "redis+cluster")


def open_storage(url: str | Storage | None) -> Storage:
    """Turn a storage URL (or an existing store) into a Storage; a bad URL names itself."""
    if url is None or url in {"memory", "memory://"}:
        return MemoryStorage()
    if not isinstance(url, str):
        if isinstance(url, Storage):
            return url
        raise ConfigurationError(f"storage must be a URL string or a Storage, got {url!r}")
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"storage URL must start with one of {', '.join(s + '://' for s in _SCHEMES)};"
            f" got {url!r}"
        )
    raise ConfigurationError(
        f"storage {scheme!r} is not available in this version (only 'memory'); got {url!r}"
    )
