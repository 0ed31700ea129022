"""A model of accuracy.py's silent styles on the pure engine, for tuning AIMD in seconds.

    python benchmarks/aimd_model.py [--runs 40] [--workers 8] [--styles 429-only,...]

Not a benchmark of record (``accuracy.py`` is: a real server, real clients). This drives
``engine.acquire``/``observe`` on a fake clock against a modelled upstream like
``accuracy.py``'s: a fixed window of 20 per 1 s, 20 ms latency with a little jitter, closed-
loop callers, ``Retry-After`` in whole seconds or as a date rounded to the wall-clock second
(whose phase against the windows is random per run). Each run is 30 s; the table gives the
goodput (ok / 600) and the 429 share over ``--runs`` runs with different phases and jitter.
Retries and the transport are not modelled: confirm any change with ``accuracy.py``.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics

from otel_ratelimit.engine import KeyConfig, KeyState, acquire, observe
from otel_ratelimit.headers import Observation
from otel_ratelimit.limits import AdaptiveConfig

STYLES = ("429-only", "retry-after-seconds", "retry-after-date")
LIMIT, DURATION, LATENCY, MAX_WAIT = 20, 30.0, 0.02, 30.0


def run(style: str, workers: int, seed: int) -> tuple[int, int]:
    """One modelled run: (successes, 429s) the upstream counted before the deadline."""
    rng = random.Random(seed)
    phase = rng.random()  # the wall clock's fraction of a second when the upstream starts
    state, config = KeyState(), KeyConfig(adaptive=AdaptiveConfig())
    window, count, ok, rejected, order = -1, 0, 0, 0, 0
    events: list[tuple[float, int, str, object]] = []

    def push(t: float, kind: str, payload: object = None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (t, order, kind, payload))

    start = rng.random() * 0.05
    for w in range(workers):
        push(start + w * 0.001, "acquire", 0.0)
    while events:
        t, _, kind, payload = heapq.heappop(events)
        if t > DURATION + 1:
            break
        if kind == "acquire":
            g = acquire(state, config, t, 1, MAX_WAIT, payload)  # type: ignore[arg-type]
            if not g.ok or g.again:  # a caller told to come back keeps its place in line
                push(t + (g.wait if g.ok else 0.01), "acquire", g.place)
            else:
                push(t + g.wait + rng.uniform(0, 0.002), "arrive", g)
        elif kind == "arrive":  # the upstream decides halfway through the latency
            at = t + LATENCY / 2
            if int(at) != window:
                window, count = int(at), 0
            admitted = count < LIMIT
            count += admitted
            if at < DURATION:
                ok, rejected = ok + admitted, rejected + (not admitted)
            retry_after = None
            if not admitted and style == "retry-after-seconds":
                retry_after = float(max(1, math.ceil(window + 1 - at)))
            elif not admitted and style == "retry-after-date":
                wall = at + phase  # a date rounded up to its second, read on the local clock
                retry_after = math.ceil(wall + window + 1 - at) - wall
            answer = (payload, 200 if admitted else 429, retry_after)
            push(at + LATENCY / 2 + rng.uniform(0, 0.003), "answer", answer)
        else:
            grant, status, retry_after = payload  # type: ignore[misc]
            observe(state, config, t, grant.ticket, status, Observation(retry_after=retry_after))
            push(t + 0.0005, "acquire", 0.0)
    return ok, rejected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--styles", default=",".join(STYLES))
    args = parser.parse_args(argv)
    print("| style | workers | goodput mean | min | max | 429s mean |")
    print("|---|---:|---:|---:|---:|---:|")
    for style in args.styles.split(","):
        results = [run(style, args.workers, seed) for seed in range(args.runs)]
        goodput = [ok / (LIMIT * DURATION) for ok, _ in results]
        share = [bad / (ok + bad) for ok, bad in results]
        print(f"| {style} | {args.workers} | {statistics.mean(goodput):.1%} | {min(goodput):.1%}"
              f" | {max(goodput):.1%} | {statistics.mean(share):.2%} |")  # fmt: skip


if __name__ == "__main__":
    main()
