"""One response's rate-limit fields, read once, and the checked reads the parsers share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, KeysView
from functools import lru_cache
from typing import Any, TypeAlias

from ._model import Quota
from ._reset import MAX_CHARS, MAX_RESET_SECONDS, number, plain, seconds

__all__ = [
    "CHECKS",
    "Context",
    "make_quota",
    "read_amount",
    "read_fields",
    "read_reset",
    "read_token",
]

_MAX_TOKEN = 64  # bucket/reason strings become telemetry attributes: keep them short
_TOKEN = re.compile(r"[!-~]+")  # visible ASCII without spaces
# What a sane number looks like, keyed by the IETF parameter letter; plain headers reuse these.
CHECKS: dict[str, Callable[[float], bool]] = {
    "q": lambda v: v > 0,  # quota/limit: a zero quota is garbage, not "blocked"
    "w": lambda v: 0 < v <= MAX_RESET_SECONDS,  # window
    "r": lambda v: v >= 0,  # remaining (or used)
    "t": lambda v: 0 <= v <= MAX_RESET_SECONDS,  # seconds until reset
}
_F: TypeAlias = "float | None"


def read_fields(headers: object, reads: frozenset[str]) -> tuple[dict[str, str | None], set[str]]:
    """The fields named in `reads` (None: undecodable, oversized or not text) by lowercase name,
    and the keys of the pairs that are no (name, value) at all."""
    fields: dict[str, str | None] = {}
    bad: set[str] = set()
    if _lowercased(type(headers)):  # httpx's own list: (raw, lowercase, value) bytes triples
        triples = getattr(headers, "_list", None)
        if type(triples) is list:
            return _read_lowercase(triples, reads, fields), bad
    raw = getattr(headers, "raw", None)  # httpx's Headers: (bytes, bytes) pairs, not decoded yet
    if type(raw) is list:
        return _read_raw(raw, reads, fields), bad
    method = getattr(headers, "multi_items", None) or getattr(headers, "items", None)
    pairs = method() if callable(method) else headers
    if type(pairs) is not list and (
        isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable)
    ):
        return fields, bad
    index = -1
    for pair in pairs:
        index += 1
        if type(pair) is tuple and len(pair) == 2:
            name, value = pair
        elif isinstance(pair, (tuple, list)) and len(pair) == 2:
            name, value = pair[0], pair[1]
        else:
            name = value = None
        if type(name) is not str:
            name = name.decode("latin-1") if isinstance(name, bytes) else name
            if not isinstance(name, str):
                bad.add(f"#{index}")
                continue
        if (name := name.strip().lower()) not in reads:
            continue  # no row reads it
        _add(fields, name, value)
    return fields, bad


def _add(fields: dict[str, str | None], name: str, value: object) -> None:
    """Keep one field's text (None: undecodable, not text or oversized); a repeated field is
    one list (RFC 9110 section 5.3)."""
    text: str | None = value if isinstance(value, str) else None
    if isinstance(value, bytes):
        try:
            text = value.decode()  # UTF-8, without looking the codec up by name
        except UnicodeDecodeError:
            text = None
    if name in fields:
        old = fields[name]
        text = None if old is None or text is None else f"{old}, {text}"
    fields[name] = text if text is None or len(text) <= MAX_CHARS else None


_MAX_NAMES = 512  # raw header names remembered per set of read names (a bound, not a need)
_NEW: Any = object()  # a raw name not seen yet


@lru_cache(maxsize=64)
def _lowered(reads: frozenset[str]) -> dict[bytes, str | None]:
    """Raw header name -> the read name it is (None: no row reads it), filled as names come."""
    for name in reads:  # unchanged behaviour: a configured non-latin-1 name fails the parse
        name.encode("latin-1")
    return {}


_HTTPX_HEADERS: dict[type, bool] = {}


def _lowercased(cls: type) -> bool:
    """Whether ``cls`` is httpx's (or httpx2's) ``Headers``, whose private ``_list`` holds each
    name lowercased already: reading it skips building ``raw`` and lowering names. Any other
    class, or an httpx whose ``_list`` is no list, takes the public path."""
    if (found := _HTTPX_HEADERS.get(cls)) is None:
        found = cls.__name__ == "Headers" and cls.__module__.split(".")[0] in ("httpx", "httpx2")
        _HTTPX_HEADERS[cls] = found
    return found


@lru_cache(maxsize=64)
def _encoded(reads: frozenset[str]) -> dict[bytes, str]:
    """Each read name as latin-1 bytes (a configured non-latin-1 name fails the parse)."""
    return {name.encode("latin-1"): name for name in reads}


_LAST_ENCODED: list[tuple[frozenset[str], dict[bytes, str]]] = [(frozenset(), {})]


def _read_lowercase(
    triples: list[Any], reads: frozenset[str], fields: dict[str, str | None]
) -> dict[str, str | None]:
    """``read_fields`` for httpx's ``(raw name, lowercase name, value)`` triples."""
    used, names = _LAST_ENCODED[0]  # one set of names is read by nearly every response
    if used is not reads:
        names = _encoded(reads)
        _LAST_ENCODED[0] = (reads, names)  # one swap: threads see the old pair or this one
    for triple in triples:
        if (name := names.get(triple[1])) is not None:
            _add(fields, name, triple[2])
    return fields


