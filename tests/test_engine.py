"""Properties and behaviour of the pure decision core, with a fake clock."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_ratelimit.engine import HORIZON, PEAK_STEP, KeyConfig, KeyState, acquire, observe, release
from otel_ratelimit.headers import Observation, Quota
from otel_ratelimit.limits import AdaptiveConfig, Limit

INF = math.inf
NOTHING = Observation()


def _seen() -> KeyState:
    """A key past first contact (its first response was seen), so no probe holds requests."""
    return KeyState(seq=0.5)


def _window_obs(remaining: float, reset: float, limit: float = 10, window: float | None = None):
    return Observation(quotas=(Quota("default", limit, remaining, reset, window),))


steps = st.lists(
    st.tuples(st.floats(0, 3, allow_nan=False), st.integers(1, 3)), min_size=1, max_size=60
)


@settings(max_examples=200, deadline=None)
@given(
    steps=steps,
    limit=st.integers(1, 20),
    window=st.floats(0.5, 10),
    burst=st.integers(1, 5),
)
def test_gcra_never_admits_more_than_burst_plus_rate_times_interval(steps, limit, window, burst):
    """Over any interval, admitted cost <= burst + rate * length (costs never exceed the burst)."""
    lim = Limit(limit, window, burst=burst)
    config, state, now, sent = KeyConfig(limits=(lim,)), _seen(), 0.0, []
    for dt, cost in steps:
        now += dt
        fitting = min(cost, burst)
        grant = acquire(state, config, now, fitting, INF)
        assert grant.ok and grant.wait >= 0
        sent.append((grant.at, fitting))
    sent.sort()
    for i in range(len(sent)):
        total = 0.0
        for j in range(i, len(sent)):
            total += sent[j][1]
            assert total <= burst + lim.rate * (sent[j][0] - sent[i][0]) + 1e-6


@settings(max_examples=200, deadline=None)
@given(steps=steps, limit=st.integers(1, 20), window=st.floats(0.5, 10))
def test_burst_one_means_at_most_limit_in_any_window(steps, limit, window):
    """With the default burst, no half-open window of `window` seconds holds more than `limit`."""
    config, state, now, times = KeyConfig(limits=(Limit(limit, window),)), _seen(), 0.0, []
    for dt, _ in steps:
        now += dt
        times.append(acquire(state, config, now, 1, INF).at)
    times.sort()
    for i, start in enumerate(times):
        inside = [t for t in times[i:] if t < start + window - 1e-9]
        assert len(inside) <= limit


@settings(max_examples=200, deadline=None)
@given(steps=steps, limit=st.integers(1, 10), max_wait=st.floats(0, 5))
def test_denial_retry_after_suffices(steps, limit, max_wait):
    """A refused request that comes back after its retry_after is admitted at once."""
    config, state, now = KeyConfig(limits=(Limit(limit, 2.0),)), _seen(), 0.0
    for dt, cost in steps:
        now += dt
        grant = acquire(state, config, now, 1, max_wait)
        if not grant.ok:
            assert grant.wait > max_wait
            # Back after retry_after (now + wait may round a hair short of the slot: 1 ns slack)
            again = acquire(state, config, now + grant.wait, 1, 1e-9)
            assert again.ok and again.wait <= 1e-9
            return


def test_refusal_leaves_state_untouched():
    """A request refused for max_wait reserves nothing."""
    config, state = KeyConfig(limits=(Limit(1, 10),)), _seen()
    assert acquire(state, config, 0.0, 1, 0).ok
    before = (dict(state.tats), state.seq)
    assert not acquire(state, config, 0.0, 1, 1.0).ok
    assert (dict(state.tats), state.seq) == before


def test_several_policies_all_bind():
    """10/s and 20/min: the per-minute policy binds after 20 quick requests."""
    config = KeyConfig(limits=(Limit(10, 1, burst=10, name="s"), Limit(20, 60, burst=20, name="m")))
    state = _seen()
    waits = [acquire(state, config, 0.0, 1, INF).wait for _ in range(21)]
    assert waits[:10] == [0.0] * 10
    assert 0 < waits[10] <= 0.1 + 1e-9  # the per-second bucket paces the next ten
    assert waits[20] >= 3.0 - 1e-9  # then 20/min: one more every 3 s
    assert acquire(state, config, 0.0, 1, 0).policy in {"m", "s"}


def test_remaining_is_paced_until_reset_not_burst():
    """20 left for 10 s: a quick burst of 2, then one slot every ~0.5 s, never past the count."""
    state, config = _seen(), KeyConfig()
    grant = acquire(state, config, 0.0, 1, INF)
    observe(state, config, 0.0, grant.ticket, 200, _window_obs(20, 10.0, limit=100))
    times = [acquire(state, config, 0.0, 1, INF).at for _ in range(21)]
    assert times[:2] == pytest.approx([0.0, 0.001])  # a burst; in-flight slots 1 ms apart
    assert all(b > a for a, b in itertools.pairwise(times[1:20]))
    assert max(t for t in times if t < 10.0) <= 10.0
    assert sum(1 for t in times if t < 10.0) == 20
    assert times[-1] >= 10.0  # the 21st request of this window waited for the reset


def test_remaining_zero_waits_for_reset():
    """remaining == 0 means wait for the reset, not a refill rate."""
    state, config = _seen(), KeyConfig()
    grant = acquire(state, config, 0.0, 1, INF)
    observe(state, config, 0.0, grant.ticket, 200, _window_obs(0, 7.5))
    assert acquire(state, config, 0.1, 1, INF).at == 7.5


def test_requests_in_flight_are_subtracted():
    """Remaining measured on the first of five in-flight requests leaves 10 - 4 = 6."""
    state, config = _seen(), KeyConfig()
    grants = [acquire(state, config, 0.0, 1, INF) for _ in range(5)]
    observe(state, config, 0.05, grants[0].ticket, 200, _window_obs(10, 60.0, limit=10))
    window = state.windows["default"]
    assert window.base - window.spent == 6


def test_stale_response_from_before_a_reset_is_ignored():
    """A response measured before a reset we already rolled past does not stall the new window."""
    state, config = _seen(), KeyConfig()
    g = acquire(state, config, 0.0, 1, INF)
    observe(state, config, 0.0, g.ticket, 200, _window_obs(1, 5.0, limit=10, window=5.0))
    slow = acquire(state, config, 0.0, 1, INF)
    assert acquire(state, config, 0.0, 1, INF).at == 5.0  # rolled into the next window
    observe(state, config, 5.01, slow.ticket, 200, _window_obs(0, 0.0, limit=10, window=5.0))
    assert acquire(state, config, 5.02, 1, INF).wait < 1.0


def test_retry_after_sets_a_cooldown_for_the_key():
    """A 429 with Retry-After: 3 pauses every request on the key for 3 s."""
    state, config = _seen(), KeyConfig()
    g = acquire(state, config, 0.0, 1, INF)
    out = observe(state, config, 0.0, g.ticket, 429, Observation(retry_after=3.0))
    assert out.backoff == "retry_after" and out.cooldown == 3.0
    assert acquire(state, config, 1.0, 1, INF).wait == 2.0


def test_pushback_without_hint_doubles_per_strike():
    """A bare 503 pauses 1 s, then 2 s, then 4 s while the API keeps pushing back."""
    state, config = _seen(), KeyConfig()
    cooldowns = []
    for i in range(3):
        g = acquire(state, config, float(i * 10), 1, INF)
        cooldowns.append(observe(state, config, g.at, g.ticket, 503, NOTHING).cooldown)
    assert cooldowns == [1.0, 2.0, 4.0]


def test_adaptive_does_not_slow_a_quiet_api():
    """An API that never pushes back is never made to wait."""
    state, config = _seen(), KeyConfig(adaptive=AdaptiveConfig())
    for i in range(1000):
        g = acquire(state, config, i * 0.001, 1, INF)
        assert g.wait == 0
        observe(state, config, i * 0.001, g.ticket, 200, NOTHING)
    assert state.rate is None


def test_adaptive_learns_rate_from_first_pushback_then_aimd():
    """First 429: the measured success rate; later 429s cut it; successes add; 5xx adds nothing."""
    adaptive = AdaptiveConfig(decrease_factor=0.5, increase_step=1.0)
    state, config = _seen(), KeyConfig(adaptive=adaptive)
    for i in range(20):  # 20 successes in 1 s
        g = acquire(state, config, i * 0.05, 1, INF)
        observe(state, config, i * 0.05, g.ticket, 200, NOTHING)
    g = acquire(state, config, 1.0, 1, INF)
    observe(state, config, 1.0, g.ticket, 429, Observation(retry_after=1.0))
    # 20 ok over 1 s plus the 1 s pause (10/s) at least; over 1 s (20/s) at most: halfway
    assert 14.0 <= state.rate <= 15.5 and state.peak == 20.0
    first = state.rate
    for _ in range(5):
        g = acquire(state, config, 5.0, 1, INF)
        observe(state, config, 5.0, g.ticket, 500, NOTHING)
    assert state.rate == first  # 5xx is not success
    g = acquire(state, config, 6.0, 1, INF)
    observe(state, config, g.at, g.ticket, 200, NOTHING)
    assert state.rate > first
    g = acquire(state, config, 10.0, 1, INF)
    observe(state, config, g.at, g.ticket, 429, NOTHING)
    assert state.rate < first


def test_in_flight_pushbacks_decrease_once():
    """Eight 429s from requests sent before the first one was seen cut the rate only once."""
    state, config = _seen(), KeyConfig(adaptive=AdaptiveConfig(initial_rate=8.0))
    grants = [acquire(state, config, 0.0, 1, INF) for _ in range(8)]
    for g in grants:
        observe(state, config, 0.1, g.ticket, 429, NOTHING)
    assert state.rate == 8.0 and state.strikes == 1


def test_growth_slows_near_the_rate_that_last_drew_a_pushback():
    """Past its ramp, the rate grows by increase_step per second, PEAK_STEP of it within 5% of
    the rate a pushback last cut, either side (each pushback costs a pause: approach the limit
    gently); well past it the limit has moved up, and the growth is whole again."""
    config = KeyConfig(adaptive=AdaptiveConfig(increase_step=1.0, decrease_factor=0.5))
    state = KeyState(seq=0.5, rate=20.0, ramping=False)
    g = acquire(state, config, 0.0, 1, INF)
    observe(state, config, 0.0, g.ticket, 429, NOTHING)
    assert (state.peak, state.rate) == (20.0, 10.0)
    g = acquire(state, config, 5.0, 1, INF)
    observe(state, config, 5.0, g.ticket, 200, NOTHING)
    assert state.rate == pytest.approx(10.1)  # far below the peak: 1.0 / 10 per success
    for rate, step in ((19.5, PEAK_STEP), (20.5, PEAK_STEP), (21.5, 1.0)):
        state.rate = rate
        g = acquire(state, config, 6.0, 1, INF)
        observe(state, config, 6.0, g.ticket, 200, NOTHING)
        assert state.rate == pytest.approx(rate + step / rate)


def test_a_rate_cut_reaches_callers_queued_behind_the_horizon():
    """Callers queued on a learned rate hold slots at most HORIZON ahead; the rest take places
    in line and ask again, so a pushback's cut and pause re-space the whole line."""
    state, config = KeyState(seq=0.5, rate=10.0), KeyConfig(adaptive=AdaptiveConfig())
    grants = [acquire(state, config, 0.0, 1, INF) for _ in range(10)]
    assert [g.at for g in grants[:3]] == pytest.approx([0.0, 0.1, 0.2])  # reserved
    assert all(g.again for g in grants[3:])  # in line: places 1..7, turns 0.1 s apart
    assert [g.place for g in grants[3:]] == [1, 2, 3, 4, 5, 6, 7]
    assert [g.at for g in grants[3:]] == pytest.approx([0.3 + i / 10 - HORIZON for i in range(7)])
    observe(state, config, 0.05, grants[0].ticket, 429, NOTHING)  # cut to 9/s, paused 0.1 s
    assert state.rate == 9.0
    slots = []
    for waiting in grants[3:]:  # each comes back when told, in turn, holding its place
        g = waiting
        while g.again:
            g = acquire(state, config, g.at, 1, INF, g.place)
        slots.append(g.at)
    assert slots == pytest.approx([0.2 + i / 9 for i in range(1, 8)])  # the new rate, in order


