"""Places in line for callers waiting on a learned rate (line.py), with a fake clock: callers
come back when told, holding their place, and get slots in arrival order, the longest wait
about the line's length over the rate, never faster than the rate allows."""

from __future__ import annotations

import heapq
import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_ratelimit.engine import HORIZON, KeyConfig, KeyState, Window, acquire
from otel_ratelimit.limits import AdaptiveConfig

INF = math.inf
AIMD = KeyConfig(adaptive=AdaptiveConfig())
BUCKET = KeyConfig()  # Shopify's 40 with 2/s drain, learned from headers


def _aimd(rate: float = 2.0) -> KeyState:
    return KeyState(seq=0.5, rate=rate)


def _full_bucket() -> KeyState:
    """A leaky bucket of 40 draining 2/s, full at t=0 (as Shopify reports after a burst)."""
    return KeyState(seq=0.5, windows={"default": Window(40, 0.0, 20.0, 0.0, leak=2.0)})


def _run(state, config, arrivals, *, gone=(), late=None, max_wait=INF):
    """Callers arrive at ``arrivals`` and ask again exactly when told (plus ``late[i]``),
    holding their place; those in ``gone`` give up after their first answer.
    Returns {caller: slot} and {caller: refusal wait}."""
    events = [(t, i, 0.0) for i, t in enumerate(arrivals)]
    heapq.heapify(events)
    slots, refused = {}, {}
    while events:
        now, i, place = heapq.heappop(events)
        g = acquire(state, config, now, 1, max_wait, place)
        if not g.ok:
            refused[i] = g.wait
        elif not g.again:
            slots[i] = g.at
        elif i not in gone:
            assert g.place > 0 and g.wait > 0
            heapq.heappush(events, (g.at + (late[i] if late else 0.0), i, g.place))
    return slots, refused


def _never_faster(times: list[float], rate: float) -> None:
    """AIMD (a bucket of 1): between any two slots, at most one more than the rate allows."""
    times = sorted(times)
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            assert j - i <= 1 + rate * (times[j] - times[i]) + 1e-6


def _never_overflows(times: list[float], rate: float, capacity: float = 40) -> None:
    """A leaky bucket full at 0 and draining ``rate`` per second never holds more than its
    capacity: room left unused may go at once, as the server allows."""
    level, last = capacity, 0.0
    for t in sorted(times):
        level = max(0.0, level - rate * (t - last)) + 1
        last = t
        assert level <= capacity + 1e-6


@pytest.mark.parametrize("kind", ["aimd", "bucket"])
def test_thirty_two_callers_go_in_arrival_order(kind):
    """32 callers 1 ms apart on 2/s: slots in arrival order, one every 0.5 s, and the last
    waits about 32 / 2 = 16 s (before places in line: p99 ~10 s, max ~20 s on this rate
    in the accuracy run, every waiter told the same time)."""
    state, config = (_aimd(), AIMD) if kind == "aimd" else (_full_bucket(), BUCKET)
    arrivals = [i * 0.001 for i in range(32)]
    slots, refused = _run(state, config, arrivals)
    assert not refused and len(slots) == 32
    order = sorted(slots, key=slots.__getitem__)
    assert order == list(range(32))  # first come, first served
    times = [slots[i] for i in order]
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([0.5] * 31)
    waits = [slots[i] - arrivals[i] for i in range(32)]
    assert max(waits) == pytest.approx(32 / 2 - (0 if kind == "bucket" else 0.5), abs=0.05)
    (_never_faster if kind == "aimd" else _never_overflows)(times, 2.0)
    assert state.line_end == state.line_served == 32 - (0 if kind == "bucket" else 1)


