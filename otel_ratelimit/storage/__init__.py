"""Storage backends, chosen by URL: "memory" (default), "sqlite:///file.db" and "redis://host".

A shared store (SQLite, Redis) opened with ``on_storage_error`` comes wrapped in a
``FallbackStorage`` that applies that failure policy (see ``fallback.py``).
"""

from __future__ import annotations

from ..errors import ConfigurationError
from .base import Storage
from .fallback import POLICIES, FallbackStorage, check_policy
from .memory import MemoryStorage
from .sqlite import SQLiteStorage
from .urls import SCHEMES, StorageURL, parse_storage_url, redact_url

__all__ = ["POLICIES", "SCHEMES", "FallbackStorage", "MemoryStorage", "SQLiteStorage", "Storage",
           "StorageURL", "check_policy", "open_storage", "parse_storage_url",
           "redact_url"]  # fmt: skip


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
    scheme = parse_storage_url(url).scheme  # checked before anything connects
    if scheme == "memory":
        return MemoryStorage()
    if scheme == "sqlite":
        return SQLiteStorage(url)
    return _redis(url)


def _redis(url: object) -> Storage:
    try:
        from .redis import RedisStorage  # noqa: PLC0415  # redis is an optional dependency
    except ImportError as exc:
        shown = redact_url(url) if isinstance(url, str) else type(url).__name__
        raise ConfigurationError(
            f"storage {shown!r} needs redis-py: pip install 'otel-ratelimit[redis]'"
        ) from exc
    return RedisStorage(url)  # type: ignore[arg-type]  # checked by RedisStorage
