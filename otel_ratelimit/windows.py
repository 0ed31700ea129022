"""Quotas learned from response headers: windows that reset, and leaky buckets that drain.

A window's remaining quota, less what was admitted after the measured request (it was in
flight), is paced evenly until the reset. A leaky bucket (Shopify's ``used/capacity``)
refills continuously instead, so it is spent as soon as it has room.
"""

from __future__ import annotations

import math

from .headers import Quota
from .keystate import KeyState, Window

__all__ = [
    "DEFAULT_RESET",
    "LEAK_MATCH",
    "PACE_BURST",
    "PACE_SPAN",
    "ROUNDING",
    "ROUNDING_SHARE",
    "learn",
    "roll_window",
    "stale",
    "unroll",
    "window_earliest",
]

PACE_BURST = 0.1  # a learned window's quota may go out in bursts of 10% of what is left
PACE_SPAN = 0.9  # ...and is spread over 90% of the time to reset: resets arrive late and rounded
ROUNDING = 1.0  # ...ending at least this long before it (resets in whole seconds), but
ROUNDING_SHARE = 0.2  # ...at most this share of the window's length before it
DEFAULT_RESET = 60.0  # assumed time to reset when a server reports remaining but no reset
LEAK_MATCH = 1e-6  # how exactly a reset must equal used * window / limit to mean a leaky bucket


def roll_window(w: Window, t: float) -> Window:
    """The window in force at time ``t``: past ``end`` a fresh one with the whole limit;
    a leaky bucket drained until ``t`` (never above its limit)."""
    if w.leak > 0:
        if t <= w.start:
            return w
        base = min(w.limit, w.base - w.spent + w.leak * (t - w.start))
        end = t + (w.limit - base) / w.leak
        return Window(w.limit, t, end, base, 0.0, w.length, w.seq, w.assumed, w.leak)
    if t < w.end:
        return w
    length = w.length if w.length > 0 else w.end - w.start
    length = max(length, 1e-3)
    skipped = math.floor((t - w.end) / length)
    start = w.end + skipped * length
    # Slots taken past what the server counted as left belong to the next window (``base``
    # below zero, see ``learn``): it starts with them spent.
    spent = min(w.limit, -w.base) if w.base < 0 and skipped == 0 else 0.0
    return Window(w.limit, start, start + length, w.limit, spent, w.length, w.seq, assumed=True)


def unroll(w: Window, now: float) -> Window:
    """Back from an emptied future window to the one in force now, counted as used up
    (what was sent in it is no longer known)."""
    length = max(w.end - w.start, 1e-3)
    back = math.ceil((w.start - now) / length) * length
    return Window(w.limit, w.start - back, w.end - back, w.limit, w.limit, w.length, w.seq, True)


def stale(w: Window, now: float) -> bool:
    """Whether the present is beyond what the server last told us plus one assumed window
    (a leaky bucket's level is known at any time: it never goes stale)."""
    return w.leak == 0 and now >= w.end and (w.assumed or now >= 2 * w.end - w.start)


def window_earliest(w: Window, t: float, cost: float) -> tuple[float, bool]:
    """The earliest time ``cost`` fits in the window, and whether that is only a time to look
    again (slots are handed out one assumed window ahead at most: further is guesswork)."""
    if w.leak > 0:  # room now, or once enough has drained (a cost above the limit: when empty)
        w = roll_window(w, t)
        t = max(t, w.start)
        have, need = w.base - w.spent, min(cost, w.limit)
        return (t if have >= need else t + (need - have) / w.leak), False
    if t >= w.end and w.assumed:
        return w.end, True
    w = roll_window(w, t)
    t = max(t, w.start)
    if w.spent + cost > w.base or (cost == 0 and w.spent >= w.base):
        if w.spent == 0 and w.base >= w.limit:
            return t, False  # bigger than the whole quota: let it go on a fresh window
        return window_earliest(w, w.end, cost)
    burst = min(w.base, max(1.0, math.ceil(w.base * PACE_BURST)))
    need = w.spent + cost - burst
    if need <= 0 or w.base <= burst:
        return t, False
    # Spread what is left beyond the burst over the time to reset, the last slot before it
    # by a tenth of that time, or up to a second: a reset given in whole seconds (an epoch,
    # a rounded delta) can be that late, the same in every answer of a window, and a slot
    # past the true reset is taken from the next window.
    left = w.end - w.start
    span = max(0.0, left - max((1 - PACE_SPAN) * left, min(ROUNDING, ROUNDING_SHARE * w.length)))
    return max(t, w.start + need * span / (w.base - burst + 1)), False


