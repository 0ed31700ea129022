"""The decision core: when may a request to a key go, and what did its response teach us.

Pure and sans-I/O: every function takes the time as ``now`` and mutates only the
``KeyState`` it is given, so memory, SQLite and Redis (in Lua) make the same decisions.

A key holds three kinds of policies, all checked in one step:

* configured limits (``set_limit``, presets, ``default_limits``): GCRA buckets;
* windows learned from response headers: the remaining quota, less what was admitted after
  the measured request (it was in flight), paced evenly until the reset;
* an adaptive rate (AIMD) where the API announces nothing, learned from its pushbacks.

``acquire`` reserves the earliest slot that every policy allows and returns how long to
wait for it, so concurrent callers queue in order instead of racing at the reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from .headers import Observation, Quota
from .limits import AdaptiveConfig, Limit

__all__ = [
    "Grant",
    "KeyConfig",
    "KeyState",
    "Outcome",
    "Window",
    "acquire",
    "observe",
    "release",
]

PACE_BURST = 0.1  # a learned window's quota may go out in bursts of 10% of what is left
PACE_SPAN = 0.9  # ...and is spread over 90% of the time to reset: resets arrive late and rounded
DEFAULT_RESET = 60.0  # assumed time to reset when a server reports remaining but no reset
PROBE_TIMEOUT = 2.0  # how long a probe (a key's first request) holds the others back
SPACING = 0.001  # concurrent slots of a header-learned key are 1 ms apart: the server then counts
# them in ticket order, which the in-flight correction relies on (ties reorder, under-count)
PROBE_POLL = 0.02  # how often held-back requests look again
RAMP = 0.03  # rate gained per success while ramping: 3% per second
_ADAPTIVE = "~adaptive"


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """What is configured for one key: limits, adaptive learning and pushback handling."""

    limits: tuple[Limit, ...] = ()
    adaptive: AdaptiveConfig | None = None
    backoff_status_codes: frozenset[int] = frozenset({429, 503})
    cooldown: float = 1.0  # pause after a pushback that names no Retry-After (doubles per strike)
    max_cooldown: float = 300.0


@dataclass(slots=True)
class Window:
    """A quota learned from headers: `base` left at `start`, `spent` since, reset at `end`."""

    limit: float
    start: float
    end: float
    base: float
    spent: float = 0.0
    length: float = 0.0  # the window's length when known or estimated (0: unknown)
    seq: float = 0.0  # ticket of the response this estimate came from
    assumed: bool = False  # rolled past a reset by ourselves, not yet confirmed by the server


@dataclass(slots=True)
class KeyState:
    """Everything stored for one key."""

    seq: float = 0.0  # cost admitted so far; orders responses against later admissions
    cooldown_until: float = 0.0
    strikes: int = 0  # pushbacks since the last success
    tats: dict[str, float] = field(default_factory=dict)  # GCRA theoretical arrival times
    windows: dict[str, Window] = field(default_factory=dict)
    rate: float | None = None  # adaptive rate; None until the API first pushes back
    ramping: bool = False  # after the first estimate: grow 3%/s until the next pushback
    probe_start: float = 0.0  # when success counting for the first rate estimate began
    probe_ok: float = 0.0
    decrease_seq: float = -1.0  # responses to tickets up to this one are already accounted for
    last_at: float = 0.0  # the latest slot handed out: slots go in ticket order
    probing_until: float = 0.0  # a probe is out: others look again until its answer (or this)
    sent: int = 0  # requests admitted
    answered: int = 0  # requests whose response (or failure, or cancellation) came back
    touched: float = 0.0


class Grant(NamedTuple):
    """An acquire's answer: go after ``wait`` seconds (when ``ok``), holding ``ticket``.

    A named tuple, not a dataclass: one is built per request, and this is the cheapest.
    """

    ok: bool
    wait: float
    at: float  # when the slot is, on the store's clock
    ticket: float
    cost: float
    policy: str  # the policy that decided the wait ("" when nothing made it wait)
    again: bool = False  # nothing reserved: sleep ``wait`` and ask again (first contact)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a response changed: a backoff (and why), and the adaptive rate after it."""

    backoff: str | None = None  # "retry_after", "status_429", ...
    cooldown: float = 0.0
    rate: float | None = None
    header_errors: int = 0


