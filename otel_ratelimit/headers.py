"""Turn HTTP response headers into rate-limit observations: pure, table-driven, never raising.

Each vendor format is one entry of ``_TABLE``. Bad values never raise: they are dropped and
counted in ``Observation.errors``, so a misbehaving server shows up in telemetry instead.
This runs on every response, so the table is compiled at import: a response costs one pass
over its header names, then dict lookups for just the rows whose names are present.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, KeysView, Mapping
from dataclasses import dataclass
from dataclasses import field as _derived
from datetime import datetime, timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import TypeAlias

import http_sf

__all__ = [
    "MAX_RESET_SECONDS",
    "Observation",
    "Quota",
    "parse_headers",
    "parse_reset",
    "parse_retry_after",
]

MAX_RESET_SECONDS: float = 32 * 86400
"""Resets and waits further away than this are absurd (no API makes callers wait a month)."""

_MAX_CHARS = 4096  # longer values are bugs or attacks; parsing them would only burn CPU
_MAX_TOKEN = 64  # bucket/reason strings become telemetry attributes: keep them short
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
_SHOPIFY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*([0-9]+(?:\.[0-9]+)?)\s*")
_TOKEN = re.compile(r"[!-~]+")  # visible ASCII without spaces
# What a sane number looks like, keyed by the IETF parameter letter; plain headers reuse these.
_CHECKS: dict[str, Callable[[float], bool]] = {
    "q": lambda v: v > 0,  # quota/limit: a zero quota is garbage, not "blocked"
    "w": lambda v: 0 < v <= MAX_RESET_SECONDS,  # window
    "r": lambda v: v >= 0,  # remaining (or used)
    "t": lambda v: 0 <= v <= MAX_RESET_SECONDS,  # seconds until reset
}
_NUMBER = (int, float, Decimal)  # what a structured field's number parses to
_F: TypeAlias = "float | None"
_Pair: TypeAlias = "tuple[float | None, float | None]"
_Member: TypeAlias = "tuple[str, object, dict[str, object]]"


@dataclass(frozen=True, slots=True)
class Quota:
    """One rate-limit policy as the server reported it."""

    policy: str
    limit: float | None
    remaining: float | None
    reset_after: float | None
    window: float | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one response said about rate limits."""

    quotas: tuple[Quota, ...] = ()
    retry_after: float | None = None
    bucket: str | None = None
    is_global: bool = False
    reason: str | None = None
    errors: int = 0
    style: str | None = None

    @property
    def empty(self) -> bool:
        """True when the response gave nothing to act on: no quotas and no Retry-After."""
        return not self.quotas and self.retry_after is None


def _num(text: str) -> float | None:
    text = text.strip()
    number = (
        float(text) if (text.isdigit() and text.isascii()) or _NUM.fullmatch(text) else math.nan
    )
    return number if math.isfinite(number) else None  # "1e309" overflows to inf


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


def parse_reset(value: str, *, now: float, kind: str = "auto") -> float | None:
    """Seconds from ``now`` until a window resets, or None if ``value`` is no sane reset.

    ``kind``: auto, delta, delta-ms, epoch, epoch-ms, duration (Go, as OpenAI sends), rfc3339,
    http-date, or retry-after (delta seconds or HTTP-date, as RFC 9110 says).
    """
    if not isinstance(value, str) or len(value) > _MAX_CHARS:
        return None
    return _seconds(value.strip(), now, kind)


def _seconds(text: str, now: float, kind: str) -> float | None:
    if kind == "duration":  # a Go duration ends in a unit, a plain number never does
        if (match := _GO.fullmatch(text)) and match.start(1) == 0:  # one part, as in "1s"
            return _within(float(match[1]) * _GO_UNIT[match[2]])
        if match:
            return _within(sum([float(n) * _GO_UNIT[u] for n, u in _GO_PARTS.findall(text)]))
        return _within(_num(text))
    number = _num(text)
    if number is None:
        date = _rfc3339(text) if kind in ("auto", "rfc3339") else None
        if date is None and kind in ("auto", "http-date", "retry-after"):
            date = _http_date(text)
        return _from_epoch(date, now)
    if kind == "epoch-ms" or (kind == "auto" and number >= 1e12):
        return _from_epoch(number / 1000, now)
    if kind == "epoch" or (kind == "auto" and number >= 1e9):
        return _from_epoch(number, now)
    if kind == "delta-ms":
        number /= 1000
    return _within(number) if kind in ("auto", "delta", "delta-ms", "retry-after") else None


