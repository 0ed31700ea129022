"""Limit values and the parsing of windows ("30s", "1h") and limits ("100/1h")."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import ConfigurationError

__all__ = ["AdaptiveConfig", "Limit", "LimitSpec", "parse_limit", "parse_limits", "parse_window"]

_UNITS = {
    "ms": 0.001,
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*([a-z]+)?\s*$")
_PER_KEYS = {
    "requests_per_second": 1.0,
    "requests_per_minute": 60.0,
    "requests_per_hour": 3600.0,
    "requests_per_day": 86400.0,
}


def parse_window(window: str | float) -> float:
    """Turn "30s", "1m", "1.5h", "1d", "500ms", "minute" or a number of seconds into seconds."""
    if isinstance(window, bool):
        raise ConfigurationError(f"window must be a duration, got {window!r}")
    if isinstance(window, (int, float)):
        seconds = float(window)
    else:
        match = _WINDOW.match(str(window).lower())
        if match is None or (match.group(1) is None and match.group(2) is None):
            raise ConfigurationError(
                f"window must look like '30s', '1m', '1h' or '1d', got {window!r}"
            )
        unit = match.group(2) or "s"
        if unit not in _UNITS:
            raise ConfigurationError(f"unknown window unit {unit!r} in {window!r}")
        seconds = float(match.group(1) or 1) * _UNITS[unit]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"window must be a positive duration, got {window!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `limit` requests in any `window` seconds, with room for `burst` at once.

    A GCRA bucket: sustained rate ``limit / window``; ``burst`` requests can go back to back.
    With the default ``burst=1`` no interval of ``window`` seconds ever holds more than
    ``limit`` requests, so a server counting fixed or sliding windows never answers 429.
    A larger burst admits up to ``limit + burst - 1`` in a window (a leaky bucket's shape).
    """

    limit: float
    window: float
    burst: float = 1.0
    name: str = "default"
    rate: float = field(init=False, repr=False, compare=False)  # requests per second

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, (int, float)):
            raise ConfigurationError(f"limit must be a number, got {self.limit!r}")
        if not math.isfinite(self.limit) or self.limit <= 0:
            raise ConfigurationError(f"limit must be a positive number, got {self.limit!r}")
        object.__setattr__(self, "window", parse_window(self.window))
        if not isinstance(self.burst, (int, float)) or not self.burst >= 1:
            raise ConfigurationError(f"burst must be a number >= 1, got {self.burst!r}")
        object.__setattr__(self, "rate", self.limit / self.window)  # read on every acquire

    def __str__(self) -> str:
        return f"{self.limit:g}/{self.window:g}s"


LimitSpec = Limit | str | Mapping[str, float] | Iterable[Limit | str]
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/|per)\s*(.+?)\s*$")


def parse_limit(spec: str | Limit, *, name: str = "default") -> Limit:
    """Turn "100/1h", "10/s" or "60 per minute" into a Limit."""
    if isinstance(spec, Limit):
        return spec
    if not isinstance(spec, str):
        raise ConfigurationError(f"limit must look like '100/1h', got {spec!r}")
    match = _LIMIT.match(spec.lower())
    if match is None:
        raise ConfigurationError(f"limit must look like '100/1h' or '60 per minute', got {spec!r}")
    try:
        return Limit(float(match.group(1)), parse_window(match.group(2)), name=name)
    except ConfigurationError as exc:
        raise ConfigurationError(f"bad limit {spec!r}: {exc}") from None


def parse_limits(spec: LimitSpec | None) -> tuple[Limit, ...]:
    """Normalise every accepted form of configured limits into a tuple of named Limits."""
    if spec is None:
        return ()
    if isinstance(spec, (Limit, str)):
        return (parse_limit(spec),)
    if isinstance(spec, Mapping):
        limits = []
        for key, value in spec.items():
            if key not in _PER_KEYS:
                raise ConfigurationError(
                    f"unknown limit key {key!r}; use one of {', '.join(sorted(_PER_KEYS))}"
                )
            limits.append(Limit(value, _PER_KEYS[key], name=key.removeprefix("requests_")))
        return tuple(limits)
    limits = [parse_limit(item) for item in spec]
    named = [lim if len(limits) == 1 else _renamed(lim, i) for i, lim in enumerate(limits)]
    return tuple(named)


def _renamed(limit: Limit, index: int) -> Limit:
    if limit.name != "default":
        return limit
    return Limit(limit.limit, limit.window, limit.burst, name=f"{limit.limit:g}/{limit.window:g}s")


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    """How the rate of an API that announces no limits is learned (AIMD).

    ``initial_rate=None`` leaves the API unthrottled until it first pushes back; the first
    rate is then the success rate measured until that moment. Each later pushback multiplies
    the rate by ``decrease_factor``; each second of healthy traffic adds ``increase_step``.
    """

    initial_rate: float | None = None
    min_rate: float = 0.05
    max_rate: float | None = None
    increase_step: float = 0.25
    decrease_factor: float = 0.9

    def __post_init__(self) -> None:
        for name in ("initial_rate", "max_rate"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(self.min_rate, (int, float)) and self.min_rate > 0):
            raise ConfigurationError(f"min_rate must be a positive number, got {self.min_rate!r}")
        if not (isinstance(self.increase_step, (int, float)) and self.increase_step >= 0):
            raise ConfigurationError(f"increase_step must be >= 0, got {self.increase_step!r}")
        if not (isinstance(self.decrease_factor, (int, float)) and 0 < self.decrease_factor < 1):
            raise ConfigurationError(
                f"decrease_factor must be between 0 and 1, got {self.decrease_factor!r}"
            )
        if self.max_rate is not None and self.max_rate < self.min_rate:
            raise ConfigurationError(
                f"max_rate {self.max_rate!r} is below min_rate {self.min_rate!r}"
            )