def _gcra_earliest(tat: float, t: float, cost: float, rate: float, burst: float) -> float:
    interval = 1.0 / rate
    # A cost above the burst can never fit; let it through when the bucket is full (no livelock).
    return max(t, tat - (burst - min(cost, burst)) * interval)


def roll_window(w: Window, t: float) -> Window:
    """The window in force at time ``t``: past ``end`` a fresh one with the whole limit."""
    if t < w.end:
        return w
    length = w.length if w.length > 0 else w.end - w.start
    length = max(length, 1e-3)
    skipped = math.floor((t - w.end) / length)
    start = w.end + skipped * length
    return Window(w.limit, start, start + length, w.limit, 0.0, w.length, w.seq, assumed=True)


def _unroll(w: Window, now: float) -> Window:
    """Back from an emptied future window to the one in force now, counted as used up
    (what was sent in it is no longer known)."""
    length = max(w.end - w.start, 1e-3)
    back = math.ceil((w.start - now) / length) * length
    return Window(w.limit, w.start - back, w.end - back, w.limit, w.limit, w.length, w.seq, True)


def _stale(w: Window, now: float) -> bool:
    """Whether the present is beyond what the server last told us plus one assumed window."""
    return now >= w.end and (w.assumed or now >= 2 * w.end - w.start)


def window_earliest(w: Window, t: float, cost: float) -> tuple[float, bool]:
    """The earliest time ``cost`` fits in the window, and whether that is only a time to look
    again (slots are handed out one assumed window ahead at most: further is guesswork)."""
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
    # Spread what is left beyond the burst over the time to reset, the last slot before it.
    span = PACE_SPAN * (w.end - w.start)
    return max(t, w.start + need * span / (w.base - burst + 1)), False


def _slow_start(state: KeyState, config: KeyConfig) -> bool:
    """Whether an API that announced nothing yet must wait for answers before more goes out.

    Until it first pushes back, in-flight requests may only double per round trip (one more
    per two answers: x1.5 per round trip): a sequential caller never waits, while a burst of
    coroutines cannot pour dozens of requests into a limit nobody knows yet.
    """
    if config.adaptive is None or state.rate is not None or state.windows or config.limits:
        return False
    return state.sent - state.answered >= 1 + state.answered // 2


def _adaptive_on(state: KeyState, config: KeyConfig) -> bool:
    """Whether the learned rate binds: AIMD runs only where no headers told anything better."""
    return config.adaptive is not None and state.rate is not None and not state.windows


def _policies(state: KeyState, config: KeyConfig) -> list[tuple[str, float, float, float]]:
    """The GCRA policies in force: (name, tat, rate, burst)."""
    out = [(lim.name, state.tats.get(lim.name, 0.0), lim.rate, lim.burst) for lim in config.limits]
    if _adaptive_on(state, config):
        out.append((_ADAPTIVE, state.tats.get(_ADAPTIVE, 0.0), state.rate or 1.0, 1.0))
    return out