def parse_retry_after(value: str, *, now: float) -> float | None:
    """Seconds to wait from an RFC 9110 Retry-After value (delta seconds or HTTP-date), or None."""
    return parse_reset(value, now=now, kind="retry-after")


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _read(headers: object, reads: frozenset[str]) -> tuple[dict[str, str | None], set[str]]:
    """The fields named in `reads` (None: undecodable, oversized or not text) by lowercase name,
    and the keys of the pairs that are no (name, value) at all."""
    fields: dict[str, str | None] = {}
    bad: set[str] = set()
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
        text = value if type(value) is str else _text(value)
        if name in fields:  # a repeated field is one list (RFC 9110 section 5.3)
            old = fields[name]
            text = None if old is None or text is None else f"{old}, {text}"
        fields[name] = text if text is None or len(text) <= _MAX_CHARS else None
    return fields, bad


class _Ctx:
    """One response's fields, and the bad values found in them."""

    __slots__ = ("_bad", "_fields", "bucket", "now", "present")

    def __init__(self, fields: dict[str, str | None], bad: set[str], now: float) -> None:
        self.now = now
        self.bucket: str | None = None  # the first matching row's server-named bucket
        self._bad = bad  # a set, so two rows reading one bad value count it once
        self._fields = fields
        self.present: KeysView[str] = fields.keys()

    def get(self, name: str) -> str | None:
        if (value := self._fields.get(name)) is None and name in self._fields:
            self._bad.add(name)  # counted only when a parser reads it: other headers are not ours
        return value

    def bad(self, key: str) -> None:
        self._bad.add(key)


def _amount(ctx: _Ctx, name: str, check: str) -> float | None:
    if (text := ctx.get(name)) is None:
        return None
    if (number := _num(text)) is not None and _CHECKS[check](number):  # _num: always finite
        return number
    ctx.bad(name)
    return None


def _reset(ctx: _Ctx, name: str, kind: str) -> float | None:
    if (text := ctx.get(name)) is None:
        return None
    if (seconds := _seconds(text.strip(), ctx.now, kind)) is None:  # text: str, not too long
        ctx.bad(name)
    return seconds


def _token(ctx: _Ctx, name: str) -> str | None:
    if (text := ctx.get(name)) is None or _TOKEN.fullmatch(text := text.strip()):
        return text[:_MAX_TOKEN] if text else None
    ctx.bad(name)
    return None


def _make(
    policy: str, limit: _F, left: _F, *, used: _F = None, reset: _F = None, window: _F = None
) -> Quota | None:
    if left is None and used is not None and limit is not None:
        left = max(0.0, limit - used)  # GitHub without x-ratelimit-remaining
    if limit is None and used is not None and left is not None:
        limit = (used + left) or None  # Reddit sends no limit; a zero one is none
    if limit is not None and left is not None:
        left = min(left, limit)  # more left than the limit is a server quirk, not garbage
    return None if limit is None and left is None else Quota(policy, limit, left, reset, window)


@lru_cache(maxsize=64)  # RateLimit-Policy rarely changes; RateLimit is also tried as a list
def _sf(text: str, kind: str) -> object | None:
    try:  # the library raises several exception types; any of them just means "malformed"
        return http_sf.parse(text.encode("ascii"), tltype=kind)
    except Exception:
        return None


def _members(ctx: _Ctx, field: str, *, named: bool, quiet: bool = False) -> list[_Member]:
    """(error key, item, params) of a structured-field list's named (draft-09+) or numeric
    (draft-06/07) members; [] when the field is absent or malformed."""
    if (text := ctx.get(field)) is None:
        return []
    if not isinstance(parsed := _sf(text, "list"), list) or not parsed:
        if not quiet:
            ctx.bad(field)
        return []
    pairs = [m for m in parsed if isinstance(m, tuple) and isinstance(m[1], dict)]
    return [(f"{field}#{i}", m[0], m[1]) for i, m in enumerate(pairs) if _is_named(m[0]) == named]


def _is_named(item: object) -> bool:
    return isinstance(item, (str, http_sf.Token))


def _sf_value(ctx: _Ctx, key: str, raw: object, check: str, param: bool = False) -> float | None:
    """A sane number, or None; a bad one is counted as `key` (`key;check` for a parameter)."""
    if raw is None:
        return None
    # A string, token, boolean... where a number goes is as bad as an insane number.
    number = float(raw) if isinstance(raw, _NUMBER) and not isinstance(raw, bool) else math.nan
    if math.isfinite(number) and _CHECKS[check](number):
        return number
    ctx.bad(f"{key};{check}" if param else key)
    return None


