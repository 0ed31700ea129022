"""Storage URLs checked before anything connects: a bad one is a ConfigurationError naming it.

``parse_storage_url`` is pure (no socket, no file created): ``open_storage`` calls it first, so
a malformed URL never reaches redis-py or sqlite3, and every message shows the URL through
``redact_url`` (no password, no secret query value).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigurationError

__all__ = ["SCHEMES", "StorageURL", "parse_storage_url", "redact_url"]

SCHEMES = ("memory", "sqlite", "redis", "rediss", "redis+cluster", "rediss+cluster")
_MAX_LENGTH = 4096
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|passwd|pass|token|secret|auth|key)=)[^&#]*")


@dataclass(frozen=True, slots=True)
class StorageURL:
    """A checked storage URL: its scheme and where it points (shown without a password).

    ``location`` is "" for memory, the file path for SQLite and ``host:port/db`` for Redis.
    """

    scheme: str
    location: str


def redact_url(url: str) -> str:
    """A storage URL fit for messages and logs: password and secret query values as ``***``.

    Everything between the user name and the last ``@`` goes, so a password holding ``@``,
    ``/``, ``?`` or ``#`` (not percent-encoded, as people write them) is hidden whole; a
    message may show less of a URL than it could, never a password.
    """
    head, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if sep and at >= 0:
        user, colon, _ = rest[:at].partition(":")
        if colon:
            url = f"{head}{sep}{user}:***{rest[at:]}"
    return _SECRET_QUERY.sub(r"\1***", url)


def _bad(message: str, url: str) -> ConfigurationError:
    return ConfigurationError(f"{message}; got {redact_url(url)[:200]!r}")


def parse_storage_url(url: object) -> StorageURL:
    """Check a storage URL without connecting; ConfigurationError (naming it) when it's bad."""
    if not isinstance(url, str):
        raise ConfigurationError(f"storage URL must be a string, got {type(url).__name__}")
    if len(url) > _MAX_LENGTH:
        raise _bad(f"storage URL is longer than {_MAX_LENGTH} characters", url)
    if not url.isprintable() or any(c.isspace() for c in url):
        raise _bad("storage URL must not contain spaces or control characters", url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme == "memory":
        if url.lower() not in ("memory", "memory://"):
            raise _bad("memory storage takes no location: use 'memory'", url)
        return StorageURL("memory", "")
    if scheme == "sqlite":
        from .sqlite import sqlite_path  # noqa: PLC0415  # sqlite.py imports redact_url from here

        return StorageURL("sqlite", str(sqlite_path(url)))
    if scheme not in SCHEMES or "://" not in url:
        raise _bad(f"storage URL must start with one of {', '.join(s + '://' for s in SCHEMES)}",
                   url)  # fmt: skip
    return StorageURL(scheme, _redis_location(scheme, url))


def _redis_location(scheme: str, url: str) -> str:
    """``host:port/db`` of a Redis URL, after the checks redis-py would make later (or not)."""
    if not url.isascii():
        raise _bad("Redis URL must be ASCII (percent-encode the password, punycode the host)", url)
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or "localhost"  # as redis-py does
    except ValueError:
        raise _bad("Redis URL port must be a number from 1 to 65535", url) from None
    if port == 0:
        raise _bad("Redis URL port must be a number from 1 to 65535", url)
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad("Redis URL has a bad IPv6 address", url) from None
    elif not _HOST.fullmatch(host):
        raise _bad("Redis URL host must be a host name or an IP address", url)
    db = parts.path.strip("/")
    if db and not (db.isdigit() and len(db) < 6):
        raise _bad("Redis URL path must be a database number such as '/0'", url)
    if db not in ("", "0") and scheme.endswith("+cluster"):
        raise _bad("Redis Cluster has only database 0", url)
    if parts.query:
        _check_query(parts.query, url)
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port or 6379}/{db or 0}"


def _check_query(query: str, url: str) -> None:
    """Option values redis-py would reject at connection time, rejected here instead."""
    try:
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS  # noqa: PLC0415  # optional
    except ImportError:
        return  # open_storage names the missing install
    for name, value in parse_qsl(query, keep_blank_values=True):
        parser: Callable[[str], object] | None = URL_QUERY_ARGUMENT_PARSERS.get(name)  # type: ignore[assignment]
        if parser is None or not value:
            continue
        try:
            parser(value)
        except (TypeError, ValueError, OverflowError):
            raise _bad(f"Redis URL option {name!r} has a bad value", url) from None
