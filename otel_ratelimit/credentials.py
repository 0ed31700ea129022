"""Credential partitions: one limiter key per API credential, named by a keyed hash of it.

With ``RateLimiter(partition_by_credentials=True)`` a request carrying ``Authorization``,
``X-Api-Key`` or ``Api-Key`` is limited under ``host#<12 hex>``, where the hex digits are the
start of HMAC-SHA256(secret, header value): each token gets its own quota, as APIs count them,
and the token itself is never in a key, a span, a metric or a log.

Why this reveals nothing: 48 bits of a keyed hash cannot be turned back into a token of
hundreds of bits, and without the secret nobody can even test a guessed token against a key.
The secret comes from ``credential_key=``, else ``$OTEL_RATELIMIT_CREDENTIAL_KEY``, else a
fixed public default (then a guessed *weak* token could be checked offline; set a secret of
your own when tokens are short). Processes that share one Redis must use the same secret, or
the same token lands on different keys and each process spends the full quota.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from .errors import ConfigurationError

__all__ = ["DEFAULT_CREDENTIAL_KEY", "ENV", "HEADERS", "CredentialPartition"]

ENV = "OTEL_RATELIMIT_CREDENTIAL_KEY"
DEFAULT_CREDENTIAL_KEY = b"otel-ratelimit/credential-partition/v1"
HEADERS = ("authorization", "x-api-key", "api-key")  # the first one present is the credential
DIGITS = 12


class CredentialPartition:
    """Gives a request's credential partition (12 hex digits), or None when it carries none."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str | bytes | None = None) -> None:
        if secret is None:
            secret = os.environ.get(ENV) or DEFAULT_CREDENTIAL_KEY
        if isinstance(secret, str):
            secret = secret.encode()
        if not isinstance(secret, bytes) or not secret:
            raise ConfigurationError(
                f"credential_key must be a non-empty str or bytes, got {type(secret).__name__}"
            )  # the value is a secret: its type is named, never the value
        self._secret = secret

    def __call__(self, request: Any) -> str | None:
        headers = getattr(request, "headers", None)
        if headers is None:  # a compat wrapper: the other library's request is in ``raw``
            headers = getattr(getattr(request, "raw", None), "headers", None)
        if headers is None:
            return None
        for name in HEADERS:
            value = headers.get(name)
            if value:
                return self.tag(value)
        return None

    def tag(self, credential: str | bytes) -> str:
        """The partition of one credential value."""
        data = (
            credential.encode("utf-8", "surrogateescape")
            if isinstance(credential, str)
            else credential
        )
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()[:DIGITS]

    def __repr__(self) -> str:
        return "CredentialPartition(secret=***)"