def acquire(state: KeyState, config: KeyConfig, now: float, cost: float, max_wait: float) -> Grant:
    """Reserve the earliest slot every policy allows; refuse (state untouched) past max_wait."""
    if now < state.probing_until:
        return Grant(True, PROBE_POLL, now + PROBE_POLL, state.seq, cost, "probe", again=True)
    # A new key, or one idle past what its headers told: one probe learns before the rest go.
    probe = state.seq == 0
    if state.windows and not probe:
        probe = any(_stale(w, now) for w in state.windows.values())
    if probe:
        for name, w in list(state.windows.items()):
            state.windows[name] = roll_window(w, now)
    if config.adaptive is not None and _slow_start(state, config):
        return Grant(True, PROBE_POLL, now + PROBE_POLL, state.seq, cost, "slow_start", again=True)
    adaptive = _adaptive_on(state, config)
    tats = state.tats
    # Slots never go out of ticket order, or a response's count would miss an earlier ticket.
    spaced = state.windows and state.sent > state.answered  # others are out: keep their order
    t, policy = max(now, state.last_at + (SPACING if spaced else 0.0)), "queue"
    if state.cooldown_until > t:
        t, policy = state.cooldown_until, "cooldown"
    if t == now:
        policy = ""
    # A GCRA bucket only says "not before X", so one pass over them finds the latest X.
    for lim in config.limits:
        at = _gcra_earliest(tats.get(lim.name, 0.0), t, cost, lim.rate, lim.burst)
        if at > t:
            t, policy = at, lim.name
    if adaptive:
        at = _gcra_earliest(tats.get(_ADAPTIVE, 0.0), t, cost, state.rate or 1.0, 1.0)
        if at > t:
            t, policy = at, _ADAPTIVE
    for _ in range(8 if state.windows else 0):  # windows roll: a few rounds reach a fixed point
        moved = False
        for name, w in state.windows.items():
            at, again = window_earliest(w, t, cost)
            if again:
                ok = at - now <= max_wait
                return Grant(ok, at - now, at, state.seq, cost, name, again=True)
            if at > t:
                t, policy, moved = at, name, True
        if not moved:
            break
    wait = t - now
    if wait > max_wait:
        return Grant(False, wait, t, state.seq, cost, policy)
    for lim in config.limits:
        tats[lim.name] = max(tats.get(lim.name, 0.0), t) + cost / lim.rate
    if adaptive:
        tats[_ADAPTIVE] = max(tats.get(_ADAPTIVE, 0.0), t) + cost / (state.rate or 1.0)
    for name, old in list(state.windows.items()):
        w = roll_window(old, t)
        w.spent += cost
        state.windows[name] = w
    if state.probe_start == 0.0:
        state.probe_start = now
    state.seq += cost
    state.sent += 1
    state.last_at = t
    if probe:
        state.probing_until = t + PROBE_TIMEOUT
    state.touched = now
    return Grant(True, wait, t, state.seq, cost, policy)


def release(state: KeyState, config: KeyConfig, grant: Grant, now: float) -> None:
    """Give back a slot whose request never went out (cancelled or timed out while waiting)."""
    for name, tat, rate, _ in _policies(state, config):
        state.tats[name] = max(now, tat - grant.cost / rate)
    for name, w in state.windows.items():
        if w.start <= grant.at < w.end:  # only the window the slot was taken from
            w.spent = max(0.0, w.spent - grant.cost)
            if w.assumed and w.start > now and w.spent == 0:
                state.windows[name] = _unroll(w, now)
    state.answered += 1
    if grant.at >= state.last_at:  # the tail of the queue left: later tickets may go sooner
        state.last_at = now