def test_very_low_rate_still_admits_every_twenty_seconds():
    """At 0.05/s the key is not livelocked: one request per 20 s goes out."""
    adaptive = AdaptiveConfig(initial_rate=0.05, min_rate=0.05)
    state, config = _seen(), KeyConfig(adaptive=adaptive, cooldown=0.0)
    g = acquire(state, config, 0.0, 1, INF)
    observe(state, config, 0.0, g.ticket, 429, NOTHING)
    assert state.rate == 0.05
    times = []
    for _ in range(4):
        g = acquire(state, config, 0.0, 1, INF)
        while g.again:  # a slot far ahead on a learned rate is decided when it nears
            assert g.ok and g.at == pytest.approx((times[-1] if times else 0.0) + 20 - HORIZON)
            g = acquire(state, config, g.at, 1, INF, g.place)
        times.append(g.at)
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [20.0] * 3


def test_release_gives_the_place_back():
    """A cancelled waiter's slot goes to the next request."""
    state, config = _seen(), KeyConfig(limits=(Limit(1, 1.0),))
    acquire(state, config, 0.0, 1, INF)
    waiting = acquire(state, config, 0.0, 1, INF)
    assert waiting.wait == 1.0
    release(state, config, waiting, 0.0)
    assert acquire(state, config, 0.0, 1, INF).wait == 1.0