@pytest.mark.parametrize("kind", ["aimd", "bucket"])
def test_a_closed_loop_of_thirty_two_waits_the_line_length_not_a_multiple(kind):
    """32 clients, each asking again as soon as its answer is back, waking up to 10 ms late:
    every wait is the line's length, 32 / 2 = 16 s (before places in line, on this model:
    p99 62 s, max 115 s, because whoever woke first of all those told the same time won)."""
    state, config = (_aimd(), AIMD) if kind == "aimd" else (_full_bucket(), BUCKET)
    rng, waits, asks = random.Random(7), [], 0
    events = [(i * 0.001, i, 0.0, i * 0.001) for i in range(32)]  # (time, client, place, start)
    while events:
        now, i, place, start = heapq.heappop(events)
        if start > 60.0:
            continue
        g, asks = acquire(state, config, now, 1, INF, place), asks + 1
        if g.again:
            heapq.heappush(events, (g.at + rng.uniform(0, 0.01), i, g.place, start))
        else:
            waits.append(g.at - start)
            back = g.at + 0.05 + rng.uniform(0, 0.05)  # the answer, then the next request
            heapq.heappush(events, (back, i, 0.0, back))
    assert len(waits) >= 120
    assert max(waits) <= 32 / 2 + 0.1
    assert sorted(waits)[len(waits) // 2] >= 15.5  # everyone waits their turn, no one jumps
    assert asks <= 2.1 * len(waits)  # one ask to take a place, one to book


def test_newcomers_queue_behind_the_line_even_when_a_slot_is_free():
    """A caller arriving while others wait in line takes a place behind them, even when the
    next slot is near: nobody jumps the line."""
    state = _aimd(2.0)
    assert not acquire(state, AIMD, 0.0, 1, INF).again  # booked at 0
    waiting = [acquire(state, AIMD, 0.0, 1, INF) for _ in range(4)]  # slots 0.5 .. 2.0
    assert all(g.again for g in waiting) and [g.place for g in waiting] == [1, 2, 3, 4]
    late = acquire(state, AIMD, 0.4, 1, INF)  # the next slot (0.5) is within the horizon
    assert late.again and late.place == 5 and late.at == pytest.approx(2.5 - HORIZON)


def test_a_caller_that_gives_up_leaves_a_gap_that_heals():
    """Half the callers are gone after their first answer: the rest still go in order, and
    the empty places cost at most a horizon each, not a stall."""
    arrivals = [i * 0.001 for i in range(20)]
    gone = set(range(1, 20, 2))
    slots, refused = _run(_aimd(2.0), AIMD, arrivals, gone=gone)
    assert not refused and sorted(slots) == [0, *(i for i in range(20) if i not in gone and i)]
    order = sorted(slots, key=slots.__getitem__)
    assert order == sorted(slots)
    assert max(slots.values()) <= 19 * 0.5 + 10 * HORIZON  # a fair line of 20 needs 9.5 s


def test_a_line_whose_holders_are_all_gone_ends_by_itself():
    """Every caller in line died: once their turns are past, a newcomer waits for nobody."""
    state = _aimd(2.0)
    acquire(state, AIMD, 0.0, 1, INF)
    dead = [acquire(state, AIMD, 0.0, 1, INF) for _ in range(10)]
    assert state.line_end == 10 and state.line_served == 0 and all(g.again for g in dead)
    g = acquire(state, AIMD, 60.0, 1, INF)  # long after: nobody came back
    assert not g.again and g.at == 60.0 and state.line_served == state.line_end == 11


def test_a_refused_caller_takes_no_place_and_gives_back_the_last():
    state = _aimd(2.0)
    acquire(state, AIMD, 0.0, 1, INF)
    first = acquire(state, AIMD, 0.0, 1, INF)
    assert first.again and state.line_end == 1
    refused = acquire(state, AIMD, 0.0, 1, 0.6)  # its turn would be at 1.0
    assert not refused.ok and refused.wait == pytest.approx(1.0) and state.line_end == 1
    second = acquire(state, AIMD, 0.0, 1, INF)
    assert second.place == 2
    assert not acquire(state, AIMD, 0.0, 1, 0.6, second.place).ok  # the last place: given back
    assert state.line_end == 1


def test_a_place_the_store_never_issued_is_a_new_one():
    """A store that lost the key (restart, expiry) does not read an old place as a long line."""
    state = _aimd(2.0)
    acquire(state, AIMD, 0.0, 1, INF)
    g = acquire(state, AIMD, 0.0, 1, INF, 500.0)
    assert g.again and g.place == 1 and g.at == pytest.approx(0.5 - HORIZON)


def test_old_state_without_a_line_loads():
    """KeyState stored before places in line existed loads with an empty line."""
    assert KeyState().line_end == KeyState().line_served == 0.0


@settings(max_examples=150, deadline=None)
@given(
    rate=st.sampled_from([0.5, 2.0, 5.0, 20.0]),
    gaps=st.lists(st.floats(0, 0.6), min_size=1, max_size=40),
    gone=st.sets(st.integers(0, 39), max_size=15),
    lateness=st.lists(st.floats(0, 0.2), min_size=40, max_size=40),
    kind=st.sampled_from(["aimd", "bucket"]),
)
def test_lines_stay_within_the_rate_and_serve_everyone_in_time(rate, gaps, gone, lateness, kind):
    """Any arrivals, callers that give up, callers a little late: never faster than the rate;
    everyone who stays gets a slot, within the line's length plus a horizon per empty place;
    callers on time are served in arrival order, up to a horizon's worth of slots."""
    if kind == "aimd":
        state, config = _aimd(rate), AIMD
    else:
        bucket = Window(40, 0.0, 40 / rate, 0.0, leak=rate)  # full at 0
        state, config = KeyState(seq=0.5, windows={"default": bucket}), BUCKET
    arrivals, t = [], 0.0
    for gap in gaps:
        t += gap
        arrivals.append(t)
    n = len(arrivals)
    slots, refused = _run(state, config, arrivals, gone=gone, late=lateness)
    assert not refused
    stayed = [i for i in range(n) if i not in gone]
    assert set(stayed) <= set(slots)
    (_never_faster if kind == "aimd" else _never_overflows)(list(slots.values()), rate)
    slack = (len(gone) + 1) * (2 * HORIZON + 1 / rate) + max(lateness) + 1 / rate
    for i in stayed:
        assert slots[i] - arrivals[i] <= (i + 1) / rate + slack
    on_time = [i for i in stayed if lateness[i] == 0]
    for a, b in itertools.pairwise(on_time):
        assert slots[a] <= slots[b] + HORIZON + 2 / rate  # no real jump ahead of the line


def test_a_caller_refused_at_its_turn_takes_nothing():
    """With no time to wait (``raise_on_limit``: max_wait 0), a caller whose turn is near but
    whose slot is not free yet is refused, and the line is as it was."""
    state = _aimd(2.0)
    acquire(state, AIMD, 0.0, 1, INF)
    waiting = acquire(state, AIMD, 0.0, 1, INF)
    before = (state.line_end, state.line_served)
    assert not acquire(state, AIMD, 0.3, 1, 0.0).ok  # a newcomer: its turn is far
    assert not acquire(state, AIMD, 0.3, 1, 0.0, waiting.place).ok  # slot at 0.5: not yet
    assert (state.line_end, state.line_served) == before
    assert not acquire(state, AIMD, 0.5, 1, 0.0, waiting.place).again  # its slot, at once
