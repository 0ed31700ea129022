"""Turn HTTP response headers into rate-limit observations: pure, table-driven, never raising.

Each vendor format is one row of the table in ``_table``. Bad values never raise: they are
dropped and counted in ``Observation.errors``, so a misbehaving server shows up in telemetry
instead. This runs on every response, so the table is compiled at import, and what to read
for a set of header names present is worked out once (``_plan``): a response costs one pass
over its header names, then reading just the values the matching rows need. Reading a text
is a pure function of it, so amounts, resets and policy lists are cached too.

Modules: ``_model`` (Quota, Observation), ``_reset`` (numbers and reset encodings),
``_context`` (reading one response's fields), ``_ietf`` (structured-field drafts),
``_table`` (the vendor rows).
"""

from __future__ import annotations

from collections.abc import Iterable, KeysView, Mapping
from typing import TypeAlias

from ._context import Context, read_fields, read_reset, read_token
from ._model import Observation, Quota
from ._reset import MAX_RESET_SECONDS, parse_reset, parse_retry_after
from ._table import READS, RL, ROWS, SIGNALS, TRIGGERS, Reader, custom_row

__all__ = [
    "MAX_RESET_SECONDS",
    "Observation",
    "Quota",
    "parse_headers",
    "parse_reset",
    "parse_retry_after",
]

_Plan: TypeAlias = "tuple[tuple[tuple[str, Reader], ...], bool]"
_PLANS: dict[tuple[str, ...], _Plan] = {}  # names present -> what to read; few sets occur
_MAX_PLANS = 256  # a bound against servers sending ever new combinations, not a need
_EMPTY = Observation()


def _retry_after(ctx: Context, custom: str) -> float | None:
    # Most specific first: a configured name, then milliseconds (more precise), then RFC 9110.
    for name, kind in (
        (custom, "auto"),
        ("retry-after-ms", "delta-ms"),
        ("retry-after", "retry-after"),
    ):
        if (seconds := read_reset(ctx, name, kind)) is not None:
            return seconds
    return None


def _plan(present: KeysView[str]) -> _Plan:
    """The rows that apply when exactly `present` came, each with what its `bind` chose, and
    whether any of SIGNALS came: all of it depends on the names alone, so it is cached."""
    if (plan := _PLANS.get(key := tuple(present))) is None:
        mask = 0
        for name in key:
            mask |= TRIGGERS.get(name, 0)
        bound = ((n, r.bind(present)) for b, n, r in ROWS if b & mask)  # in table order
        plan = tuple((n, r) for n, r in bound if r is not None), not present.isdisjoint(SIGNALS)
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _parse(headers: object, now: float, headers_map: Mapping[str, str] | None) -> Observation:
    names: dict[str, str] = {}
    if headers_map:
        names = {k: v.strip().lower() for k, v in headers_map.items() if isinstance(v, str)}
    custom, reads = custom_row(tuple(names.items())) if names else (None, READS)
    fields, bad = read_fields(headers, reads)
    if not fields:  # the common case: a response without rate-limit headers
        return Observation(errors=len(bad)) if bad else _EMPTY
    ctx = Context(fields, bad, now)
    rows, signals = _plan(ctx.present)
    if custom is not None and (reader := custom.bind(ctx.present)) is not None:
        rows = (("custom", reader), *rows)
    quotas: dict[str, Quota] = {}
    style = matched = None
    for name, read in rows:
        if (found := read(ctx)) is not None:
            matched, style = matched or name, style or (name if found else None)
            for quota in found:
                if quota.policy not in quotas:
                    quotas[quota.policy] = quota
    retry_after = reason = None
    is_global = False
    if names or signals:
        flag = (read_token(ctx, f"{RL}global") or "false").lower()
        if flag not in ("true", "false"):
            ctx.bad(f"{RL}global")
        retry_after = _retry_after(ctx, names.get("retry_after", ""))
        is_global = flag == "true" or read_token(ctx, f"{RL}scope") == "global"  # Discord 429s
        reason = read_token(ctx, "stripe-rate-limited-reason")
    # Positional: seven keyword arguments would cost a third of the construction again.
    return Observation(
        tuple(quotas.values()),  # quotas
        retry_after,
        ctx.bucket,
        is_global,
        reason,
        len(ctx.bad_keys),  # errors
        style or matched,
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
