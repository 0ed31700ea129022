"""The decision core: when may a request to a key go, and what did its response teach us.

Pure and sans-I/O: every function takes the time as ``now`` and mutates only the
``KeyState`` it is given, so memory, SQLite and Redis (in Lua) make the same decisions.

A key holds three kinds of policies, all checked in one step:

* configured limits (``set_limit``, presets, ``default_limits``): GCRA buckets;
* quotas learned from response headers (``windows``): windows paced until their reset and
  leaky buckets spent as they drain;
* an adaptive rate (AIMD, ``adaptive``) where the API announces nothing, learned from its
  pushbacks.

``acquire`` reserves the earliest slot that every policy allows and returns how long to
wait for it, so concurrent callers queue in order instead of racing at the reset.
"""

from __future__ import annotations

from .adaptive import (
    ADAPTIVE,
    PEAK_NEAR,
    PEAK_STEP,
    RAMP,
    adaptive_on,
    decrease,
    slow_start,
    succeed,
)
from .headers import Observation
from .keystate import Grant, KeyConfig, KeyState, Outcome, Window
from .line import HORIZON, learned, line_rate, spare, wait_in_line
from .windows import (
    DEFAULT_RESET,
    LEAK_MATCH,
    PACE_BURST,
    PACE_SPAN,
    ROUNDING,
    ROUNDING_SHARE,
    learn,
    roll_window,
    stale,
    unroll,
    window_earliest,
)

__all__ = [
    "DEFAULT_RESET",
    "HORIZON",
    "LEAK_MATCH",
    "PACE_BURST",
    "PACE_SPAN",
    "PEAK_NEAR",
    "PEAK_STEP",
    "PROBE_POLL",
    "PROBE_TIMEOUT",
    "RAMP",
    "ROUNDING",
    "ROUNDING_SHARE",
    "SPACING",
    "Grant",
    "KeyConfig",
    "KeyState",
    "Outcome",
    "Window",
    "acquire",
    "observe",
    "release",
    "roll_window",
    "window_earliest",
]

PROBE_TIMEOUT = 2.0  # how long a probe (a key's first request), or a slow start's requests out
# with nothing sent since, hold the others back
SPACING = 0.001  # concurrent slots of a header-learned key are 1 ms apart: the server mostly counts
# them in ticket order, which the in-flight correction relies on (``learn`` allows for a burst
# overtaken on the way)
PROBE_POLL = 0.02  # how often held-back requests look again
_QUIET = Outcome()


def _gcra_earliest(tat: float, t: float, cost: float, rate: float, burst: float) -> float:
    interval = 1.0 / rate
    # A cost above the burst can never fit; let it through when the bucket is full (no livelock).
    return max(t, tat - (burst - min(cost, burst)) * interval)


def _policies(state: KeyState, config: KeyConfig) -> list[tuple[str, float, float, float]]:
    """The GCRA policies in force: (name, tat, rate, burst)."""
    out = [(name, state.tats.get(name, 0.0), rate, burst) for name, rate, burst in config.buckets]
    if adaptive_on(state, config):
        out.append((ADAPTIVE, state.tats.get(ADAPTIVE, 0.0), state.rate or 1.0, 1.0))
    return out


