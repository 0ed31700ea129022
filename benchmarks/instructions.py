"""The overhead benchmark counted in CPU instructions: the same ratios, free of machine noise.

    python benchmarks/instructions.py [--n 1000]

Timings on a shared machine move by tens of percent from one run to the next; instruction
counts do not. Each case runs under valgrind's callgrind (Debian package ``valgrind``) twice,
with ``n`` and ``2n`` iterations, and the difference divided by ``n`` is what one iteration
executes, start-up and imports cancelled out (``PYTHONHASHSEED=0``, so that dict probing is
the same in both runs; acquires run 50 times as often as requests). Cases are those of
``overhead.py``: an httpx request served by ``httpx.MockTransport`` with and without the
limiter (sync and async), and one in-memory acquire against aiolimiter's.

Instructions are not time: the interpreter runs the limiter's code (dict lookups, generator
switches) at fewer instructions per cycle than httpx's, so a wall-clock ratio comes out
higher than the instruction ratio. Use this to see whether a change made the path shorter,
and ``overhead.py`` for what it costs in time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

CASE = r"""
import asyncio, sys, httpx
from aiolimiter import AsyncLimiter
from otel_ratelimit import RateLimiter
from otel_ratelimit.engine import KeyConfig
from otel_ratelimit.headers import Observation
from otel_ratelimit.limits import Limit
from otel_ratelimit.storage import MemoryStorage
case, n = sys.argv[1], int(sys.argv[2])
HEADERS = {"x-ratelimit-limit-requests": "100000000", "x-ratelimit-remaining-requests": "99999999",
           "x-ratelimit-reset-requests": "60s"}
URL = "http://api.bench.test/items"
SENT = iter(range(10**9))
def handler(request):  # remaining and reset change on every response, as a real server's do
    i = next(SENT)
    headers = {**HEADERS, "x-ratelimit-remaining-requests": str(99_999_999 - i),
               "x-ratelimit-reset-requests": f"{60 - i % 60000 / 1000:g}s"}
    return httpx.Response(200, headers=headers, json={"ok": True})
limiter = RateLimiter()
limiter.set_limit("api.bench.test", 10**9, "1s", burst=10**9)
storage, config = MemoryStorage(), KeyConfig(limits=(Limit(10**9, 1, burst=10**9),))
storage.observe("k", config, storage.acquire("k", config, 1, 60).ticket, 200, Observation())
async def run_async(client):
    for _ in range(n + 1): await client.get(URL)
async def run_aiolimiter():
    bucket = AsyncLimiter(10**9, 1)
    for _ in range(n): await bucket.acquire()
async def run_ours():
    for _ in range(n): storage.acquire("k", config, 1, 60.0)
if case == "sync plain":
    client = httpx.Client(transport=httpx.MockTransport(handler))
    for _ in range(n + 1): client.get(URL)
elif case == "sync limited":
    client = limiter.client(transport=httpx.MockTransport(handler))
    for _ in range(n + 1): client.get(URL)
elif case == "async plain":
    asyncio.run(run_async(httpx.AsyncClient(transport=httpx.MockTransport(handler))))
elif case == "async limited":
    asyncio.run(run_async(limiter.async_client(transport=httpx.MockTransport(handler))))
elif case == "aiolimiter acquire":
    asyncio.run(run_aiolimiter())
elif case == "otel_ratelimit acquire":
    asyncio.run(run_ours())
"""
CASES = ("sync plain", "sync limited", "async plain", "async limited", "aiolimiter acquire",
         "otel_ratelimit acquire")  # fmt: skip


def instructions(case: str, n: int) -> int:
    """Instructions executed by the whole process for ``n`` iterations of ``case``."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-c", CASE, case, str(n)],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # str hashes decide dict probing: fix them
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no instruction count for {case!r}: {done.stderr}")
    return int(found[1])


def per_iteration(case: str, n: int) -> float:
    return (instructions(case, 2 * n) - instructions(case, n)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="iterations (and twice as many)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install valgrind")
    # An acquire is ~50x shorter than a request: as many more of them, for as steady a count.
    counts = {
        case: per_iteration(case, args.n * (50 if "acquire" in case else 1)) for case in CASES
    }
    print("| measure | instructions per call | ratio | target (in time) |\n|---|---|---|---|")
    for mode in ("sync", "async"):
        plain, limited = counts[f"{mode} plain"], counts[f"{mode} limited"]
        print(f"| {mode} request, plain httpx + MockTransport | {plain:,.0f} | | |")
        print(f"| {mode} request, limited | {limited:,.0f} | {limited / plain:.3f} | <= 1.15 |")
    theirs, ours = counts["aiolimiter acquire"], counts["otel_ratelimit acquire"]
    print(f"| aiolimiter acquire | {theirs:,.0f} | | |")
    print(f"| otel_ratelimit in-memory acquire | {ours:,.0f} | {ours / theirs:.2f}x | <= 0.5x |")


if __name__ == "__main__":
    main()
