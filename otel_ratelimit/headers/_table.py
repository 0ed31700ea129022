"""The vendor table: one row per header style, compiled at import into name -> rows lookups."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from dataclasses import field as _derived
from functools import lru_cache, partial
from typing import TypeAlias

from ._context import Context, make_quota, read_amount, read_reset, read_token
from ._ietf import draft06, draft07, draft09
from ._model import Quota

__all__ = ["READS", "RL", "ROWS", "SIGNALS", "TRIGGERS", "Reader", "Row", "custom_row"]

_SHOPIFY = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*([0-9]+(?:\.[0-9]+)?)\s*")


def _shopify(ctx: Context) -> list[Quota] | None:
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


Reader: TypeAlias = "Callable[[Context], list[Quota] | None]"
_FIELDS = ("reset-after", "reset", "limit", "remaining", "used")  # in the order they are read
_Names: TypeAlias = "tuple[str, str, str, str, str, str]"  # a policy, then its _FIELDS' names
_Plan: TypeAlias = "tuple[frozenset[str], _Names]"  # the names of one policy, and those in order


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
    plan: tuple[_Plan, ...] = _derived(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = tuple((p, *(self.name(f, p) for f in _FIELDS)) for p in self.policies)
        groups = self.match or (tuple(n for names in plan for n in names[1:]),)
        reads = {*self.unless, *(n for g in groups for n in g), *(n for g in plan for n in g[1:])}
        reads.add(self.name(self.bucket, "") if self.bucket else "")
        # "" names a field this vendor lacks: it is never read, so it never matches either.
        object.__setattr__(self, "groups", tuple(frozenset(filter(None, g)) for g in groups))
        object.__setattr__(self, "reads", frozenset(reads - {""}))
        object.__setattr__(self, "plan", tuple((frozenset(p[1:]) - {""}, p) for p in plan))

    def name(self, field: str, policy: str) -> str:
        if not isinstance(self.names, str):
            return self.names.get(field, "")
        ok = field in self.fields.split() or field == self.bucket
        return self.names.replace("{f}", field).replace("{p}", policy) if ok else ""

    def bind(self, present: AbstractSet[str]) -> Reader | None:
        """This row's reader when exactly `present` came (None: the row does not apply): it
        reads only the policies and names present, as what a row does depends on those alone."""
        if self.unless and not present.isdisjoint(self.unless):
            return None
        for group in self.groups:
            if present.isdisjoint(group):
                return None
        policies = tuple(
            (names[0], *(n if n in present else "" for n in names[1:]))  # "": absent
            for found, names in self.plan
            if not found.isdisjoint(present)  # a policy the response mentions (rows name several)
        )
        return partial(self.read, policies)  # type: ignore[arg-type]

    def read(self, policies: tuple[_Names, ...], ctx: Context) -> list[Quota]:
        """The quotas of the `policies` that `bind` chose for this response."""
        if self.bucket and ctx.bucket is None:
            ctx.bucket = read_token(ctx, self.name(self.bucket, ""))
        quotas = []
        for policy, reset_after, reset_at, limit, remaining, used in policies:
            reset = read_reset(ctx, reset_after, "delta") if reset_after else None  # Discord's
            if reset is None and reset_at:
                reset = read_reset(ctx, reset_at, self.kind)
            quota = make_quota(
                policy,
                read_amount(ctx, limit, "q") if limit else None,
                read_amount(ctx, remaining, "r") if remaining else None,
                used=read_amount(ctx, used, "r") if used else None,
                reset=reset,
            )
            if quota:
                quotas.append(quota)
        return quotas


@dataclass(frozen=True, slots=True)
class _Parser:
    """A vendor format that needs code: `_parse` runs it only when one of `needs` is present."""

    parse: Callable[[Context], list[Quota] | None]
    needs: str  # the names it reads; it returns None when none of them is present

    def bind(self, present: AbstractSet[str]) -> Reader:
        return self.parse  # `_parse` only binds it when one of `needs` is present


RL = "x-ratelimit-"
_X = RL + "{f}"
_GITHUB = (f"{RL}resource", f"{RL}used")
_DISCORD = (f"{RL}reset-after", f"{RL}bucket", f"{RL}global", f"{RL}scope")
Row: TypeAlias = "_Fields | _Parser"
# Order is precedence: when two rows report the same policy name, the earlier row wins.
# GitHub, Discord, Reddit and "generic" share x-ratelimit-*: `match`/`unless` keep them apart.
# fmt: off
_TABLE: dict[str, Row] = {
    "ietf": _Parser(draft09, "ratelimit-policy ratelimit"),
    "ietf-07": _Parser(draft07, "ratelimit"),  # RateLimit-Policy alone is no draft-07
    "ietf-06": _Parser(draft06, "ratelimit-limit ratelimit-remaining ratelimit-reset"),
    "github": _Fields(_X, "limit remaining used reset", "epoch", bucket="resource",
                      match=(_GITHUB, (f"{RL}limit", f"{RL}resource"))),
    "twitter": _Fields("x-rate-limit-{f}", kind="epoch"),
    "openai": _Fields(_X + "-{p}", kind="duration", policies=("requests", "tokens")),
    "anthropic": _Fields("anthropic-ratelimit-{p}-{f}", kind="rfc3339",
                         policies=("requests", "tokens", "input-tokens", "output-tokens")),
    "discord": _Fields(_X, "limit remaining reset reset-after", "epoch", bucket="bucket",
                       match=(_DISCORD,), unless=_GITHUB),
    "reddit": _Fields(_X, "remaining used reset", "delta", match=((f"{RL}used",),),
                      unless=(f"{RL}limit", f"{RL}resource", *_DISCORD)),
    "shopify": _Parser(_shopify, "x-shopify-shop-api-call-limit"),
    "rapidapi": _Fields(f"{RL}{{p}}-{{f}}", kind="delta", policies=("requests",)),
    "generic": _Fields(_X, unless=_GITHUB + _DISCORD),
}
# fmt: on
SIGNALS = frozenset(  # read for every response, besides the rows
    ("retry-after-ms", "retry-after", f"{RL}global", f"{RL}scope", "stripe-rate-limited-reason")
)
ROWS = tuple((1 << i, name, row) for i, (name, row) in enumerate(_TABLE.items()))
"""(bit, style name, row) per row, in table order."""
TRIGGERS: dict[str, int] = {}  # name -> bits of the rows it can make match
for _bit, _, _row in ROWS:
    for _name in _row.needs.split() if isinstance(_row, _Parser) else set().union(*_row.groups):
        TRIGGERS[_name] = TRIGGERS.get(_name, 0) | _bit
# Every name that is ever read: a response with none of them has nothing to parse.
READS = SIGNALS.union(TRIGGERS, *(r.reads for r in _TABLE.values() if isinstance(r, _Fields)))


@lru_cache(maxsize=16)
def custom_row(names: tuple[tuple[str, str], ...]) -> tuple[Row, frozenset[str]]:
    """The row for a headers_map, and every name to read with it ("" names no header)."""
    row = _Fields(dict(names))
    return row, READS.union(row.reads, (n for k, n in names if k == "retry_after")) - {""}
