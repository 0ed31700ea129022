"""Real worker processes hammering local upstreams through one shared storage (for tests)."""

from __future__ import annotations

import multiprocessing
import threading
import time

from otel_ratelimit import RateLimiter
from otel_ratelimit.testing import Upstream


def _worker(urls: list[str], storage: str, seconds: float, errors) -> None:
    limiter = RateLimiter(storage=storage, max_wait=30)
    clients = [limiter.client(base_url=url) for url in urls]
    deadline = time.monotonic() + seconds

    def loop(client) -> None:
        while time.monotonic() < deadline:
            try:
                client.get("/x")
            except Exception as exc:  # counted by the parent
                errors.put(repr(exc))
                return

    threads = [threading.Thread(target=loop, args=(clients[i % len(clients)],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    limiter.close()


def run_processes(upstreams: list[Upstream], storage: str, seconds: float = 6.0) -> None:
    """4 real processes x 4 threads, spread over the upstreams, for ``seconds``."""
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    args = ([up.url for up in upstreams], storage, seconds, errors)
    procs = [ctx.Process(target=_worker, args=args) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert errors.empty()
