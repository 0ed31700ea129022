"""The values a response's rate-limit headers turn into."""

from __future__ import annotations

from typing import Any, ClassVar, Final

__all__ = ["Observation", "Quota"]

# The parser makes these on every response. They are plain classes with their own
# ``__init__``, not dataclasses: compiled (setup.py), a plain class is a C struct filled in
# place and its ``Final`` attributes are read-only, where a dataclass's generated ``__init__``
# runs as Python (a frozen one through ``object.__setattr__``, three times slower again).
# Equality, hashing and repr are by value, as a frozen dataclass's were.


class _Value:
    """Equal, hashable and printed by value: by ``fields()``, named by ``FIELDS``."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def fields(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash(self.fields())

    def __repr__(self) -> str:
        pairs = zip(self.FIELDS, self.fields(), strict=True)
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in pairs)})"


class Quota(_Value):
    """One rate-limit policy as the server reported it (read-only)."""

    __slots__ = ("limit", "policy", "remaining", "reset_after", "window")
    FIELDS: ClassVar[tuple[str, ...]] = ("policy", "limit", "remaining", "reset_after", "window")

    def __init__(
        self,
        policy: str,
        limit: float | None,
        remaining: float | None,
        reset_after: float | None,
        window: float | None = None,
    ) -> None:
        self.policy: Final = policy
        self.limit: Final = limit
        self.remaining: Final = remaining
        self.reset_after: Final = reset_after
        self.window: Final = window

    def fields(self) -> tuple[str, float | None, float | None, float | None, float | None]:
        """Every field, in the order of ``FIELDS``."""
        return (self.policy, self.limit, self.remaining, self.reset_after, self.window)

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (for JSON)."""
        return dict(zip(Quota.FIELDS, self.fields(), strict=True))


class Observation(_Value):
    """Everything one response said about rate limits (read-only).

    ``errors`` counts the rate-limit values the response carried but the parser rejected
    (malformed, negative, NaN, a zero quota, a reset or wait beyond ``MAX_RESET_SECONDS``):
    each is ignored, so telemetry (``ratelimit.header.errors``) is where it shows. A value
    read by two rows counts once; headers that no row reads never count.
    """

    __slots__ = ("bucket", "errors", "is_global", "quotas", "reason", "retry_after", "style")
    FIELDS: ClassVar[tuple[str, ...]] = (
        "quotas",
        "retry_after",
        "bucket",
        "is_global",
        "reason",
        "errors",
        "style",
    )

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
        self.quotas: Final = quotas
        self.retry_after: Final = retry_after
        self.bucket: Final = bucket
        self.is_global: Final = is_global
        self.reason: Final = reason
        self.errors: Final = errors
        self.style: Final = style

    def fields(self) -> tuple[Any, ...]:
        """Every field, in the order of ``FIELDS``."""
        return (self.quotas, self.retry_after, self.bucket, self.is_global, self.reason,
                self.errors, self.style)  # fmt: skip

    @property
    def empty(self) -> bool:
        """True when the response gave nothing to act on: no quotas and no Retry-After."""
        return not self.quotas and self.retry_after is None
