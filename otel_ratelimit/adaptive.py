"""AIMD for APIs that announce nothing: learn a rate from their pushbacks.

An API is not slowed until it first pushes back (only a slow start bounds what is in flight
while nothing is known); then the successes so far give a first estimate (none yet: no
estimate, only the pause) and a bound above it, and the rate ramps from one to the other;
from there (or from a pushback that came first) it grows additively, slowly near the last
pushback, and is cut multiplicatively.
"""

from __future__ import annotations

from .keystate import KeyConfig, KeyState

__all__ = [
    "ADAPTIVE",
    "PEAK_NEAR",
    "PEAK_STEP",
    "RAMP",
    "adaptive_on",
    "decrease",
    "slow_start",
    "succeed",
]

RAMP = 0.15  # rate gained per success while ramping: 15% per second
PEAK_NEAR = 0.95  # within 5% of the rate that last drew a pushback (either side)...
PEAK_STEP = 0.1  # ...the rate grows at a tenth of ``increase_step``: each pushback costs a
# pause (a whole-second Retry-After, often), so the limit is approached slowly, not hit often;
# past the band the limit has moved up, and the rate grows at full speed again
ADAPTIVE = "~adaptive"  # the name of the learned rate's GCRA bucket


def slow_start(state: KeyState, config: KeyConfig) -> bool:
    """Whether an API that announced nothing yet must wait for answers before more goes out.

    Until it first pushes back, in-flight requests may only grow by a quarter per round trip
    (one more per four successes): a sequential caller never waits, while a burst of coroutines
    cannot pour dozens of requests into a limit nobody knows yet. Whatever is in flight when
    the limit is crossed is answered 429, so the growth is kept slow (32 in flight still
    take only about 16 round trips). Pushbacks and errors are no progress: an API answering
    nothing but 429 gets one request at a time, after each pause.
    """
    if config.adaptive is None or state.rate is not None or state.windows or config.limits:
        return False
    return state.sent - state.answered >= 1 + state.probe_ok // 4


def adaptive_on(state: KeyState, config: KeyConfig) -> bool:
    """Whether the learned rate binds: AIMD runs only where no headers told anything better."""
    return config.adaptive is not None and state.rate is not None and not state.windows


def succeed(state: KeyState, config: KeyConfig) -> None:
    """A healthy answer: the pushback streak ends and the learned rate grows."""
    state.strikes = 0
    state.probe_ok += 1
    adaptive = config.adaptive
    if adaptive is not None and state.rate is not None:
        if state.ramping:  # the first estimate is a lower bound: climb quickly to the upper
            rate = state.rate + RAMP
            if rate >= state.peak:  # the ramp's end; additive growth at full speed from here
                rate, state.ramping, state.peak = state.peak, False, 0.0
        else:  # additive: ``increase_step`` more per second of healthy traffic
            step = adaptive.increase_step / max(state.rate, 1.0)
            if state.peak * PEAK_NEAR <= state.rate <= state.peak / PEAK_NEAR:
                step *= PEAK_STEP
            rate = state.rate + step
        state.rate = min(rate, adaptive.max_rate) if adaptive.max_rate else rate


def decrease(state: KeyState, config: KeyConfig, now: float, cooldown: float) -> None:
    """A fresh pushback: a first estimate of the rate, or a multiplicative cut of it."""
    adaptive = config.adaptive
    if adaptive is None or state.windows:
        return
    if state.rate is None:
        if not adaptive.initial_rate and (state.probe_ok <= 0 or state.probe_start <= 0):
            # Nothing measured here yet (the first answer pushed back, or the state is fresh
            # after an outage): an "estimate" would be 0, i.e. ``min_rate`` for minutes. The
            # pause the server ordered is the answer; measuring starts again after it, while
            # the slow start (or the configured limits) still bound what goes out.
            state.probe_start, state.probe_ok = state.cooldown_until, 0.0
            return
        # First pushback: the successes so far, over the time until the pause ends, are at
        # least the rate. Pauses are often rounded up to a whole second (Retry-After: 1, an
        # HTTP-date), so the window may have been up to a second shorter and the rate that
        # much higher: at most. The ramp begins halfway and ends there, before it overshoots
        # (an overshoot costs a pause).
        elapsed = max(now - state.probe_start, 0.0) + cooldown
        low = state.probe_ok / max(elapsed, 1.0)
        high = state.probe_ok / max(elapsed - 1.0, 1.0)
        rate = adaptive.initial_rate or (low + high) / 2
        state.peak = max(rate, high)  # where the ramp ends
        state.ramping = True
    else:
        rate = state.rate * adaptive.decrease_factor
        state.peak = state.rate
        state.ramping = False
    rate = max(rate, adaptive.min_rate)
    state.rate = min(rate, adaptive.max_rate) if adaptive.max_rate else rate
    # The bucket restarts after the pause, and after the last slot already handed out.
    state.tats[ADAPTIVE] = max(state.cooldown_until, state.last_at + 1.0 / state.rate)
