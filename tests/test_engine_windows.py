"""Windows learned from headers at their edges: rounded resets, slots booked past the count,
responses that overtook earlier requests (fake clock; the real server is in test_transport)."""

from __future__ import annotations

import math

from otel_ratelimit.engine import KeyConfig, KeyState, acquire, observe
from otel_ratelimit.headers import Observation, Quota
from otel_ratelimit.windows import roll_window

INF = math.inf
CONFIG = KeyConfig()


def _ietf(remaining: float, t: float, limit: float = 25, w: float | None = 5.0) -> Observation:
    """``RateLimit-Policy: "default";q=limit;w=w`` and ``RateLimit: "default";r=..;t=..``."""
    return Observation(quotas=(Quota("default", limit, remaining, t, w),))


def test_a_rounded_window_reset_is_not_taken_for_a_leaky_bucket():
    """25 per 5 s with 10 left and the reset 2.6 s away, sent as t=3: 15 used * 5 s / 25 is 3
    too, as a leaky bucket would say. A key known as a window stays one (it went leaky and
    forgot what it had booked ahead, letting through a second window's worth)."""
    state = KeyState(seq=0.5)
    g = acquire(state, CONFIG, 0.0, 1, INF)
    observe(state, CONFIG, 0.0, g.ticket, 200, _ietf(24, 5))
    grants = [acquire(state, CONFIG, 0.0, 1, INF) for _ in range(14)]
    observe(state, CONFIG, 2.4, grants[-1].ticket, 200, _ietf(10, 3))
    assert state.windows["default"].leak == 0
    # A fresh key whose first answer fits a bucket strictly between empty and full is one.
    fresh = KeyState(seq=0.5)
    g = acquire(fresh, CONFIG, 0.0, 1, INF)
    observe(fresh, CONFIG, 0.0, g.ticket, 200, _ietf(10, 3))
    assert fresh.windows["default"].leak == 5.0


def test_slots_taken_past_what_the_server_had_left_are_spent_in_the_next_window():
    """Two left in a window we took for 1 s long: two slots go. The answer to the first says
    none were left and the window is 2 s long: the second slot is in the next window."""
    state = KeyState(seq=0.5)
    g = acquire(state, CONFIG, 0.0, 1, INF)
    observe(state, CONFIG, 0.0, g.ticket, 200, _ietf(2, 1.0, limit=10, w=None))
    first, _second = (acquire(state, CONFIG, 0.0, 1, INF) for _ in range(2))
    observe(state, CONFIG, 0.01, first.ticket, 200, _ietf(0, 2.0, limit=10, w=None))
    window = state.windows["default"]
    assert window.base == -1  # one slot out beyond the count
    nxt = roll_window(window, window.end)
    assert nxt.assumed and nxt.spent == 1 and nxt.base == 10
    slots = [acquire(state, CONFIG, 0.02, 1, INF).at for _ in range(10)]
    assert sum(window.end <= t < nxt.end for t in slots) == 9  # one of its 10 is taken


def test_an_answer_that_overtook_an_earlier_request_does_not_count_it_as_unsent():
    """A window opens and three slots of its burst go out; the server counts the second
    before the first. The second's answer (9 left) misses the first, still unanswered, and
    one went after it: 7 are left to take, not 8 (a slot booked on 8 was the 429 that made
    the real-server test flaky)."""
    state = KeyState(seq=0.5)
    g = acquire(state, CONFIG, 0.0, 1, INF)
    observe(state, CONFIG, 0.0, g.ticket, 200, _ietf(0, 1.0, limit=10, w=1.0))
    _a, b, _c = (acquire(state, CONFIG, 0.0, 1, INF) for _ in range(3))
    assert b.at >= 1.0  # in the next window
    observe(state, CONFIG, 1.01, b.ticket, 200, _ietf(9, 0.99, limit=10, w=1.0))
    window = state.windows["default"]
    assert not window.assumed and window.base - window.spent == 7


def test_a_burst_counted_twice_in_a_window_is_given_back_as_its_answers_come():
    """A window's burst of five reaches the server in ticket order and the last to arrive
    answers first (45 of 51 left): the four before it, unanswered, count as possibly unseen,
    so the key holds 41. Each later answer gives its own cost back, so once all five are
    answered it holds the server's 45 again (it kept 41, four slots lost, for the window)."""
    state = KeyState(seq=0.5)
    g = acquire(state, CONFIG, 0.0, 1, INF)
    observe(state, CONFIG, 0.0, g.ticket, 200, _ietf(50, 5.0, limit=51))
    burst = [acquire(state, CONFIG, 0.0, 1, INF) for _ in range(5)]
    assert all(b.at < 0.1 for b in burst)  # the burst (a tenth of 50) goes now
    window = state.windows["default"]
    rooms = []
    for n, b in enumerate(reversed(burst)):  # server counts 49 .. 45; answers come 45 .. 49
        observe(state, CONFIG, 0.05, b.ticket, 200, _ietf(45 + n, 4.95, limit=51))
        window = state.windows["default"]
        rooms.append(window.base - window.spent)
    assert rooms == [41, 42, 43, 44, 45]


def test_a_window_with_room_ends_its_slots_a_second_before_a_whole_second_reset():
    """A reset given in whole seconds (an epoch) can be up to a second late in every answer
    of a window: 50 per 5 s are spread so that the last slot is at least a second before the
    reset said (a tenth of the time, before, let slots fall past a reset 0.6 s early)."""
    state = KeyState(seq=0.5)
    g = acquire(state, CONFIG, 0.0, 1, INF)
    observe(state, CONFIG, 0.0, g.ticket, 200, _ietf(49, 5.0, limit=50))
    slots = [acquire(state, CONFIG, 0.0, 1, INF).at for _ in range(49)]
    assert max(slots) <= 5.0 - 1.0 + 1e-9
    assert sorted(slots) == slots and slots[-1] > 3.5  # still spread, not sent at once