def _ietf(ctx: _Ctx) -> list[Quota] | None:
    """Draft -09..-11: ``RateLimit-Policy: "p";q=..;w=..`` joined by name with ``RateLimit``."""
    found: dict[str, dict[str, float | None]] = {}
    for field, params in (("ratelimit-policy", "qw"), ("ratelimit", "rt")):
        # A RateLimit that is no list may be a draft-07 dictionary: _ietf07 judges it.
        for key, item, extra in _members(ctx, field, named=True, quiet=field == "ratelimit"):
            entry = found.setdefault(str(item), {})
            for p in params:
                value = _sf_value(ctx, key, extra.get(p), p, param=True)
                if entry.get(p) is None:  # a repeated policy name: the first wins
                    entry[p] = value
    made = [
        _make(n, e.get("q"), e.get("r"), reset=e.get("t"), window=e.get("w"))
        for n, e in found.items()
    ]
    return [q for q in made if q] if found else None


def _windows(ctx: _Ctx, field: str) -> list[_Pair]:
    """(number, window) per numeric member of a draft-06/07 list such as ``10, 10;w=1``."""
    return [
        (_sf_value(ctx, key, item, "q"), _sf_value(ctx, key, p.get("w"), "w", param=True))
        for key, item, p in _members(ctx, field, named=False)
    ]


def _window_for(limit: _F, members: list[_Pair]) -> float | None:
    return next((w for n, w in members if w is not None and n == limit is not None), None)


def _legacy(limit: _F, remaining: _F, reset: _F, windows: list[_Pair]) -> list[Quota]:
    """Drafts -06/-07: the current limit, plus one ``w<seconds>`` quota per other window."""
    window = _window_for(limit, windows)
    quotas = [_make("default", limit, remaining, reset=reset, window=window)]
    for n, w in windows:
        if w is not None and (n, w) != (limit, window):
            quotas.append(_make(f"w{w:.0f}" if w == int(w) else f"w{w}", n, None, window=w))
    return [q for q in quotas if q]


def _ietf07(ctx: _Ctx) -> list[Quota] | None:
    """Draft -07: ``RateLimit: limit=10, remaining=1, reset=7`` (+ ``RateLimit-Policy: 10;w=1``)."""
    if (text := ctx.get("ratelimit")) is None or _sf(text, "list") is not None:
        return None  # absent, or a draft-09+ list
    if not isinstance(fields := _sf(text, "dictionary"), dict):
        ctx.bad("ratelimit")
        return None
    items = {k: v[0] if isinstance(v, tuple) else v for k, v in fields.items()}
    keys = (("limit", "q"), ("remaining", "r"), ("reset", "t"))
    limit, remaining, reset = (_sf_value(ctx, f"ratelimit:{k}", items.get(k), c) for k, c in keys)
    return _legacy(limit, remaining, reset, _windows(ctx, "ratelimit-policy"))


def _envoy(ctx: _Ctx) -> list[Quota] | None:
    """Draft -06 / Envoy: ``RateLimit-Limit: 10, 10;w=1, 1000;w=3600`` + Remaining + Reset."""
    windows = _windows(ctx, "ratelimit-limit")
    remaining = _amount(ctx, "ratelimit-remaining", "r")
    reset = _reset(ctx, "ratelimit-reset", "delta")
    return _legacy(windows[0][0] if windows else None, remaining, reset, windows)


def _shopify(ctx: _Ctx) -> list[Quota] | None:
    """``X-Shopify-Shop-Api-Call-Limit: 32/40``: a leaky bucket draining capacity/20 per second."""
    if (text := ctx.get(name := "x-shopify-shop-api-call-limit")) is None:
        return None
    match = _SHOPIFY.fullmatch(text)
    used, capacity = (float(g) for g in match.groups()) if match else (math.nan, math.nan)
    if not (math.isfinite(used) and math.isfinite(capacity) and capacity > 0):
        ctx.bad(name)
        return []
    used = min(used, capacity)
    return [Quota("default", capacity, capacity - used, used * 20 / capacity, 20.0)]


_FIELDS = ("reset-after", "reset", "limit", "remaining", "used")  # in the order they are read
_Names: TypeAlias = "tuple[str, str, str, str, str, str]"  # a policy, then its _FIELDS' names