def observe(
    state: KeyState,
    config: KeyConfig,
    now: float,
    ticket: float,
    status: int,
    obs: Observation,
) -> Outcome:
    """Fold one response into the key: learned windows, cooldowns and the adaptive rate."""
    state.touched = now
    state.probing_until = 0.0
    state.answered += 1
    if status <= 0:
        return Outcome()  # no response at all (the connection failed): nothing to learn
    after = max(0.0, state.seq - ticket)  # admitted after this request: not in its numbers
    for quota in obs.quotas:
        _learn(state, quota, now, ticket, after)
    pushback = status in config.backoff_status_codes or (
        obs.retry_after is not None and status >= 400
    )
    if not pushback:
        if status < 500:  # 5xx is neither a success nor a pushback: never speed up on it
            _succeed(state, config)
        return Outcome(rate=state.rate, header_errors=obs.errors)
    if obs.retry_after is not None:
        reason, cooldown = "retry_after", min(obs.retry_after, config.max_cooldown)
    elif state.strikes == 0 and state.rate is not None and not state.windows:
        # A learned rate that just ran over: one slot's pause; the rate cut does the rest.
        reason, cooldown = f"status_{status}", 1.0 / state.rate
    else:
        reason = f"status_{status}"
        cooldown = min(config.cooldown * 2 ** min(state.strikes, 10), config.max_cooldown)
    fresh = ticket > state.decrease_seq  # the first pushback for traffic sent since the last
    if fresh or obs.retry_after is not None:  # echoes of one pushback do not stretch its pause
        state.cooldown_until = max(state.cooldown_until, now + cooldown)
    if fresh:
        state.strikes += 1
        state.decrease_seq = state.seq
        _decrease(state, config, now, cooldown)
    return Outcome(reason, cooldown, state.rate, obs.errors)


def _learn(state: KeyState, quota: Quota, now: float, ticket: float, after: float) -> None:
    if quota.remaining is None:
        return  # a policy without a count says nothing we can hold requests to
    limit = quota.limit if quota.limit is not None else quota.remaining
    ttr = quota.reset_after
    old = state.windows.get(quota.policy)
    length = quota.window or max(old.length if old else 0.0, ttr or 0.0)
    if ttr is None:
        ttr = old.end - now if old and old.end > now else (length or DEFAULT_RESET)
    end = now + ttr
    estimate = max(0.0, min(quota.remaining, limit) - after)
    if old is not None:
        tolerance = min(1.0, 0.5 * length)  # resets often come rounded to whole seconds
        if old.assumed and end <= old.start + tolerance:
            return  # measured before a reset this key has already moved past
        if not old.assumed and abs(end - old.end) <= tolerance:
            # The same window: counts only go down in it, so a higher one is a response that
            # overtook an earlier ticket on the way; keep the lowest count. Resets come rounded
            # up (and we receive them late), so the earliest one is the closest to the truth.
            old.end = max(now, min(end, old.end))
            if estimate < old.base - old.spent:
                old.start, old.base, old.spent = now, estimate, 0.0
                old.seq = max(old.seq, ticket)
            return
        last_end = old.start if old.assumed else old.end  # the last reset the server told
        if not quota.window and end - last_end > tolerance:
            length = max(end - last_end, ttr)  # a new window began: resets are a length apart
    state.windows[quota.policy] = Window(limit, now, end, estimate, 0.0, length, ticket)


def _succeed(state: KeyState, config: KeyConfig) -> None:
    state.strikes = 0
    state.probe_ok += 1
    adaptive = config.adaptive
    if adaptive is not None and state.rate is not None:
        if state.ramping:  # the first estimate is a lower bound: find the ceiling quickly
            rate = state.rate + RAMP
        else:  # additive: ``increase_step`` more per second of healthy traffic
            rate = state.rate + adaptive.increase_step / max(state.rate, 1.0)
        state.rate = min(rate, adaptive.max_rate) if adaptive.max_rate else rate


def _decrease(state: KeyState, config: KeyConfig, now: float, cooldown: float) -> None:
    adaptive = config.adaptive
    if adaptive is None or state.windows:
        return
    if state.rate is None:
        # First pushback: the success rate so far, stretched over the pause, is the estimate.
        elapsed = max(now - state.probe_start, 0.0) + cooldown
        measured = state.probe_ok / max(elapsed, 1.0)
        rate = adaptive.initial_rate or measured
        state.ramping = True
    else:
        rate = state.rate * adaptive.decrease_factor
        state.ramping = False
    rate = max(rate, adaptive.min_rate)
    state.rate = min(rate, adaptive.max_rate) if adaptive.max_rate else rate
    state.tats[_ADAPTIVE] = state.cooldown_until
