"""Redis micro-benchmark: acquires per second against one local Redis, and commands per request.

    python benchmarks/redis_throughput.py [--seconds 3] [--rounds 3] [--threads 1,8] [--markdown]

1. Acquire throughput. Every contender gets a limit far above what the loop reaches (10^9 per
   second), so every call admits, and runs in a closed loop on 1 and on 8 threads of this
   process sharing one limiter object (one redis-py connection pool), as a web app's threads
   would. Contenders: otel_ratelimit's ``RedisStorage.acquire`` (one EVALSHA of the whole
   engine) and acquire + observe (the two calls of a real request), PyrateLimiter's
   ``RedisBucket`` (a sliding log in a sorted set; its ``Limiter`` holds a process-wide lock
   around each call), and ``limits``' Redis storage with the moving window, fixed window and
   sliding window counter strategies. Contenders are interleaved over several rounds and the
   best round of each is reported, so ratios hold on a noisy machine when absolute figures
   do not.
2. Redis commands per request: real requests through ``RateLimiter(storage="redis://...")``
   to a local ``Upstream``, counted with ``INFO commandstats`` after a ``CONFIG RESETSTAT``.
   Commandstats also counts the commands a script runs; those (the ones ``engine.lua`` calls)
   are reported apart from the commands the client sends.

Both parts run against a redis-server this script starts on a free loopback port and stops.
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from limits import RateLimitItemPerSecond, strategies
from limits.storage import storage_from_string
from pyrate_limiter import Duration, Limiter, Rate, RedisBucket
from shared import RedisServer  # the redis-server helper of the shared-state benchmark

from otel_ratelimit import RateLimiter
from otel_ratelimit.engine import KeyConfig
from otel_ratelimit.headers import Observation
from otel_ratelimit.limits import Limit
from otel_ratelimit.storage.redis import SCRIPT, RedisStorage
from otel_ratelimit.testing import Upstream

HUGE = 10**9  # per second: never binds
Call = Callable[[], bool]


def _ours(url: str, observe: bool) -> tuple[Call, Callable[[], None]]:
    store, config = RedisStorage(url), KeyConfig(limits=(Limit(HUGE, 1, burst=HUGE),))
    grant = store.acquire("bench", config, 1, 60.0)  # the first contact, outside the timing
    store.observe("bench", config, grant.ticket, 200, Observation())
    empty = Observation()

    def call() -> bool:
        grant = store.acquire("bench", config, 1, 60.0)
        if observe:
            store.observe("bench", config, grant.ticket, 200, empty)
        return grant.ok and grant.wait == 0

    return call, store.close


def _pyrate(url: str) -> tuple[Call, Callable[[], None]]:
    client = redis.Redis.from_url(url)
    limiter = Limiter(RedisBucket.init([Rate(HUGE, Duration.SECOND)], client, "pyrate-bench"))

    def close() -> None:
        limiter.close()
        client.close()

    # blocking=True: with blocking=False a thread that finds the limiter's lock taken is
    # refused at once (capacity or not), which is not an admission. The limit never binds.
    return lambda: limiter.try_acquire("bench") is True, close


def _limits(url: str, strategy: type[strategies.RateLimiter]) -> tuple[Call, Callable[[], None]]:
    storage = storage_from_string(url)
    limiter, item = strategy(storage), RateLimitItemPerSecond(HUGE)
    name = strategy.__name__  # one key per strategy: they store different types

    def close() -> None:
        storage.reset()

    return lambda: limiter.hit(item, name), close


CONTENDERS: dict[str, Callable[[str], tuple[Call, Callable[[], None]]]] = {
    "otel_ratelimit acquire": lambda url: _ours(url, observe=False),
    "otel_ratelimit acquire + observe": lambda url: _ours(url, observe=True),
    "pyrate-limiter RedisBucket": _pyrate,
    "limits moving window": lambda url: _limits(url, strategies.MovingWindowRateLimiter),
    "limits fixed window": lambda url: _limits(url, strategies.FixedWindowRateLimiter),
    "limits sliding window counter": lambda url: _limits(
        url, strategies.SlidingWindowCounterRateLimiter
    ),
}


def closed_loop(call: Call, threads: int, seconds: float) -> tuple[float, int]:
    """Calls per second of ``call`` on ``threads`` threads for ``seconds``, and the denials."""
    counts, denied = [0] * threads, [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop = [0.0]

    def work(i: int) -> None:
        barrier.wait()
        n = d = 0
        while time.perf_counter() < stop[0]:
            if not call():
                d += 1
            n += 1
        counts[i], denied[i] = n, d

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    start = time.perf_counter()
    stop[0] = start + seconds
    barrier.wait()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - start), sum(denied)


def _server_usec(admin: redis.Redis) -> float:
    """Mean server time of the scripts run since the last CONFIG RESETSTAT (us per EVALSHA)."""
    stats = admin.info("commandstats")
    calls = sum(int(stats[k]["calls"]) for k in ("cmdstat_evalsha", "cmdstat_eval") if k in stats)
    usec = sum(int(stats[k]["usec"]) for k in ("cmdstat_evalsha", "cmdstat_eval") if k in stats)
    return usec / calls if calls else float("nan")


def throughput(url: str, threads: list[int], seconds: float, rounds: int) -> list[dict[str, Any]]:
    """The best round of every (contender, thread count), contenders interleaved per round."""
    admin = redis.Redis.from_url(url)
    made = {name: make(url) for name, make in CONTENDERS.items()}
    best: dict[tuple[str, int], float] = {}
    usec: dict[tuple[str, int], float] = {}
    denied: dict[tuple[str, int], int] = {}
    try:
        for _ in range(rounds):
            for n in threads:
                for name, (call, _) in made.items():
                    admin.config_resetstat()
                    rate, refused = closed_loop(call, n, seconds)
                    best[name, n] = max(best.get((name, n), 0.0), rate)
                    usec[name, n] = min(usec.get((name, n), float("inf")), _server_usec(admin))
                    denied[name, n] = denied.get((name, n), 0) + refused
    finally:
        for _, close in made.values():
            close()
        admin.close()
    rows = []
    for n in threads:
        ours = best["otel_ratelimit acquire", n]
        for name in CONTENDERS:
            rows.append({"contender": name, "threads": n, "acquires/s": f"{best[name, n]:,.0f}",
                         "vs otel_ratelimit acquire": f"{best[name, n] / ours:.2f}x",
                         "script time in Redis": f"{usec[name, n]:.1f} us",
                         "denied": denied[name, n]})  # fmt: skip
    return rows


def script_commands() -> set[str]:
    """The commands ``engine.lua`` runs inside Redis (commandstats counts them too)."""
    return {name.lower() for name in re.findall(r"redis\.p?call\(\s*'(\w+)'", SCRIPT)}


def commands_per_request(url: str, style: str, n: int) -> dict[str, Any]:
    """Requests through a Redis-backed limiter; the commands they cost from INFO commandstats."""
    admin = redis.Redis.from_url(url)
    admin.flushall()
    inside = script_commands()
    with Upstream(style, limit=100 * n, window=60.0, latency=0.0) as api:
        limiter = RateLimiter(storage=url)
        with limiter.client(base_url=api.url) as client:
            for _ in range(3):  # connection, script load and first contact outside the count
                client.get("/warm-up")
            admin.config_resetstat()
            codes = [client.get("/x").status_code for _ in range(n)]
            stats = admin.info("commandstats")
        limiter.close()
    admin.close()
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    for own in ("info", "config|resetstat"):  # this function's own commands
        calls.pop(own, None)
    sent = {k: v for k, v in calls.items() if k not in inside}
    scripted = {k: v for k, v in calls.items() if k in inside}
    return {"style": style, "requests": n, "non-2xx": sum(c >= 300 for c in codes),
            "sent": ", ".join(f"{k.upper()} {v}" for k, v in sorted(sent.items())),
            "commands per request": f"{sum(sent.values()) / n:.2f}",
            "run inside the script per request": ", ".join(
                f"{k.upper()} {v / n:.2f}" for k, v in sorted(scripted.items()))}  # fmt: skip


def table(rows: list[dict[str, Any]], markdown: bool) -> str:
    """A Markdown table, or aligned plain text."""
    columns = list(rows[0])
    cells = [[str(row[c]) for c in columns] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [columns, ["-" * w for w in widths], *cells]
    pad = lambda line: "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True))  # noqa: E731
    return "\n".join(pad(line).rstrip() for line in lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,8", help="thread counts, comma-separated")
    parser.add_argument("--requests", type=int, default=200, help="for commands per request")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if not threads or min(threads) < 1 or args.rounds < 1 or args.requests < 1:
        raise SystemExit("--threads, --rounds and --requests must be >= 1")
    load_before = os.getloadavg()
    with RedisServer() as server:
        version = server.admin.info("server")["redis_version"]
        speed = throughput(server.url, threads, args.seconds, args.rounds)
        styles = ("github", "openai", "429-only")
        commands = [commands_per_request(server.url, s, args.requests) for s in styles]
    load_after = os.getloadavg()
    print(table(speed, args.markdown))
    print(f"\nredis-server {version} on loopback; best of {args.rounds} interleaved rounds of "
          f"{args.seconds:g} s; every limit 10^9/s, so every call admits ('denied' must be 0); "
          "script time in Redis: mean server time per EVALSHA from INFO commandstats (in the "
          "round where it was lowest). "
          f"Load average (1/5/15 min) on {os.cpu_count()} CPUs: before "
          + "/".join(f"{x:.1f}" for x in load_before) + ", after "
          + "/".join(f"{x:.1f}" for x in load_after) + ".\n")  # fmt: skip
    print(table(commands, args.markdown))
    print("\nINFO commandstats over the requests after 3 warm-up requests; 'sent' are the "
          "commands the client sent, the others ran inside the Lua script.")  # fmt: skip


if __name__ == "__main__":
    main()
