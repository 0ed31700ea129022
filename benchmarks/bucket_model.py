"""Closed-loop callers against a modelled leaky bucket (Shopify's), on the pure engine.

    python benchmarks/bucket_model.py [--runs 300] [--seed 1] [--jitter 0.05]

Not a benchmark of record (``accuracy.py`` is: a real server, real clients). Each run drives
``engine.acquire``/``observe`` on a fake clock: 1-32 callers, each asking again as soon as its
answer is back, against a bucket of 40 draining 2 per second (``X-Shopify-Shop-Api-Call-Limit``
answers), with a random latency up to 0.1 s, requests reaching the server up to ``--jitter``
seconds late (so out of ticket order) and answers coming back up to 0.2 s late (out of order
too). It prints how many runs drew a 429 and the goodput (ok over the 100 the bucket allows in
30 s) over ``--runs`` random runs; ``tests/test_engine_leaky.py`` runs the same loop.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random

from otel_ratelimit.engine import KeyConfig, KeyState, acquire, observe
from otel_ratelimit.headers import Observation, Quota

CAPACITY, WINDOW, DURATION = 40.0, 20.0, 30.0


def shopify(used: float, capacity: float = CAPACITY) -> Observation:
    """What the header parser makes of ``X-Shopify-Shop-Api-Call-Limit: used/capacity``."""
    reset = used * WINDOW / capacity
    return Observation(quotas=(Quota("default", capacity, capacity - used, reset, WINDOW),))


class Bucket:
    """A server-side leaky bucket: ``capacity`` requests, draining ``capacity / 20`` per s."""

    def __init__(self, capacity: float = CAPACITY) -> None:
        self.capacity, self.rate, self.level, self.last = capacity, capacity / WINDOW, 0.0, 0.0
        self.ok = self.rejected = 0

    def arrive(self, t: float) -> tuple[int, Observation]:
        """A request reaching the server at ``t``: its status and headers."""
        self.level = max(0.0, self.level - (t - self.last) * self.rate)
        self.last = t
        admitted = self.level + 1 <= self.capacity + 1e-9
        self.level += admitted
        self.ok += admitted
        self.rejected += not admitted
        used = self.capacity - max(0, math.floor(self.capacity - self.level + 1e-9))
        return (200 if admitted else 429), shopify(used, self.capacity)


def closed_loop(clients: int, latency: float, out: list[float], back: list[float],
                end: float = DURATION) -> Bucket:  # fmt: skip
    """``clients`` callers for ``end`` seconds; each request reaches the server ``latency``
    plus the next of ``out`` after its slot, and is answered ``latency`` plus the next of
    ``back`` after that. Returns the server's bucket with its counts."""
    bucket, state, config = Bucket(), KeyState(), KeyConfig()
    outs, backs, order = itertools.cycle(out), itertools.cycle(back), itertools.count()
    events: list[tuple[float, int, str, object]] = []
    for _ in range(clients):
        heapq.heappush(events, (0.0, next(order), "ask", 0.0))
    while events:
        t, _, kind, data = heapq.heappop(events)
        if kind == "ask" and t < end:
            g = acquire(state, config, t, 1, math.inf, data)  # type: ignore[arg-type]
            if g.again:  # back when told, in its place in line
                heapq.heappush(events, (g.at, next(order), "ask", g.place))
            else:
                arrive = g.at + latency + next(outs)
                heapq.heappush(events, (arrive, next(order), "arrive", g.ticket))
        elif kind == "arrive":
            status, obs = bucket.arrive(t)
            answer = t + latency + next(backs)
            heapq.heappush(events, (answer, next(order), "answer", (data, status, obs)))
        elif kind == "answer":
            ticket, status, obs = data  # type: ignore[misc]
            observe(state, config, t, ticket, status, obs)
            heapq.heappush(events, (t, next(order), "ask", 0.0))
    return bucket


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jitter", type=float, default=0.05, help="late arrivals, seconds")
    args = parser.parse_args(argv)
    rng, goodput, with_429, total_429 = random.Random(args.seed), [], 0, 0
    for _ in range(args.runs):
        clients, latency = rng.randint(1, 32), rng.uniform(0.001, 0.1)
        out = [rng.uniform(0, args.jitter) for _ in range(rng.randint(1, 20))]
        back = [rng.uniform(0, 0.2) for _ in range(rng.randint(1, 20))]
        bucket = closed_loop(clients, latency, out, back)
        goodput.append(bucket.ok / (CAPACITY + CAPACITY / WINDOW * DURATION))
        with_429, total_429 = with_429 + (bucket.rejected > 0), total_429 + bucket.rejected
    goodput.sort()
    low, p10, median = goodput[0], goodput[len(goodput) // 10], goodput[len(goodput) // 2]
    print(f"{args.runs} runs (seed {args.seed}, arrivals up to {args.jitter} s late): "
          f"{with_429} with a 429 ({total_429} in all); goodput min {low:.1%}, "
          f"p10 {p10:.1%}, median {median:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