def test_first_contact_sends_one_probe_and_holds_the_rest():
    """Until a new key's first response is seen, other requests are told to look again shortly."""
    state, config = KeyState(), KeyConfig()
    probe = acquire(state, config, 0.0, 1, INF)
    assert probe.ok and not probe.again and probe.wait == 0
    held = acquire(state, config, 0.001, 1, INF)
    assert held.again and held.wait > 0 and state.seq == 1  # nothing reserved
    observe(state, config, 0.02, probe.ticket, 200, _window_obs(5, 1.0, limit=5))
    assert not acquire(state, config, 0.02, 1, INF).again
    assert not acquire(KeyState(seq=1, probing_until=2.0), config, 2.5, 1, INF).again  # lost probe


def test_a_caller_held_back_by_a_probe_or_a_slow_start_keeps_to_its_max_wait():
    """Looking again is a wait too: once the caller's budget is under one look, it is refused
    (it was told to look again for as long as the hold lasted, past any max_wait)."""
    state, config = KeyState(), KeyConfig(adaptive=AdaptiveConfig())
    probe = acquire(state, config, 0.0, 1, INF)
    assert acquire(state, config, 0.1, 1, 1.0).ok  # budget left: look again
    refused = acquire(state, config, 0.1, 1, 0.0)  # raise_on_limit, or the budget is spent
    assert not refused.ok and refused.policy == "probe" and state.seq == 1
    observe(state, config, 0.2, probe.ticket, 200, Observation())
    acquire(state, config, 0.3, 1, INF)  # the slow start's one request out
    refused = acquire(state, config, 0.4, 1, 0.0)
    assert not refused.ok and refused.policy == "slow_start"