def acquire(
    state: KeyState, config: KeyConfig, now: float, cost: float, max_wait: float, place: float = 0.0
) -> Grant:
    """Reserve the earliest slot every policy allows; refuse (state untouched) past max_wait.

    ``place`` is the caller's place in line from its previous ``again`` grant (0: none). A
    slot more than ``HORIZON`` ahead on a learned rate is not reserved: the caller gets an
    ``again`` grant holding a place (line.py); refused, it gives back a place at the line's end.
    """
    if (
        not state.windows
        and config.adaptive is None
        and state.seq
        and state.last_at <= now
        and state.cooldown_until <= now
        and state.probing_until <= now
    ):
        return _acquire_configured(state, config, now, cost, max_wait)
    if now < state.probing_until:
        return _held(state, now, cost, max_wait, "probe", place)
    # A new key, or one idle past what its headers told: one probe learns before the rest go.
    probe = state.seq == 0
    if state.windows and not probe:
        for w in state.windows.values():
            if stale(w, now):
                probe = True
                break
    if probe:
        for name, w in list(state.windows.items()):
            state.windows[name] = roll_window(w, now)
    if config.adaptive is not None and slow_start(state, config):
        if now - state.last_at < PROBE_TIMEOUT:
            return _held(state, now, cost, max_wait, "slow_start", place)
        # Held back that long with nothing answered: what is out counts as lost (a process
        # that died holding it never answers, and a shared key would stall for good).
        state.answered, state.out = state.sent, 0.0
    adaptive = adaptive_on(state, config)
    tats = state.tats
    # Slots never go out of ticket order, or a response's count would miss an earlier ticket.
    spaced = state.windows and state.sent > state.answered  # others are out: keep their order
    t, policy = max(now, state.last_at + (SPACING if spaced else 0.0)), "queue"
    if state.cooldown_until > t:
        t, policy = state.cooldown_until, "cooldown"
    if t == now:
        policy = ""
    # A GCRA bucket only says "not before X", so one pass over them finds the latest X.
    for name, rate, burst in config.buckets:
        at = _gcra_earliest(tats.get(name, 0.0), t, cost, rate, burst)
        if at > t:
            t, policy = at, name
    if adaptive:
        at = _gcra_earliest(tats.get(ADAPTIVE, 0.0), t, cost, state.rate or 1.0, 1.0)
        if at > t:
            t, policy = at, ADAPTIVE
    for _ in range(8 if state.windows else 0):  # windows roll: a few rounds reach a fixed point
        moved = False
        for name, w in state.windows.items():
            at, again = window_earliest(w, t, cost)
            if again:
                ok = at - now <= max_wait
                return Grant(ok, at - now, at, state.seq, cost, name, True, place if ok else 0.0)
            if at > t:
                t, policy, moved = at, name, True
        if not moved:
            break
    wait = t - now
    if state.line_end > state.line_served or (wait > HORIZON and learned(state, policy)):
        # A slot far ahead on a learned rate is decided when it nears, on what is known by
        # then (a pushback's cut, a bucket's count), and callers wait for it in line.
        rate = line_rate(state, adaptive, policy)
        if rate > 0:
            room = 0.0 if adaptive else spare(state, t, cost)
            grant = wait_in_line(state, now, t, cost, max_wait, place, rate, policy, room)
            if grant is not None:
                return grant
        else:
            state.line_served = state.line_end  # nothing learned any more: no line to keep
    if wait > max_wait:
        return Grant(False, wait, t, state.seq, cost, policy)
    _take(state, config, now, t, cost, adaptive)
    if probe:
        state.probing_until = t + PROBE_TIMEOUT
    return Grant(True, wait, t, state.seq, cost, policy)


def _held(state: KeyState, now: float, cost: float, max_wait: float, policy: str,
          place: float) -> Grant:  # fmt: skip
    """Look again shortly: a probe or a slow start holds the key back (refused once the
    caller's ``max_wait`` is spent, like any other wait)."""
    ok = max_wait >= PROBE_POLL
    return Grant(ok, PROBE_POLL, now + PROBE_POLL, state.seq, cost, policy, True,
                 place if ok else 0.0)  # fmt: skip


