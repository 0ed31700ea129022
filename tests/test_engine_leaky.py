"""Leaky buckets (Shopify's ``used/capacity``): spent as they drain, never waited out as a
window; the same decisions on memory, SQLite and Redis (the Lua port)."""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_ratelimit.engine import KeyConfig, KeyState, acquire, observe, release
from otel_ratelimit.headers import Observation, Quota
from otel_ratelimit.storage import MemoryStorage, SQLiteStorage
from otel_ratelimit.storage.redis import RedisStorage

INF = math.inf
CONFIG = KeyConfig()


def _shopify(used: float, capacity: float = 40.0) -> Observation:
    """What the header parser makes of ``X-Shopify-Shop-Api-Call-Limit: used/capacity``."""
    return Observation(quotas=(Quota("default", capacity, capacity - used, used * 20 / capacity,
                                     20.0),))  # fmt: skip


class Bucket:
    """A server-side leaky bucket: ``capacity`` requests, draining ``capacity / 20`` per s."""

    def __init__(self, capacity: float = 40.0) -> None:
        self.capacity, self.rate, self.level, self.last = capacity, capacity / 20, 0.0, 0.0
        self.ok = self.rejected = 0

    def arrive(self, t: float) -> tuple[int, Observation]:
        self.level = max(0.0, self.level - (t - self.last) * self.rate)
        self.last = t
        admitted = self.level + 1 <= self.capacity + 1e-9
        self.level += admitted
        self.ok += admitted
        self.rejected += not admitted
        used = self.capacity - max(0, math.floor(self.capacity - self.level + 1e-9))
        return (200 if admitted else 429), _shopify(used, self.capacity)


def test_drained_room_is_used_at_once_then_at_the_drain_rate():
    state = KeyState()
    probe = acquire(state, CONFIG, 0.0, 1, INF)
    observe(state, CONFIG, 0.05, probe.ticket, 200, _shopify(1))
    assert state.windows["default"].leak == 2.0  # 40 per 20 s
    slots = []
    for _ in range(45):
        g = acquire(state, CONFIG, 0.05, 1, INF)
        while g.again:  # slots further ahead are decided when they near
            g = acquire(state, CONFIG, g.at, 1, INF, g.place)
        slots.append(g.at)
    assert all(at < 0.1 for at in slots[:39])  # the 39 left go now, not paced over a window
    gaps = [b - a for a, b in itertools.pairwise(slots[39:])]
    assert slots[39] == pytest.approx(0.55, abs=0.01) and gaps == pytest.approx([0.5] * 5)


def test_a_window_emptied_at_its_start_is_not_taken_for_a_leaky_bucket():
    """remaining 0 with reset == window also fits ``used * window / limit``: a window that was
    used up at once. Until a key has shown a level strictly between empty and full, it waits."""
    state = KeyState(seq=0.5)
    g = acquire(state, CONFIG, 0.0, 1, INF)
    observe(state, CONFIG, 0.0, g.ticket, 200, _shopify(40))
    assert state.windows["default"].leak == 0
    assert acquire(state, CONFIG, 0.0, 1, INF).wait >= 19  # waits for the reset
    # A level between in whole seconds (30 used: 15 s to empty) is what a window's rounded
    # reset can look like too; in a fraction of a second (31 used: 15.5 s), a bucket.
    observe(state, CONFIG, 0.0, g.ticket, 200, _shopify(30))
    assert state.windows["default"].leak == 0
    observe(state, CONFIG, 0.0, g.ticket, 200, _shopify(31))
    assert state.windows["default"].leak == 2.0


def test_a_released_slot_flows_back_into_the_bucket():
    state = KeyState(seq=0.5)
    g = acquire(state, CONFIG, 0.0, 1, INF)
    observe(state, CONFIG, 0.0, g.ticket, 200, _shopify(39))
    first = acquire(state, CONFIG, 0.0, 1, INF)
    assert first.wait == 0
    release(state, CONFIG, first, 0.0)
    assert acquire(state, CONFIG, 0.0, 1, INF).wait == 0


