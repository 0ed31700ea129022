"""Storage backends, chosen by URL: "memory" (default), "sqlite:///file.db" and "redis://host".

A shared store (SQLite, Redis) opened with ``on_storage_error`` comes wrapped in a
``FallbackStorage`` that applies that failure policy (see ``fallback.py``).
"""

from __future__ import annotations

import re

from ..errors import ConfigurationError
from .base import Storage
from .fallback import POLICIES, FallbackStorage, check_policy
from .memory import MemoryStorage
from .sqlite import SQLiteStorage

__all__ = ["POLICIES", "FallbackStorage", "MemoryStorage", "SQLiteStorage", "Storage",
           "check_policy", "open_storage", "redact_url"]  # fmt: skip

_SCHEMES = ("memory", "sqlite", "redis", "rediss", "redis+cluster", "rediss+cluster")


def redact_url(url: str) -> str:
    """A storage URL fit for messages and logs: any password replaced by ``***``."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def open_storage(url: str | Storage | None, on_storage_error: str | None = None) -> Storage:
    """Turn a storage URL (or an existing store) into a Storage; a bad URL names itself.

    With ``on_storage_error`` ("local", "allow" or "deny"), a shared store is wrapped in a
    ``FallbackStorage`` applying that policy; without it (or with "raise"), the store's errors
    are raised as ``StorageError``.
    """
    if on_storage_error is not None:
        check_policy(on_storage_error)
    store = _open(url)
    if on_storage_error in (None, "raise") or not store.shared:
        return store
    if isinstance(store, FallbackStorage):
        return store
    return FallbackStorage(store, on_storage_error, label=_label(url, store))


def _label(url: object, store: Storage) -> str:
    """How log records name a store: its URL without the password, or its file."""
    if isinstance(url, str):
        return redact_url(url)
    named = getattr(store, "url", None) or getattr(store, "path", None)
    return redact_url(str(named)) if named else type(store).__name__


def _open(url: str | Storage | None) -> Storage:
    if url is None or url in ("memory", "memory://"):
        return MemoryStorage()
    if not isinstance(url, str):
        if isinstance(url, Storage):
            return url
        if type(url).__module__.startswith("redis."):  # a ready redis.Redis or RedisCluster
            return _redis(url)
        raise ConfigurationError(f"storage must be a URL string or a Storage, got {url!r}")
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme == "sqlite":
        return SQLiteStorage(url)
    if scheme in _SCHEMES[2:]:
        return _redis(url)
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"storage URL must start with one of {', '.join(s + '://' for s in _SCHEMES)};"
            f" got {redact_url(url)!r}"
        )
    raise ConfigurationError(
        f"storage {scheme!r} is not available in this version (memory and sqlite are);"
        f" got {redact_url(url)!r}"
    )


def _redis(url: object) -> Storage:
    try:
        from .redis import RedisStorage  # noqa: PLC0415  # redis is an optional dependency
    except ImportError as exc:
        shown = redact_url(url) if isinstance(url, str) else type(url).__name__
        raise ConfigurationError(
            f"storage {shown!r} needs redis-py: pip install 'otel-ratelimit[redis]'"
        ) from exc
    return RedisStorage(url)  # type: ignore[arg-type]  # checked by RedisStorage