def _take(
    state: KeyState, config: KeyConfig, now: float, t: float, cost: float, adaptive: bool
) -> None:
    """Book the slot at ``t`` in every policy of the key."""
    tats = state.tats
    for name, rate, _ in config.buckets:
        tats[name] = max(tats.get(name, 0.0), t) + cost / rate
    if adaptive:
        tats[ADAPTIVE] = max(tats.get(ADAPTIVE, 0.0), t) + cost / (state.rate or 1.0)
    for name, old in state.windows.items():
        w = roll_window(old, t)
        w.spent += cost
        if w is not old:  # a value replaced, no key added: safe while iterating
            state.windows[name] = w
    if state.probe_start == 0.0:
        state.probe_start = now
    state.seq += cost
    state.sent += 1
    state.out += cost
    state.last_at = t


def _acquire_configured(
    state: KeyState, config: KeyConfig, now: float, cost: float, max_wait: float
) -> Grant:
    """``acquire`` for the common case, with the same arithmetic: a known key with configured
    limits only (nothing learned, no pause, no queue ahead), so only its buckets can wait."""
    t, policy, tats, buckets = now, "", state.tats, config.buckets
    for name, rate, burst in buckets:
        at = tats.get(name, 0.0) - (burst - min(cost, burst)) * (1.0 / rate)
        if at > t:
            t, policy = at, name
    wait = t - now
    if wait > max_wait:
        return Grant(False, wait, t, state.seq, cost, policy)
    for name, rate, _ in buckets:
        tat = tats.get(name, 0.0)
        tats[name] = (tat if tat > t else t) + cost / rate
    if state.probe_start == 0.0:
        state.probe_start = now
    seq = state.seq = state.seq + cost
    state.sent += 1
    state.out += cost
    state.last_at = t
    return Grant(True, wait, t, seq, cost, policy)


def release(state: KeyState, config: KeyConfig, grant: Grant, now: float) -> None:
    """Give back a slot whose request never went out (cancelled or timed out while waiting)."""
    for name, tat, rate, _ in _policies(state, config):
        state.tats[name] = max(now, tat - grant.cost / rate)
    for name, w in state.windows.items():
        if w.leak > 0:  # a bucket: the slot's cost flows back into it
            w.base = min(w.limit, w.base + grant.cost)
        elif w.start <= grant.at < w.end:  # only the window the slot was taken from
            w.spent = max(0.0, w.spent - grant.cost)
            if w.assumed and w.start > now and w.spent == 0:
                state.windows[name] = unroll(w, now)
    _answered(state, grant.cost)
    if grant.at >= state.last_at:  # the tail of the queue left: later tickets may go sooner
        state.last_at = now


def _answered(state: KeyState, cost: float) -> None:
    """A request came back (or never went): one fewer out, and its cost."""
    if state.answered < state.sent:  # never more than sent (see acquire)
        state.answered += 1
    state.out = state.out - cost if state.out > cost else 0.0


def observe(
    state: KeyState,
    config: KeyConfig,
    now: float,
    ticket: float,
    status: int,
    obs: Observation,
    cost: float = 1.0,
) -> Outcome:
    """Fold one response into the key: learned windows, cooldowns and the adaptive rate.
    ``cost`` is the answered request's (``Grant.cost``)."""
    state.probing_until = 0.0
    out = state.out
    _answered(state, cost)
    if status <= 0:
        return Outcome()  # no response at all (the connection failed): nothing to learn
    after = max(0.0, state.seq - ticket)  # admitted after this request: not in its numbers
    # Nor, perhaps, those still out from before it: on their own connections requests can
    # reach the server out of ticket order (``learn`` counts a burst of them at most).
    unseen = max(0.0, state.sent - state.answered - after)
    for quota in obs.quotas:
        learn(state, quota, now, ticket, after, unseen, out - state.out)
    pushback = status in config.backoff_status_codes or (
        obs.retry_after is not None and status >= 400
    )
    if not pushback:
        if status < 500:  # 5xx is neither a success nor a pushback: never speed up on it
            succeed(state, config)
        if state.rate is None and not obs.errors:
            return _QUIET  # the common answer, made once
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
        decrease(state, config, now, cooldown)
    return Outcome(reason, cooldown, state.rate, obs.errors)
