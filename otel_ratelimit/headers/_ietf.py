"""The IETF RateLimit header drafts (-06/Envoy, -07, -09..-11): RFC 9651 structured fields."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from functools import lru_cache
from typing import TypeAlias

import http_sf

from ._context import CHECKS, Context, make_quota, read_amount, read_reset
from ._model import Quota

__all__ = ["draft06", "draft07", "draft09"]

_NUMBER = (int, float, Decimal)  # what a structured field's number parses to
_NAMED = (str, http_sf.Token)  # what a policy name parses to
_F: TypeAlias = "float | None"
_Pair: TypeAlias = "tuple[float | None, float | None]"
_Values: TypeAlias = "tuple[tuple[object, tuple[float | None, ...]], ...]"


# The shapes servers send (``"default";q=100;w=60, "burst";r=5``): named or numeric members
# whose parameters are numbers. A list of only these is read by two regexes, ~10x faster than
# the full RFC 9651 parser; anything else (escapes, booleans, byte sequences, negative or
# oversized numbers, tabs) goes to that parser, so both read every accepted text the same.
_NUM = r"[0-9]{1,12}\.[0-9]{1,3}|[0-9]{1,15}"  # RFC 9651 decimal and integer limits
_ITEM = rf'"[ !#-\[\]-~]*"|[A-Za-z*][-!#$%&\'*+.^_`|~:/A-Za-z0-9]*|{_NUM}'
_PARAM = rf"; *([a-z*][-a-z0-9_.*]*)=({_NUM})"
_MEMBER = rf"({_ITEM})((?:{_PARAM})*)"
# One member and what follows it: a comma (another member comes) or the end. A member can be
# read only one way (items and keys end where their characters do), so member by member reads
# exactly what one match of the whole list `(?: *MEMBER *,)* *MEMBER *` would.
_NEXT = re.compile(rf" *{_MEMBER} *(?:(?P<comma>,)|\Z)")


def _sf_number(text: str) -> int | Decimal:
    return Decimal(text) if "." in text else int(text)


def _simple_list(text: str) -> list[tuple[object, dict[str, object]]] | None:
    """``text`` as the parser would read it when it is one of the simple shapes, else None."""
    members: list[tuple[object, dict[str, object]]] = []
    match, end = None, 0
    while match is None or match["comma"]:  # after a comma, another member must follow
        if (match := _NEXT.match(text, end)) is None:
            return None
        end = match.end()
        item = match[1]
        value = item[1:-1] if item[0] == '"' else _sf_number(item) if item[0].isdigit() else item
        params: dict[str, object] = {}
        for param in match[2].split(";")[1:]:  # the regex checked each is ` *key=number`
            key, _, number = param.partition("=")
            params[key.lstrip(" ")] = _sf_number(number)
        members.append((value, params))
    return members


@lru_cache(maxsize=64)  # RateLimit-Policy rarely changes; RateLimit is also tried as a list
def _sf(text: str, kind: str) -> object | None:
    if kind == "list" and (simple := _simple_list(text)) is not None:
        return simple
    try:  # the library raises several exception types; any of them just means "malformed"
        return http_sf.parse(text.encode("ascii"), tltype=kind)
    except Exception:
        return None


def _members(ctx: Context, field: str, checks: str, *, quiet: bool = False) -> _Values:
    """The named (`checks` "qw" or "rt", draft-09+) or numeric ("w", draft-06/07) members of
    field `field`, with their sane values; () when the field is absent or no list."""
    if (text := ctx.get(field)) is None:
        return ()
    read = _read_list if field == "ratelimit" else _read_policy  # RateLimit always changes
    if (found := read(text, field, checks)) is None:
        if not quiet:
            ctx.bad(field)
        return ()
    members, bad = found
    ctx.bad_keys.update(bad)
    return members


def _read_list(text: str, field: str, checks: str) -> tuple[_Values, frozenset[str]] | None:
    """(name or limit, values of `checks`) per member, and the error keys of the bad values."""
    if not isinstance(parsed := _sf(text, "list"), list) or not parsed:
        return None
    named = checks != "w"
    members: list[tuple[object, tuple[float | None, ...]]] = []
    bad: set[str] = set()
    index = -1
    for member in parsed:
        if not isinstance(member, tuple) or not isinstance(member[1], dict):
            continue
        item, params = member
        index += 1
        if isinstance(item, _NAMED) == named:
            key = f"{field}#{index}"
            values = tuple([_sf_value(bad, key, params.get(c), c, True) for c in checks])
            members.append((str(item) if named else _sf_value(bad, key, item, "q"), values))
    return tuple(members), frozenset(bad)


# A pure function of the text: a policy field, which rarely changes, is read once.
_read_policy = lru_cache(maxsize=64)(_read_list)


def _sf_value(
    bad: set[str], key: str, raw: object, check: str, param: bool = False
) -> float | None:
    """A sane number, or None; a bad one is added as `key` (`key;check` for a parameter)."""
    if raw is None:
        return None
    # A string, token, boolean... where a number goes is as bad as an insane number.
    number = float(raw) if isinstance(raw, _NUMBER) and not isinstance(raw, bool) else math.nan
    if math.isfinite(number) and CHECKS[check](number):
        return number
    bad.add(f"{key};{check}" if param else key)
    return None


def draft09(ctx: Context) -> list[Quota] | None:
    """Draft -09..-11: ``RateLimit-Policy: "p";q=..;w=..`` joined by name with ``RateLimit``."""
    found: dict[object, dict[str, float | None]] = {}
    for field, checks in (("ratelimit-policy", "qw"), ("ratelimit", "rt")):
        # A RateLimit that is no list may be a draft-07 dictionary: draft07 judges it.
        for name, values in _members(ctx, field, checks, quiet=field == "ratelimit"):
            entry = found.setdefault(name, {})
            for check, value in zip(checks, values, strict=True):
                if entry.get(check) is None:  # a repeated policy name: the first wins
                    entry[check] = value
    made = [
        make_quota(str(n), e.get("q"), e.get("r"), reset=e.get("t"), window=e.get("w"))
        for n, e in found.items()
    ]
    return [q for q in made if q] if found else None


def _windows(ctx: Context, field: str) -> list[_Pair]:
    """(number, window) per numeric member of a draft-06/07 list such as ``10, 10;w=1``."""
    return [(limit, window) for limit, (window,) in _members(ctx, field, "w")]  # type: ignore[misc]


def _window_for(limit: _F, members: list[_Pair]) -> float | None:
    return next((w for n, w in members if w is not None and n == limit is not None), None)


def _legacy(limit: _F, remaining: _F, reset: _F, windows: list[_Pair]) -> list[Quota]:
    """Drafts -06/-07: the current limit, plus one ``w<seconds>`` quota per other window."""
    window = _window_for(limit, windows)
    quotas = [make_quota("default", limit, remaining, reset=reset, window=window)]
    for n, w in windows:
        if w is not None and (n, w) != (limit, window):
            quotas.append(make_quota(f"w{w:.0f}" if w == int(w) else f"w{w}", n, None, window=w))
    return [q for q in quotas if q]


def draft07(ctx: Context) -> list[Quota] | None:
    """Draft -07: ``RateLimit: limit=10, remaining=1, reset=7`` (+ ``RateLimit-Policy: 10;w=1``)."""
    if (text := ctx.get("ratelimit")) is None or _sf(text, "list") is not None:
        return None  # absent, or a draft-09+ list
    if not isinstance(fields := _sf(text, "dictionary"), dict):
        ctx.bad("ratelimit")
        return None
    items = {k: v[0] if isinstance(v, tuple) else v for k, v in fields.items()}
    keys = (("limit", "q"), ("remaining", "r"), ("reset", "t"))
    limit, remaining, reset = (
        _sf_value(ctx.bad_keys, f"ratelimit:{k}", items.get(k), c) for k, c in keys
    )
    return _legacy(limit, remaining, reset, _windows(ctx, "ratelimit-policy"))


def draft06(ctx: Context) -> list[Quota] | None:
    """Draft -06 / Envoy: ``RateLimit-Limit: 10, 10;w=1, 1000;w=3600`` + Remaining + Reset."""
    windows = _windows(ctx, "ratelimit-limit")
    remaining = read_amount(ctx, "ratelimit-remaining", "r")
    reset = read_reset(ctx, "ratelimit-reset", "delta")
    return _legacy(windows[0][0] if windows else None, remaining, reset, windows)