@settings(max_examples=60, deadline=None)
@given(
    clients=st.integers(1, 32),
    latency=st.floats(0.001, 0.1),
    jitter=st.lists(st.floats(0, 0.2), min_size=1, max_size=20),
)
def test_closed_loop_clients_never_overflow_the_bucket(clients, latency, jitter):
    """Clients in a closed loop against a leaky bucket, responses coming back out of order:
    no request is ever rejected, and the drain is used (goodput)."""
    bucket, state, delays = Bucket(), KeyState(), itertools.cycle(jitter)
    events: list[tuple[float, int, str, object]] = []
    order = itertools.count()
    for _ in range(clients):
        heapq.heappush(events, (0.0, next(order), "acquire", 0.0))
    end = 30.0
    while events:
        t, _, kind, data = heapq.heappop(events)
        if kind == "acquire" and t < end:
            g = acquire(state, CONFIG, t, 1, INF, data)  # type: ignore[arg-type]
            if g.again:  # back when told, in its place in line
                heapq.heappush(events, (g.at, next(order), "acquire", g.place))
            else:  # requests reach the server in slot order; answers come back in any order
                heapq.heappush(events, (g.at + latency, next(order), "arrive", g.ticket))
        elif kind == "arrive":
            status, obs = bucket.arrive(t)
            back = t + latency + next(delays)
            heapq.heappush(events, (back, next(order), "response", (data, status, obs)))
        elif kind == "response":
            ticket, status, obs = data  # type: ignore[misc]
            observe(state, CONFIG, t, ticket, status, obs)
            heapq.heappush(events, (t, next(order), "acquire", 0.0))
    assert bucket.rejected == 0
    allowed = 40 + 2 * end
    assert bucket.ok >= 0.9 * allowed


def test_memory_sqlite_and_redis_decide_alike_on_leaky_buckets(redis_url, tmp_path):
    """Shopify-style answers in random order, with releases and pushbacks: every Grant, Outcome
    and the final state agree on the three stores (the Lua port of the leaky bucket)."""

    class Clock:
        t = 1_000_000.0

        def __call__(self) -> float:
            return self.t

    lines = 0  # how many grants took a place in line, over all seeds
    for seed in range(12):
        rng, clock, key = random.Random(seed), Clock(), f"leaky-{uuid.uuid4()}"
        sqlite = SQLiteStorage(f"sqlite:///{tmp_path / f'{seed}.db'}", clock=clock)
        redis_store = RedisStorage(redis_url, clock=clock)
        stores = [MemoryStorage(clock=clock), sqlite, redis_store]
        held, places = [], []  # places: callers in line, told to ask again
        try:
            for _ in range(80):
                clock.t += rng.choice([0.0, 0.001, 0.05, 0.3, 1.0, 7.0])
                step = rng.random()
                if step < 0.5 or not held:
                    cost, max_wait = rng.choice([1, 1, 2, 0.5]), rng.choice([5.0, INF])
                    back = places and rng.random() < 0.7  # one in line asks again
                    place = places.pop(rng.randrange(len(places))) if back else 0.0
                    grants = [s.acquire(key, CONFIG, cost, max_wait, place) for s in stores]
                    assert grants[0] == grants[1] == grants[2]
                    held += [grants[0]] if grants[0].ok and not grants[0].again else []
                    places += [grants[0].place] if grants[0].place else []
                    lines += grants[0].place > 0
                elif step < 0.9:
                    ticket = held.pop(rng.randrange(len(held))).ticket
                    used = rng.choice([0, 1, 5, 20, 39, 40, 40.0 * rng.random()])
                    status = rng.choice([200, 200, 200, 429])
                    outs = [s.observe(key, CONFIG, ticket, status, _shopify(used)) for s in stores]
                    assert outs[0] == outs[1] == outs[2]
                else:
                    grant = held.pop(rng.randrange(len(held)))
                    for s in stores:
                        s.release(key, CONFIG, grant)
            states = [s.load(key) for s in stores]
            assert states[0] == states[1] == states[2]
            assert any(w.leak > 0 for w in states[0][0].windows.values())
        finally:
            sqlite.close()
            redis_store.clear(key)
            redis_store.close()
    assert lines > 0  # callers waited in line
