"""Micro-benchmark: what the limiter adds to one request, and what one in-memory acquire costs.

    python benchmarks/overhead.py [--requests 200] [--acquires 5000] [--rounds 150] [--interleave]

1. An httpx request served by ``httpx.MockTransport`` with and without the limiting transport
   wrapped around it (sync and async). The key has a configured limit far above what the loop
   reaches, so every request runs the whole path (reserve, send, parse headers, observe) and
   none waits. The mock's remaining and reset values change on every response, as a real
   server's do. Target: <= 15% more time per request.
2. One in-memory acquire that admits, against aiolimiter's ``AsyncLimiter.acquire`` with
   capacity to spare, inside a coroutine: ours as the async transport makes it (a plain call:
   an in-process step never waits, so it is not awaited), and awaited through ``aacquire``.
   Target in the issue: ours <= 0.5x aiolimiter's.

3. With ``--interleave``: the same Python work (parsing one response's headers three times)
   timed alone and between plain httpx requests. Code run between httpx's steps costs more
   than alone (the two share the CPU's caches and branch predictors), which is why the time
   ratio of (1) is higher than its instruction ratio (``benchmarks/instructions.py``).

Both sides run interleaved in the same process, many short rounds (200 requests, about
30 ms), and the best round of each is compared, so the ratio holds on a noisy shared machine
even when absolute times do not. Short rounds are the point: on this machine a request's
median time runs 30-80% above its best, in bursts; a round of 3,000 requests (0.4 s) rarely
escapes them all, and best-of-9 such rounds gave sync ratios of 1.05 and 1.17 in two runs a
minute apart, where best-of-150 short rounds gave 1.11-1.13 run after run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable

import httpx
from aiolimiter import AsyncLimiter

from otel_ratelimit import RateLimiter
from otel_ratelimit.engine import KeyConfig
from otel_ratelimit.headers import Observation, parse_headers
from otel_ratelimit.limits import Limit
from otel_ratelimit.storage import MemoryStorage

URL = "http://api.bench.test/items"
HEADERS = {"x-ratelimit-limit-requests": "100000000", "x-ratelimit-remaining-requests": "99999999",
           "x-ratelimit-reset-requests": "60s"}  # fmt: skip


_SENT = itertools.count()


def _handler(request: httpx.Request) -> httpx.Response:
    # Remaining and reset change on every response, as a real server's do: caches keyed on
    # header text must not make the limiter look cheaper than it is.
    i = next(_SENT)
    headers = {**HEADERS, "x-ratelimit-remaining-requests": str(99_999_999 - i),
               "x-ratelimit-reset-requests": f"{60 - i % 60000 / 1000:g}s"}  # fmt: skip
    return httpx.Response(200, headers=headers, json={"ok": True})


def _best(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, float]:
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():  # interleaved, so drifts in machine load hit both
            best[name] = min(best[name], run())
    return best


def transport_overhead(n: int, rounds: int) -> dict[str, float]:
    limiter = RateLimiter()
    limiter.set_limit("api.bench.test", 10**9, "1s", burst=10**9)
    plain = httpx.Client(transport=httpx.MockTransport(_handler))
    limited = limiter.client(transport=httpx.MockTransport(_handler))
    aplain = httpx.AsyncClient(transport=httpx.MockTransport(_handler))
    alimited = limiter.async_client(transport=httpx.MockTransport(_handler))

    def timed(client: httpx.Client) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            for _ in range(n):
                client.get(URL)
            return (time.perf_counter() - start) / n

        return run

    def atimed(client: httpx.AsyncClient) -> Callable[[], float]:
        async def loop() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await client.get(URL)
            return (time.perf_counter() - start) / n

        return lambda: asyncio.run(loop())

    runs = {"sync plain": timed(plain), "sync limited": timed(limited)}
    runs |= {"async plain": atimed(aplain), "async limited": atimed(alimited)}
    return _best(rounds, runs)


def acquire_cost(n: int, rounds: int) -> dict[str, float]:
    storage, config = MemoryStorage(), KeyConfig(limits=(Limit(10**9, 1, burst=10**9),))
    storage.observe("k", config, storage.acquire("k", config, 1, 60).ticket, 200, Observation())

    async def ours() -> float:  # what the async transport does: an in-process step is not awaited
        start = time.perf_counter()
        for _ in range(n):
            storage.acquire("k", config, 1, 60.0)
        return (time.perf_counter() - start) / n

    async def ours_awaited() -> float:  # the awaitable form, for other async callers
        start = time.perf_counter()
        for _ in range(n):
            await storage.aacquire("k", config, 1, 60.0)
        return (time.perf_counter() - start) / n

    async def theirs() -> float:
        limiter = AsyncLimiter(10**9, 1)
        start = time.perf_counter()
        for _ in range(n):
            await limiter.acquire()
        return (time.perf_counter() - start) / n

    return _best(rounds, {"otel_ratelimit acquire": lambda: asyncio.run(ours()),
                          "otel_ratelimit aacquire": lambda: asyncio.run(ours_awaited()),
                          "aiolimiter acquire": lambda: asyncio.run(theirs())})  # fmt: skip


def interleaving(n: int, rounds: int) -> dict[str, float]:
    """The same Python work (parsing one response's headers three times) alone, and between
    plain httpx requests: what being interleaved with httpx's code does to its time."""
    client = httpx.Client(transport=httpx.MockTransport(_handler))
    headers = client.get(URL).headers

    def work() -> None:
        for _ in range(3):
            parse_headers(headers, now=1.0)

    def loop(step: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            for _ in range(n):
                step()
            return (time.perf_counter() - start) / n

        return run

    def both() -> None:
        client.get(URL)
        work()

    return _best(rounds, {"plain": loop(lambda: client.get(URL)), "alone": loop(work),
                          "both": loop(both)})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--acquires", type=int, default=5_000, help="acquires per round")
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="also time the same Python work alone and between httpx requests",
    )
    args = parser.parse_args()
    t = transport_overhead(args.requests, args.rounds)
    a = acquire_cost(args.acquires, args.rounds)
    print("| measure | per call | ratio | target |\n|---|---|---|---|")
    for mode in ("sync", "async"):
        plain, limited = t[f"{mode} plain"] * 1e6, t[f"{mode} limited"] * 1e6
        ratio = limited / plain
        print(f"| {mode} request, plain httpx + MockTransport | {plain:.1f} us | | |")
        print(f"| {mode} request, limited | {limited:.1f} us | "
              f"{ratio:.3f} ({(ratio - 1) * 100:+.1f}%) | <= 1.15 |")  # fmt: skip
    ratio = a["otel_ratelimit acquire"] / a["aiolimiter acquire"]
    print(f"| aiolimiter acquire | {a['aiolimiter acquire'] * 1e6:.2f} us | | |\n"
          f"| otel_ratelimit in-memory acquire | {a['otel_ratelimit acquire'] * 1e6:.2f} us | "
          f"{ratio:.2f}x aiolimiter | <= 0.5x |")  # fmt: skip
    awaited = a["otel_ratelimit aacquire"]
    print(f"| otel_ratelimit in-memory `await aacquire` | {awaited * 1e6:.2f} us | "
          f"{awaited / a['aiolimiter acquire']:.2f}x aiolimiter | |")  # fmt: skip
    if args.interleave:
        i = {name: value * 1e6 for name, value in interleaving(args.requests, args.rounds).items()}
        inside = i["both"] - i["plain"]
        print(f"\nThe same Python work (3 header parses): {i['alone']:.1f} us alone, "
              f"{inside:.1f} us between httpx requests ({inside / i['alone']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