@dataclass(frozen=True, slots=True)
class _Fields:
    """A vendor that sends one plain value per header."""

    names: str | Mapping[str, str]  # template ("{f}": field, "{p}": policy), or field -> name
    fields: str = "limit remaining reset"  # those of _FIELDS the vendor sends
    kind: str = "auto"  # how `reset` is encoded (see parse_reset)
    policies: tuple[str, ...] = ("default",)
    bucket: str = ""  # the field naming a server-side bucket
    match: tuple[tuple[str, ...], ...] = ()  # each group needs a present name (default: any)
    unless: tuple[str, ...] = ()  # names that mean another row owns these headers
    # Derived once from the above, so that a response costs only set and dict lookups.
    groups: tuple[frozenset[str], ...] = _derived(init=False, repr=False, compare=False)
    reads: frozenset[str] = _derived(init=False, repr=False, compare=False)
    plan: tuple[_Names, ...] = _derived(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = tuple((p, *(self.name(f, p) for f in _FIELDS)) for p in self.policies)
        groups = self.match or (tuple(n for names in plan for n in names[1:]),)
        reads = {*self.unless, *(n for g in groups for n in g), *(n for g in plan for n in g[1:])}
        reads.add(self.name(self.bucket, "") if self.bucket else "")
        # "" names a field this vendor lacks: it is never read, so it never matches either.
        object.__setattr__(self, "groups", tuple(frozenset(filter(None, g)) for g in groups))
        object.__setattr__(self, "reads", frozenset(reads - {""}))
        object.__setattr__(self, "plan", plan)

    def name(self, field: str, policy: str) -> str:
        if not isinstance(self.names, str):
            return self.names.get(field, "")
        ok = field in self.fields.split() or field == self.bucket
        return self.names.replace("{f}", field).replace("{p}", policy) if ok else ""

    def __call__(self, ctx: _Ctx) -> list[Quota] | None:
        if self.unless and not ctx.present.isdisjoint(self.unless):
            return None
        for group in self.groups:
            if ctx.present.isdisjoint(group):
                return None
        if self.bucket and ctx.bucket is None:
            ctx.bucket = _token(ctx, self.name(self.bucket, ""))
        quotas = []
        for policy, reset_after, reset_at, limit, remaining, used in self.plan:
            reset = _reset(ctx, reset_after, "delta") if reset_after else None  # Discord's
            if reset is None:
                reset = _reset(ctx, reset_at, self.kind)
            quota = _make(
                policy,
                _amount(ctx, limit, "q"),
                _amount(ctx, remaining, "r"),
                used=_amount(ctx, used, "r") if used else None,
                reset=reset,
            )
            if quota:
                quotas.append(quota)
        return quotas


@dataclass(frozen=True, slots=True)
class _Parser:
    """A vendor format that needs code: `_parse` runs it only when one of `needs` is present."""

    parse: Callable[[_Ctx], list[Quota] | None]
    needs: str  # the names it reads; it returns None when none of them is present

    def __call__(self, ctx: _Ctx) -> list[Quota] | None:
        return self.parse(ctx)


_RL = "x-ratelimit-"
_X = _RL + "{f}"
_GITHUB = (f"{_RL}resource", f"{_RL}used")
_DISCORD = (f"{_RL}reset-after", f"{_RL}bucket", f"{_RL}global", f"{_RL}scope")
_Row: TypeAlias = "_Fields | _Parser"
# Order is precedence: when two rows report the same policy name, the earlier row wins.
# GitHub, Discord, Reddit and "generic" share x-ratelimit-*: `match`/`unless` keep them apart.
# fmt: off
_TABLE: dict[str, _Row] = {
    "ietf": _Parser(_ietf, "ratelimit-policy ratelimit"),
    "ietf-07": _Parser(_ietf07, "ratelimit"),  # RateLimit-Policy alone is no draft-07
    "ietf-06": _Parser(_envoy, "ratelimit-limit ratelimit-remaining ratelimit-reset"),
    "github": _Fields(_X, "limit remaining used reset", "epoch", bucket="resource",
                      match=(_GITHUB, (f"{_RL}limit", f"{_RL}resource"))),
    "twitter": _Fields("x-rate-limit-{f}", kind="epoch"),
    "openai": _Fields(_X + "-{p}", kind="duration", policies=("requests", "tokens")),
    "anthropic": _Fields("anthropic-ratelimit-{p}-{f}", kind="rfc3339",
                         policies=("requests", "tokens", "input-tokens", "output-tokens")),
    "discord": _Fields(_X, "limit remaining reset reset-after", "epoch", bucket="bucket",
                       match=(_DISCORD,), unless=_GITHUB),
    "reddit": _Fields(_X, "remaining used reset", "delta", match=((f"{_RL}used",),),
                      unless=(f"{_RL}limit", f"{_RL}resource", *_DISCORD)),
    "shopify": _Parser(_shopify, "x-shopify-shop-api-call-limit"),
    "rapidapi": _Fields(f"{_RL}{{p}}-{{f}}", kind="delta", policies=("requests",)),
    "generic": _Fields(_X, unless=_GITHUB + _DISCORD),
}
# fmt: on
_SIGNALS = frozenset(  # read for every response, besides the rows
    ("retry-after-ms", "retry-after", f"{_RL}global", f"{_RL}scope", "stripe-rate-limited-reason")
)
_ROWS = tuple((1 << i, name, row) for i, (name, row) in enumerate(_TABLE.items()))
_TRIGGERS: dict[str, int] = {}  # name -> bits of the rows it can make match
_CANDIDATES: dict[int, tuple[tuple[str, _Row], ...]] = {}  # bits -> those rows, in table order
for _bit, _, _row in _ROWS:
    for _name in _row.needs.split() if isinstance(_row, _Parser) else set().union(*_row.groups):
        _TRIGGERS[_name] = _TRIGGERS.get(_name, 0) | _bit
# Every name that is ever read: a response with none of them has nothing to parse.
_READS = _SIGNALS.union(_TRIGGERS, *(r.reads for r in _TABLE.values() if isinstance(r, _Fields)))
_EMPTY = Observation()


@lru_cache(maxsize=16)
def _custom(names: tuple[tuple[str, str], ...]) -> tuple[_Fields, frozenset[str]]:
    """The row for a headers_map, and every name to read with it ("" names no header)."""
    row = _Fields(dict(names))
    return row, _READS.union(row.reads, (n for k, n in names if k == "retry_after")) - {""}


def _retry_after(ctx: _Ctx, custom: str) -> float | None:
    # Most specific first: a configured name, then milliseconds (more precise), then RFC 9110.
    for name, kind in (
        (custom, "auto"),
        ("retry-after-ms", "delta-ms"),
        ("retry-after", "retry-after"),
    ):
        if (seconds := _reset(ctx, name, kind)) is not None:
            return seconds
    return None


def _parse(headers: object, now: float, headers_map: Mapping[str, str] | None) -> Observation:
    names: dict[str, str] = {}
    if headers_map:
        names = {k: v.strip().lower() for k, v in headers_map.items() if isinstance(v, str)}
    custom, reads = _custom(tuple(names.items())) if names else (None, _READS)
    fields, bad = _read(headers, reads)
    if not fields:  # the common case: a response without rate-limit headers
        return Observation(errors=len(bad)) if bad else _EMPTY
    ctx = _Ctx(fields, bad, now)
    mask = 0
    for name in fields:
        mask |= _TRIGGERS.get(name, 0)
    if (rows := _CANDIDATES.get(mask)) is None:  # the rows that may match; few masks occur
        rows = _CANDIDATES[mask] = tuple((n, r) for b, n, r in _ROWS if b & mask)
    if custom is not None:
        rows = (("custom", custom), *rows)
    quotas: dict[str, Quota] = {}
    style = matched = None
    for name, row in rows:
        if (found := row(ctx)) is not None:
            matched, style = matched or name, style or (name if found else None)
            for quota in found:
                if quota.policy not in quotas:
                    quotas[quota.policy] = quota
    retry_after = reason = None
    is_global = False
    if names or not ctx.present.isdisjoint(_SIGNALS):
        flag = (_token(ctx, f"{_RL}global") or "false").lower()
        if flag not in ("true", "false"):
            ctx.bad(f"{_RL}global")
        retry_after = _retry_after(ctx, names.get("retry_after", ""))
        is_global = flag == "true" or _token(ctx, f"{_RL}scope") == "global"  # Discord 429s
        reason = _token(ctx, "stripe-rate-limited-reason")
    return Observation(
        quotas=tuple(quotas.values()),
        retry_after=retry_after,
        bucket=ctx.bucket,
        is_global=is_global,
        reason=reason,
        errors=len(ctx._bad),
        style=style or matched,
    )


def parse_headers(
    headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]],
    *,
    now: float,
    headers_map: Mapping[str, str] | None = None,
) -> Observation:
    """Read every rate-limit signal in one response's headers; never raises, counts bad values."""
    try:
        return _parse(headers, now, headers_map)
    except Exception:  # last resort: an odd headers object must not break the caller's request
        return Observation(errors=1)
