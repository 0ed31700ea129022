"""A batch job within a rate limit: 8 threads call a local API that allows 20 requests/second.

    python examples/batch.py [--style openai] [--requests 200]

The example starts its own rate-limited upstream (``otel_ratelimit.testing.Upstream``), so it
needs no network. It prints progress every second and, at the end, what the limiter learned
and how many 429s the upstream had to send (the goal: none).
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from otel_ratelimit import RateLimiter
from otel_ratelimit.testing import Upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="openai", choices=Upstream.STYLES)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--limit", type=int, default=20, help="the upstream's hidden limit per s")
    args = parser.parse_args()

    with Upstream(args.style, limit=args.limit, window=1.0, latency=0.02) as upstream:
        limiter = RateLimiter(max_wait=30)
        done = 0
        lock = threading.Lock()
        started = time.monotonic()
        with limiter.client(base_url=upstream.url) as client:

            def call(i: int) -> int:
                nonlocal done
                status: int = client.get(f"/items/{i}").status_code
                with lock:
                    done += 1
                return status

            with ThreadPoolExecutor(max_workers=8) as pool:
                futures = [pool.submit(call, i) for i in range(args.requests)]
                while not all(f.done() for f in futures):
                    time.sleep(1.0)
                    status = limiter.get_status(upstream.url)
                    left = f"{status.remaining:.0f}/{status.limit:.0f}" if status else "unknown"
                    elapsed = time.monotonic() - started
                    print(f"{elapsed:5.1f}s  {done:4d} done  quota left {left}  "
                          f"upstream 429s so far: {upstream.rejected}")  # fmt: skip
                codes = [f.result() for f in futures]

        elapsed = time.monotonic() - started
        status = limiter.get_status(upstream.url)
        print(f"\n{len(codes)} requests in {elapsed:.1f}s ({len(codes) / elapsed:.1f}/s; "
              f"the upstream allows {args.limit}/s)")  # fmt: skip
        print(f"upstream answered {upstream.ok} x 200 and {upstream.rejected} x 429")
        if status is not None:
            for policy in status.policies:
                print(f"learned: policy {policy.name!r} from {policy.source}: limit "
                      f"{policy.limit:g} per {policy.window or 0:g}s")  # fmt: skip
        limiter.close()


if __name__ == "__main__":
    main()