def _read_raw(
    raw: list[tuple[bytes, bytes]], reads: frozenset[str], fields: dict[str, str | None]
) -> dict[str, str | None]:
    """``read_fields`` for raw byte pairs: each name is lowered once per process, not per
    response, and only the values of names a row reads are decoded."""
    known = _lowered(reads)
    for name, value in raw:
        if (key := known.get(name, _NEW)) is _NEW:
            key = name.strip().lower()  # str names (an odd `raw`) are read by no row
            key = key.decode("latin-1") if isinstance(key, bytes) else None
            key = key if key in reads else None
            if len(known) < _MAX_NAMES:
                known[name] = key
        if key is not None:
            _add(fields, key, value)
    return fields


class Context:
    """One response's fields, and the bad values found in them."""

    __slots__ = ("bad_keys", "bucket", "fields", "now", "present")

    def __init__(self, fields: dict[str, str | None], bad: set[str], now: float) -> None:
        self.now = now
        self.bucket: str | None = None  # the first matching row's server-named bucket
        self.bad_keys = bad  # a set, so two rows reading one bad value count it once
        self.fields = fields
        self.present: KeysView[str] = fields.keys()

    def get(self, name: str) -> str | None:
        if (value := self.fields.get(name)) is None:
            self.unread(name)
        return value

    def unread(self, name: str) -> None:
        """None for a field that is absent or unreadable; the latter counts once read."""
        if name in self.fields:
            self.bad_keys.add(name)  # present but None: undecodable or oversized

    def bad(self, key: str) -> None:
        self.bad_keys.add(key)


def read_amount(ctx: Context, name: str, check: str) -> float | None:
    """The number in field `name` if it passes CHECKS[check]; a present bad one is counted."""
    if (text := ctx.fields.get(name)) is None:  # ctx.get without a call when present
        ctx.unread(name)
        return None
    if (head := plain(text)) is not None:  # a plain count: read on the spot, no cache
        amount = float(head)
        value: float | None = amount if CHECKS[check](amount) else None
    else:
        value = _amount(text, check)
    if value is None:
        ctx.bad(name)
    return value


@lru_cache(maxsize=512)  # limits repeat on every response, remaining counts run over a few
def _amount(text: str, check: str) -> float | None:
    value = number(text)  # always finite
    return value if value is not None and CHECKS[check](value) else None


def read_reset(ctx: Context, name: str, kind: str) -> float | None:
    """Seconds until the reset in field `name` (see parse_reset); a present bad one is counted."""
    if (text := ctx.fields.get(name)) is None:  # ctx.get without a call when present
        ctx.unread(name)
        return None
    if (found := seconds(text, ctx.now, kind)) is None:  # text: str, not too long
        ctx.bad(name)
    return found


def read_token(ctx: Context, name: str) -> str | None:
    """A short visible-ASCII word such as a bucket name; a present bad one is counted."""
    if (text := ctx.get(name)) is None or _TOKEN.fullmatch(text := text.strip()):
        return text[:_MAX_TOKEN] if text else None
    ctx.bad(name)
    return None


def make_quota(
    policy: str, limit: _F, left: _F, *, used: _F = None, reset: _F = None, window: _F = None
) -> Quota | None:
    """A Quota from what the server sent, completing limit or remaining from `used`."""
    if left is None and used is not None and limit is not None:
        left = max(0.0, limit - used)  # GitHub without x-ratelimit-remaining
    if limit is None and used is not None and left is not None:
        limit = (used + left) or None  # Reddit sends no limit; a zero one is none
    if limit is not None and left is not None and limit < left:
        left = limit  # more left than the limit is a server quirk, not garbage
    return None if limit is None and left is None else Quota(policy, limit, left, reset, window)