def _leak(quota: Quota, limit: float, remaining: float, old: Window | None) -> float:
    """The drain per second of a quota that reports a leaky bucket, else 0.

    A leaky bucket's time to reset is its level over the drain rate, ``used * window /
    limit``, exactly. A window that resets matches that only by chance: rarely strictly
    between empty and full, and then mostly when its reset is rounded to whole seconds. So
    a match strictly between marks a new key as leaky, and a key known as a window only
    when its reset has a fraction of a second; it stays so while its answers keep matching.
    """
    window, ttr = quota.window, quota.reset_after
    if not window or ttr is None or quota.limit is None or limit <= 0:
        return 0.0
    if abs(ttr - (limit - remaining) * window / limit) > LEAK_MATCH:
        return 0.0
    if old is not None and old.leak > 0:
        return limit / window
    # A whole number of seconds is what a window's reset rounded up looks like too (25 per
    # 5 s with 10 left resets in 3 s): on a key known as a window, it marks no bucket.
    if 0 < remaining < limit and (old is None or ttr != math.floor(ttr)):
        return limit / window
    return 0.0


def learn(
    state: KeyState,
    quota: Quota,
    now: float,
    ticket: float,
    after: float,
    unseen: float,
    given: float,
) -> None:
    """Fold one reported quota into the key's windows: ``after`` went out after the measured
    request, up to ``unseen`` earlier ones may have reached the server after it, and its answer
    took ``given`` off the cost still out (``state.out``)."""
    if quota.remaining is None:
        return  # a policy without a count says nothing we can hold requests to
    limit = quota.limit if quota.limit is not None else quota.remaining
    old = state.windows.get(quota.policy)
    leak = _leak(quota, limit, min(quota.remaining, limit), old)
    if leak > 0:
        # A level is known at any time (no reset ends an error), and requests reach the server
        # in any order, so no count is taken as whole. Each one bounds the level from above,
        # drained since it came: what is left, less all still out. The bucket is the lowest
        # such room, and an answer gives its own cost back: it was held as out, and it is in
        # the server's level (in this count, or in a higher one taken before).
        estimate = min(quota.remaining, limit) - state.out
        if old is not None and old.leak > 0:
            current = roll_window(old, now)
            estimate = min(estimate, current.base - current.spent + given)
        end = now + (limit - estimate) / leak
        state.windows[quota.policy] = Window(limit, now, end, estimate, 0.0, quota.window or 0.0,
                                             ticket, False, leak)  # fmt: skip
        return
    if old is not None and old.leak > 0:
        old = None  # no longer a leaky bucket: start over
    # Overtaken requests come from a burst (slots further apart keep their order); more than
    # a burst would be requests that never answered (a process that died holding them).
    after += min(unseen, max(1.0, math.ceil(limit * PACE_BURST)))
    ttr = quota.reset_after
    length = quota.window or max(old.length if old else 0.0, ttr or 0.0)
    if ttr is None:
        ttr = old.end - now if old and old.end > now else (length or DEFAULT_RESET)
    end = now + ttr
    # Below zero when more went out after this request than the server had left: those
    # slots were taken in the next window, which starts with them spent (``roll_window``).
    estimate = min(quota.remaining, limit) - after
    if old is not None:
        tolerance = min(1.0, 0.5 * length)  # resets often come rounded to whole seconds
        if old.assumed and end <= old.start + tolerance:
            return  # measured before a reset this key has already moved past
        if not old.assumed and abs(end - old.end) <= tolerance:
            # The same window: a count, less what went out after it, bounds what is left, so
            # the lowest is kept, but each answer gives its own cost back: a request the server
            # counted before the measured one is in its count and among those after it too (a
            # burst's answers would otherwise lose those slots for the whole window). Resets
            # come rounded up (and we receive them late): the earliest is the closest.
            old.end = max(now, min(end, old.end))
            room = old.base - old.spent
            estimate = min(estimate, room + given)
            if estimate != room:
                old.start, old.base, old.spent = now, estimate, 0.0
                old.seq = max(old.seq, ticket)
            return
        last_end = old.start if old.assumed else old.end  # the last reset the server told
        if not quota.window and end - last_end > tolerance:
            length = max(end - last_end, ttr)  # a new window began: resets are a length apart
    state.windows[quota.policy] = Window(limit, now, end, estimate, 0.0, length, ticket)
