"""Numbers and reset times as servers write them: five encodings, all checked for sanity."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache

__all__ = [
    "MAX_CHARS",
    "MAX_RESET_SECONDS",
    "number",
    "parse_reset",
    "parse_retry_after",
    "plain",
    "seconds",
]

MAX_RESET_SECONDS: float = 32 * 86400
"""Resets and waits further away than this are absurd (no API makes callers wait a month)."""

MAX_CHARS = 4096  # longer values are bugs or attacks; parsing them would only burn CPU
SHORT = 15  # digits read without a cache or a regex: 15 stay exact and finite as a float
# ASCII digits only: float() would also take "nan", "inf", "1_000" and non-ASCII digits.
_NUM = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_PART = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)"  # "ms" is tried before "m"
_GO = re.compile(f"(?:{_GO_PART})+")
_GO_PARTS = re.compile(_GO_PART)
_GO_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def number(text: str) -> float | None:
    """A finite number in plain decimal notation, or None."""
    text = text.strip()
    value = float(text) if (text.isdigit() and text.isascii()) or _NUM.fullmatch(text) else math.nan
    return value if math.isfinite(value) else None  # "1e309" overflows to inf


def _within(seconds: float | None) -> float | None:
    return seconds if seconds is not None and 0 <= seconds <= MAX_RESET_SECONDS else None


def _from_epoch(epoch: float | None, now: float) -> float | None:
    if epoch is None or not math.isfinite(delta := epoch - now) or delta > MAX_RESET_SECONDS:
        return None
    return max(0.0, delta)  # a reset in the past means the window has already reset


def _rfc3339(text: str) -> float | None:
    if (match := _RFC3339.fullmatch(text)) is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    sign = {"+": 1, "-": -1}.get(match[8], 0)  # no sign: "Z"
    offset = sign * (int(match[9] or 0) * 3600 + int(match[10] or 0) * 60)
    try:  # second 60 is a leap second: 59 is close enough
        moment = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=timezone.utc)
    except ValueError:
        return None
    return moment.timestamp() + float(match[7] or 0) - offset


def _http_date(text: str) -> float | None:
    if not any(c.isalpha() for c in text):  # email.utils would read some digit runs as dates
        return None
    try:
        moment = parsedate_to_datetime(text)
        return moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp()
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


def parse_reset(value: object, *, now: float, kind: str = "auto") -> float | None:
    """Seconds from ``now`` until a window resets, or None if ``value`` is no sane reset.

    ``kind``: auto, delta, delta-ms, epoch, epoch-ms, duration (Go, as OpenAI sends), rfc3339,
    http-date, or retry-after (delta seconds or HTTP-date, as RFC 9110 says).
    """
    if not isinstance(value, str) or len(value) > MAX_CHARS:
        return None
    return seconds(value, now, kind)


def plain(text: str, kind: str = "") -> str | None:
    """``text`` as a short plain decimal that ``float`` reads exactly as ``number`` would (for a
    duration, without its "s"), or None: signs, spaces, exponents, long or non-ASCII digits."""
    head = text[:-1] if kind == "duration" and text[-1:] == "s" else text
    ok = len(head) <= SHORT and head.replace(".", "", 1).isdigit() and head.isascii()
    return head if ok else None


def seconds(text: str, now: float, kind: str) -> float | None:
    """`parse_reset` for a string of at most MAX_CHARS characters."""
    # A plain decimal ("30", "1712345678", "59.999s" for a duration) is read on the spot: its
    # text changes with every response, so the cache would only miss and evict.
    if (head := plain(text, kind)) is not None:
        found = _as_kind(float(head), kind)
    else:
        found = _instant(text, kind)
    if found is None:
        return None
    value, is_delta = found
    return value if is_delta else _from_epoch(value, now)


# Servers repeat their values (the limit, a window, resets on the second): reading one text
# is a pure function of it, so it is cached; only the epoch's distance to `now` is not.
@lru_cache(maxsize=512)
def _instant(text: str, kind: str) -> tuple[float, bool] | None:
    """(seconds, True) for a sane delta, (epoch seconds, False) for a moment, or None."""
    text = text.strip()
    if kind == "duration":  # a Go duration ends in a unit, a plain number never does
        if (match := _GO.fullmatch(text)) and match.start(1) == 0:  # one part, as in "1s"
            return _delta(float(match[1]) * _GO_UNIT[match[2]])
        if match:
            return _delta(sum([float(n) * _GO_UNIT[u] for n, u in _GO_PARTS.findall(text)]))
        return _delta(number(text))
    value = number(text)
    if value is None:
        date = _rfc3339(text) if kind in ("auto", "rfc3339") else None
        if date is None and kind in ("auto", "http-date", "retry-after"):
            date = _http_date(text)
        return None if date is None else (date, False)
    return _as_kind(value, kind)


def _as_kind(value: float, kind: str) -> tuple[float, bool] | None:
    """`_instant` for a finite number: what `kind` makes of it."""
    if kind == "duration":  # a plain number of seconds
        return _delta(value)
    if kind == "epoch-ms" or (kind == "auto" and value >= 1e12):
        return value / 1000, False
    if kind == "epoch" or (kind == "auto" and value >= 1e9):
        return value, False
    if kind == "delta-ms":
        value /= 1000
    return _delta(value) if kind in ("auto", "delta", "delta-ms", "retry-after") else None


def _delta(seconds: float | None) -> tuple[float, bool] | None:
    return None if (seconds := _within(seconds)) is None else (seconds, True)


def parse_retry_after(value: object, *, now: float) -> float | None:
    """Seconds to wait from an RFC 9110 Retry-After value (delta seconds or HTTP-date), or None."""
    return parse_reset(value, now=now, kind="retry-after")
